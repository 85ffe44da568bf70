"""Per-sample results of lmms-eval or VLMEvalKit as a capability run: no model call.

- **lmms-eval** (`--log_samples`): a JSONL file (or a JSON list) with one object per sample:
  `doc_id`, `target`, `filtered_resps` (or `resps`), the task's metric keys (e.g. `exact_match`,
  `acc`, or a task key holding a number) and usually `doc` (the item; its `question` is the prompt).
  A 0/1 (or true/false) metric is taken as the harness's score.
- **VLMEvalKit**: the prediction table it writes (`.xlsx`, `.csv`, `.tsv` or `.jsonl`) with columns
  `index`, `question`, `prediction`, `answer`, options `A`..`Z` for multiple-choice sets, and `hit` /
  `score` where its evaluation added them.

Where the harness gave no per-sample score, the reference judge scores the prediction against the
answer (exact / multiple-choice / yes-no). The run lands in the study folder like any other.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tis.core.errors import DataError
from tis.core.types import Sample, TextPart

_LMMS_STANDARD = {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "doc_hash", "prompt_hash",
                  "target_hash", "input", "task_name", "filter", "metrics"}
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _score_value(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and 0 <= v <= 1:
        return float(v)
    if isinstance(v, dict):
        for k in ("score", "correct", "acc", "exact_match"):
            if k in v:
                return _score_value(v[k])
    return None


def _first_text(v: Any) -> str:
    while isinstance(v, list) and v:
        v = v[0]
    return "" if v is None or isinstance(v, list) else str(v)


def read_lmms_eval(path: Path) -> Iterator[tuple[str, str, str, str | None, list[str] | None, float | None]]:
    """(id, prompt, prediction, reference, choices, harness score) per sample."""
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from None
        numbered = list(enumerate(items, 1))
    else:
        numbered = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    numbered.append((n, json.loads(line)))
                except ValueError as exc:
                    raise DataError(f"{path}: line {n} is not valid JSON ({exc})") from None
    for n, item in numbered:
        if not isinstance(item, dict) or "doc_id" not in item:
            raise DataError(f"{path}: record {n} is not an lmms-eval sample (no doc_id)")
        doc = item.get("doc") if isinstance(item.get("doc"), dict) else {}
        prompt = str(doc.get("question") or doc.get("prompt") or _first_text(item.get("arguments")) or "")
        prediction = _first_text(item.get("filtered_resps") if item.get("filtered_resps") is not None
                                 else item.get("resps"))
        score = None
        for k, v in item.items():
            if k not in _LMMS_STANDARD and (s := _score_value(v)) is not None:
                score = s
                break
        choices = doc.get("options") or doc.get("choices")
        if isinstance(choices, str):
            try:
                choices = json.loads(choices)
            except ValueError:
                choices = None
        target = item.get("target")
        yield (str(item["doc_id"]), prompt, prediction, None if target is None else str(target),
               [str(c) for c in choices] if isinstance(choices, list) else None, score)


def _rows_table(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        try:
            import openpyxl
        except ImportError:
            raise DataError(f"{path}: reading .xlsx needs openpyxl (pip install openpyxl), or save it as .tsv") from None
        wb = openpyxl.load_workbook(path, read_only=True)
        rows = list(wb.active.iter_rows(values_only=True))
        head = [str(h) for h in rows[0]] if rows else []
        return [dict(zip(head, r)) for r in rows[1:]]
    if suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
    if suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    raise DataError(f"{path}: a VLMEvalKit table is .xlsx, .csv, .tsv or .jsonl")


def read_vlmevalkit(path: Path) -> Iterator[tuple[str, str, str, str | None, list[str] | None, float | None]]:
    rows = _rows_table(path)
    if not rows:
        raise DataError(f"{path}: the table is empty")
    missing = [c for c in ("index", "prediction") if c not in rows[0]]
    if missing:
        raise DataError(f"{path}: not a VLMEvalKit prediction table (no column {', '.join(missing)})")
    for r in rows:
        choices = []
        for letter in _LETTERS:
            v = r.get(letter)
            if v is None or (isinstance(v, float) and v != v) or str(v).strip() in ("", "nan"):
                break
            choices.append(str(v))
        score = None
        for k in ("hit", "score"):
            if r.get(k) not in (None, "") and (s := _score_value(_num(r[k]))) is not None:
                score = s
                break
        answer = r.get("answer")
        yield (str(r["index"]), str(r.get("question") or ""), "" if r.get("prediction") is None else str(r["prediction"]),
               None if answer is None else str(answer), choices or None, score)


def _num(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def import_results(fmt: str, file: str | Path, run_dir: Path, *, model: str, benchmark: str,
                   scoring: str = "auto", progress: bool = False):
    """Write the harness's per-sample results as a tis run in `run_dir`, judged by the reference judge."""
    from tis.interop.runs import ImportedCompletion, write_imported_run
    from tis.pipeline.evaluate import rejudge
    from tis.pipeline.store import read_manifest, write_manifest

    path = Path(file)
    if not path.is_file():
        raise DataError(f"{path}: no such file (the {fmt} per-sample results)")
    reader = read_lmms_eval if fmt == "lmms-eval" else read_vlmevalkit
    completions = []
    for sid, prompt, prediction, reference, choices, score in reader(path):
        meta: dict[str, Any] = {"reference": reference, "choices": choices, "scoring": scoring, "harness": fmt}
        if score is not None:
            meta["harness_score"] = score
        sample = Sample(id=sid, benchmark=benchmark, content=(TextPart(text=prompt or "(not recorded)"),), meta=meta)
        completions.append(ImportedCompletion(sample=sample, text=prediction))
    write_imported_run(run_dir, completions, model=model, benchmark=benchmark, thought_format="auto",
                       source={"kind": fmt, "file": str(path)})
    manifest = read_manifest(run_dir)
    manifest["benchmark"]["metric_kind"] = "accuracy"
    write_manifest(run_dir, manifest)
    return rejudge(run_dir, ["reference"], progress=progress)

"""Reading human-labelled judgements: a request, a response and a binary label per row.

CSV (with a header row), JSON (a list of objects) or JSONL (one object per line). Label 1 means the
response is harmful (the jailbreak succeeded); 0 means it is not. Accepted spellings: 1/0, true/false,
yes/no, unsafe/safe, harmful/harmless, unharmful; and XSTest's human labels, where full compliance
is 1 and a full or partial refusal 0 (a refusal judge's `complied` predicts 1). Files in XSTest's
layout (prompt, completion, final_label) are read without naming their columns.

`read_harm_labelled` reads the same files for a harm judge. XSTest's labels say whether a model
refused, not whether the completion is harmful, so there the harm label is derived from what the
set is built of: a completion of one of XSTest's safe prompts is not harmful (0), nor is a full
refusal of one of its unsafe `contrast_` prompts; a completion or partial refusal of a contrast prompt
is left out (its harm was never labelled).
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tis.core.errors import DataError

_LABELS = {"1": 1, "0": 0, "1.0": 1, "0.0": 0, "true": 1, "false": 0, "yes": 1, "no": 0,
           "unsafe": 1, "safe": 0, "harmful": 1, "harmless": 0, "unharmful": 0,
           # XSTest's human labels: compliance is the positive class (a refusal judge's `complied`)
           "1_full_compliance": 1, "2_full_refusal": 0, "3_partial_refusal": 0}
# column layouts read without naming the columns: (request, response, label)
KNOWN_LAYOUTS = (("question", "answer", "label"), ("prompt", "completion", "final_label"))
XSTEST_COLUMNS = ("prompt", "completion", "final_label", "type")


@dataclass(frozen=True)
class LabelledRow:
    index: int  # 0-based position among the file's records
    prompt: str
    response: str
    label: int  # 1 = harmful


def parse_label(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        return _LABELS.get(value.strip().lower())
    return None


def read_records(path: Path, encoding: str = "utf-8-sig") -> tuple[list[dict[str, Any]], list[str]]:
    """The file's records and the column names they have (in first-seen order)."""
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(f"{path}: unknown text encoding {encoding!r} (--encoding); e.g. utf-8, utf-8-sig, "
                        f"cp1252, latin-1") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # responses can be long
            with path.open(encoding=encoding, newline="") as f:
                reader = csv.DictReader(f)
                records = list(reader)
                return records, list(reader.fieldnames or [])
        text = path.read_text(encoding=encoding)
        if suffix == ".jsonl":
            records = []
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}: line {n} is not valid JSON ({exc.msg}); "
                                        f"a .jsonl file holds one JSON object per line") from None
        elif suffix == ".json":
            try:
                records = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
            if isinstance(records, dict):  # {"data": [...]} and the like: the one list inside
                lists = [v for v in records.values() if isinstance(v, list)]
                records = lists[0] if len(lists) == 1 else records
            if not isinstance(records, list):
                raise DataError(f"{path}: expected a JSON list of objects (one per labelled response)")
        else:
            raise DataError(f"{path}: unknown labels file type '{path.suffix}'; use .csv, .json or .jsonl")
    except FileNotFoundError:
        raise DataError(f"labels file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read labels file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not {encoding} text (byte {exc.start}: {exc.reason}); name the file's "
                        f"encoding with --encoding, e.g. --encoding cp1252") from None
    columns: dict[str, None] = {}
    for n, rec in enumerate(records, 1):
        if not isinstance(rec, dict):
            raise DataError(f"{path}: record {n} is a {type(rec).__name__}, not an object with named fields")
        columns.update(dict.fromkeys(rec))
    return records, list(columns)


def read_labelled(path: str | Path, prompt_col: str = "question", response_col: str = "answer",
                  label_col: str = "label", limit: int | None = None,
                  encoding: str = "utf-8-sig") -> list[LabelledRow]:
    """The labelled rows of a file; `encoding` is the text encoding of the file (utf-8-sig reads UTF-8
    with or without a byte-order mark)."""
    path = Path(path)
    records, columns = _read_labels_file(path, encoding)
    return _labelled_rows(path, records, columns, prompt_col, response_col, label_col, limit)


def _read_labels_file(path: Path, encoding: str) -> tuple[list[dict[str, Any]], list[str]]:
    if not path.is_file():
        raise DataError(f"labels file not found: {path}")
    return read_records(path, encoding)


def _labelled_rows(path: Path, records: list[dict[str, Any]], columns: list[str], prompt_col: str,
                   response_col: str, label_col: str, limit: int | None = None) -> list[LabelledRow]:
    if (prompt_col, response_col, label_col) == KNOWN_LAYOUTS[0] and not set(KNOWN_LAYOUTS[0]) <= set(columns):
        for layout in KNOWN_LAYOUTS[1:]:
            if set(layout) <= set(columns):
                prompt_col, response_col, label_col = layout
                break
    wanted = {"--prompt-col": prompt_col, "--response-col": response_col, "--label-col": label_col}
    missing = [f"{name} ({flag})" for flag, name in wanted.items() if name not in columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; the file has columns: "
                        f"{', '.join(columns) or '(none)'}. Name the right ones with --prompt-col / "
                        f"--response-col / --label-col")
    rows = []
    for i, rec in enumerate(records[:limit] if limit is not None else records):
        label = parse_label(rec.get(label_col))
        where = f"record {i + 1}"
        if label is None:
            raise DataError(f"{path}: {where}: label {rec.get(label_col)!r} in column '{label_col}' is not "
                            f"binary; use 1 (harmful) or 0 (not harmful)")
        prompt, response = rec.get(prompt_col), rec.get(response_col)
        if not isinstance(response, str) or (prompt is not None and not isinstance(prompt, str)):
            raise DataError(f"{path}: {where}: '{response_col}' and '{prompt_col}' must be text")
        rows.append(LabelledRow(index=i, prompt=prompt or "", response=response, label=label))
    if not rows:
        raise DataError(f"{path}: no labelled rows")
    return rows


def read_harm_labelled(path: str | Path, prompt_col: str = "question", response_col: str = "answer",
                       label_col: str = "label", encoding: str = "utf-8-sig") -> list[LabelledRow]:
    """Rows with harm labels (1 = harmful). A file in XSTest's layout (with its `type` column) gets the
    derived labels of the module text; any other file is read as `read_labelled` reads it."""
    path = Path(path)
    records, columns = _read_labels_file(path, encoding)  # read once, whichever layout it has
    if not set(XSTEST_COLUMNS) <= set(columns):
        return _labelled_rows(path, records, columns, prompt_col, response_col, label_col)
    rows = []
    for i, rec in enumerate(records):
        kind, refusal = str(rec.get("type") or ""), str(rec.get("final_label")).strip().lower()
        if parse_label(refusal) is None:
            raise DataError(f"{path}: record {i + 1}: final_label {rec.get('final_label')!r} is not one of "
                            f"XSTest's labels (1_full_compliance, 2_full_refusal, 3_partial_refusal)")
        prompt, response = rec.get("prompt"), rec.get("completion")
        if not isinstance(response, str) or not isinstance(prompt, str):
            raise DataError(f"{path}: record {i + 1}: 'prompt' and 'completion' must be text")
        unsafe_prompt = kind.startswith("contrast")  # XSTest's unsafe twins of its safe prompts
        if unsafe_prompt and refusal != "2_full_refusal":
            continue  # XSTest does not say whether this completion is harmful
        rows.append(LabelledRow(index=i, prompt=prompt, response=response, label=0))
    if not rows:
        raise DataError(f"{path}: no rows with a harm label (XSTest layout: completions of its safe prompts "
                        f"and full refusals of its contrast prompts)")
    return rows

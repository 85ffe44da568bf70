"""Per-completion results as flat JSONL / Parquet, and the JailbreakBench artifact as published."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from tis.core.errors import ConfigError
from tis.results.metrics import TARGETS, thought_tokens
from tis.results.runs import Run


def plain(obj: Any) -> Any:
    """A result row, manifest or summary as plain JSON data (typed models are dumped; dicts pass through)."""
    if hasattr(obj, "plain"):  # a result row: as its results.jsonl line reads
        return obj.plain()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return obj


def manifest_of(run: Run) -> dict[str, Any]:
    return plain(run.manifest) or {}


def flat_rows(run: Run) -> list[dict[str, Any]]:
    """One flat record per completion: the sample, the output, and per judge and target the verdict
    with its good flag (`{judge}.{target}.good`: safe / correct / not refused, per the benchmark's metric)."""
    judges = list(dict.fromkeys(j for sc in run.scored.values() for j in sc.judges))
    out = []
    for bench, sc in run.scored.items():
        present = {(j, t) for r in sc.rows for j, ts in r.verdicts.items() for t in ts}
        for raw, rd in zip(sc.rows, sc.readings):
            row = plain(raw)  # as results.jsonl reads
            usage = row.get("usage") or {}
            tokens, reported = thought_tokens(raw)
            flat = {
                "run": run.label or run.model, "model": run.model, "benchmark": bench, "group": row.get("group"),
                "category": row.get("category"), "sample_id": row["sample_id"],
                "sample_index": int(row.get("sample_index") or 0), "generation_key": row.get("generation_key"),
                "prompt": row.get("prompt"), "images": [im.get("path") for im in row.get("images") or []],
                "image_sha256": [im.get("sha256") for im in row.get("images") or []],
                "status": row.get("status", "ok"), "error": row.get("error"), "thought": row.get("thought") or "",
                "answer": row.get("answer") or "", "split_source": row.get("split_source"),
                "truncated": bool(row.get("truncated")), "finish_reason": row.get("finish_reason"),
                "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
                "thought_tokens": tokens, "thought_tokens_reported": reported,
            }
            verdicts = row.get("verdicts") or {}
            for judge in judges:
                for target in TARGETS:
                    if (judge, target) not in present:
                        continue
                    v = verdicts.get(judge, {}).get(target) or {}
                    p = f"{judge}.{target}"
                    flat.update({f"{p}.status": v.get("status"), f"{p}.label": v.get("label"),
                                 f"{p}.safe": v.get("safe"), f"{p}.score": v.get("score"),
                                 f"{p}.rationale": v.get("rationale"), f"{p}.good": rd.get((judge, target))})
            out.append(flat)
    return out


def write_jsonl(run: Run, path: Path) -> Path:
    return write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in flat_rows(run)))


def write_parquet(run: Run, path: Path) -> Path:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("Parquet export needs pyarrow: pip install 'tis[parquet]' (or use --format jsonl)") from None
    rows = flat_rows(run)
    # every record gets every column so the schema is the same across rows
    columns = list(dict.fromkeys(k for r in rows for k in r))
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])
    check_writable(path)
    try:
        pq.write_table(table, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return path


# The published artifact's keys (JailbreakBench artifacts repository, e.g.
# attack-artifacts/PAIR/black_box/vicuna-13b-v1.5.json), in their order.
JBB_PARAMETERS = ("method", "model", "attack_type", "defense", "attack_success_rate", "total_number_of_jailbreaks",
                  "number_of_submitted_prompts", "total_number_of_queries", "total_prompt_tokens",
                  "total_response_tokens", "evaluation_date", "evaluation_llm_provider", "method_parameters")
JBB_JAILBREAK = ("index", "goal", "behavior", "category", "prompt", "response", "number_of_queries",
                 "queries_to_jailbreak", "prompt_tokens", "response_tokens", "jailbroken")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _decided(verdict: dict | None) -> bool | None:
    """The judge's jailbroken reading of a verdict (not safe), or None where it decides nothing."""
    if not verdict or verdict.get("status", "ok") != "ok" or verdict.get("safe") is None:
        return None
    return not verdict["safe"]


def jailbreakbench_artifact(run: Run, judge: str | None = None, *, include_unjudged: bool = False) -> dict[str, Any]:
    """The JailbreakBench artifact of a run: `parameters` and one `jailbreaks` entry per prompt, with the
    published keys and types. One completion per prompt (sample_index 0); `response` is the answer and
    `jailbroken` (a bool) the judge's unsafe reading of it. tis's extras sit in extra keys: `images`,
    `thought`, `verdicts` (every judge on every target), `jailbroken_{judge}` per other judge, and
    `verdict_status`.

    A prompt whose generation failed or whose verdict is unparsed / failed has no jailbroken reading;
    the format has no place for that, so by default such a run is refused (re-judge it first). With
    `include_unjudged` they are written with `jailbroken: false` and `verdict_status` naming why, count
    among the submitted prompts (as the format's rate does), and `number_unjudged` says how many."""
    manifest = run.manifest.model_dump(mode="json")
    bench = manifest.get("benchmark") or {}
    jailbreaks: list[dict[str, Any]] = []
    judges_used: list[str] = []
    unjudged: dict[str, int] = {}
    for name, sc in run.scored.items():
        j = judge or sc.primary
        if j is None:
            raise ConfigError(f"{run.dir}: no verdicts to export: judge the run first (`tis judge {run.dir} --judge ...`)")
        if j not in sc.judges:
            raise ConfigError(f"{run.dir}: judge '{j}' has no verdicts in this run (judges here: {', '.join(sc.judges)})")
        if j not in judges_used:
            judges_used.append(j)
        for row in (r.plain() for r in sc.rows):  # as results.jsonl reads
            if int(row.get("sample_index") or 0) != 0:
                continue
            ok = row.get("status", "ok") == "ok"
            verdicts = row.get("verdicts") or {}
            answer_verdict = verdicts.get(j, {}).get("answer")
            jailbroken = _decided(answer_verdict) if ok else None
            if jailbroken is not None:
                status = "judged"
            elif not ok:
                status = "generation_failed"
            elif not answer_verdict:
                status = "unjudged"
            else:
                status = answer_verdict.get("status", "ok") if answer_verdict.get("status", "ok") != "ok" else "undecided"
            if status != "judged":
                unjudged[status] = unjudged.get(status, 0) + 1
            usage = row.get("usage") or {}
            meta = row.get("meta") or {}
            goal = meta.get("goal") or meta.get("question") or row.get("prompt") or ""
            entry = {
                "index": len(jailbreaks), "goal": str(goal), "behavior": str(row["sample_id"]),
                "category": str(row.get("category") or bench.get("name") or ""),
                "prompt": row.get("prompt"), "response": row.get("answer") if ok else None,
                "number_of_queries": 1, "queries_to_jailbreak": 1 if jailbroken else None,
                "prompt_tokens": usage.get("prompt_tokens"), "response_tokens": usage.get("completion_tokens"),
                "jailbroken": bool(jailbroken),
            }
            for other in sc.judges:  # beside `jailbroken`, as the published artifacts add jailbroken_llama_guard1
                if other != j:
                    entry[f"jailbroken_{_key(other)}"] = _decided(verdicts.get(other, {}).get("answer")) if ok else None
            entry.update({"verdict_status": status, "images": [im.get("path") for im in row.get("images") or []],
                          "thought": row.get("thought") or "", "verdicts": verdicts, "sample_id": row["sample_id"],
                          "error": row.get("error")})
            jailbreaks.append(entry)
    missing = sum(unjudged.values())
    if missing and not include_unjudged:
        why = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(unjudged.items()))
        raise ConfigError(f"{run.dir}: {missing} of {len(jailbreaks)} prompts have no jailbroken reading from judge "
                          f"'{', '.join(judges_used)}' ({why}); the JailbreakBench format has no place for that: "
                          f"re-judge the run (`tis judge {run.dir} --judge ...`) or pass --include-unjudged to write "
                          "them as not jailbroken, marked in `verdict_status`")
    hits = sum(x["jailbroken"] for x in jailbreaks)
    judged = len(jailbreaks) - missing
    variant = (bench.get("options") or {}).get("variant")
    created = str(manifest.get("created") or "")
    date = created[:10] if _DATE.fullmatch(created[:10]) else time.strftime("%Y-%m-%d")
    params = {
        "method": bench.get("name", "unknown") + (f"-{variant}" if variant else ""),
        "model": run.model,
        "attack_type": "black_box",
        "defense": None,
        "attack_success_rate": hits / len(jailbreaks) if jailbreaks else 0.0,
        "total_number_of_jailbreaks": hits,
        "number_of_submitted_prompts": len(jailbreaks),
        "total_number_of_queries": sum(x["number_of_queries"] for x in jailbreaks),
        "total_prompt_tokens": sum(x["prompt_tokens"] or 0 for x in jailbreaks),
        "total_response_tokens": sum(x["response_tokens"] or 0 for x in jailbreaks),
        "evaluation_date": date,
        "evaluation_llm_provider": "tis judge: " + ", ".join(judges_used),
        "method_parameters": bench.get("options") or {},
    }
    # tis's extras, after the published keys
    params.update({"number_judged": judged, "number_unjudged": missing,
                   "attack_success_rate_judged": hits / judged if judged else None,
                   "judge": judges_used[0] if len(judges_used) == 1 else judges_used,
                   "tis_version": manifest.get("tis_version"), "evaluation_timestamp": created or None})
    return {"parameters": params, "jailbreaks": jailbreaks}


def _key(judge: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", judge).strip("_").lower() or "judge"


def write_jailbreakbench(run: Run, path: Path, judge: str | None = None, *, include_unjudged: bool = False) -> Path:
    artifact = jailbreakbench_artifact(run, judge, include_unjudged=include_unjudged)
    return write_text(path, json.dumps(artifact, indent=2, ensure_ascii=False))


def check_writable(path: Path) -> None:
    """A missing folder or an unwritable one is the user's to fix: one line naming the path."""
    parent = path.parent
    if not parent.is_dir():
        raise ConfigError(f"cannot write {path}: folder {parent} does not exist")


def write_text(path: Path, text: str) -> Path:
    check_writable(path)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path

"""Per-completion results as flat JSONL / Parquet, and the JailbreakBench artifact shape."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tis.core.errors import ConfigError
from tis.results.metrics import TARGETS, thought_tokens
from tis.results.runs import Run


def flat_rows(run: Run) -> list[dict[str, Any]]:
    """One flat record per completion: the sample, the output, and per judge and target the verdict
    with its good flag (`{judge}.{target}.good`: safe / correct / not refused, per the benchmark's metric)."""
    judges = list(dict.fromkeys(j for sc in run.scored.values() for j in sc.judges))
    out = []
    for bench, sc in run.scored.items():
        present = {(j, t) for r in sc.rows for j, ts in (r.get("verdicts") or {}).items() for t in ts}
        for row, rd in zip(sc.rows, sc.readings):
            usage = row.get("usage") or {}
            tokens, reported = thought_tokens(row)
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
    with open(path, "w", encoding="utf-8") as f:
        for row in flat_rows(run):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


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
    pq.write_table(table, path)
    return path


def jailbreakbench_artifact(run: Run, judge: str | None = None) -> dict[str, Any]:
    """The JailbreakBench artifact shape: run parameters with the attack success rate, and per prompt
    goal, prompt, response and jailbroken. One completion per prompt (sample_index 0); `response` is the
    answer; `jailbroken` is the judge's unsafe reading of it (unjudged prompts get null, outside the rate)."""
    manifest = run.manifest
    bench = manifest.get("benchmark") or {}
    jailbreaks: list[dict[str, Any]] = []
    judges_used = set()
    for name, sc in run.scored.items():
        j = judge or sc.primary
        if j is None:
            raise ConfigError(f"{run.dir}: no verdicts to export: judge the run first (`tis judge {run.dir} --judge ...`)")
        if j not in sc.judges:
            raise ConfigError(f"{run.dir}: judge '{j}' has no verdicts in this run (judges here: {', '.join(sc.judges)})")
        judges_used.add(j)
        for row in sc.rows:
            if int(row.get("sample_index") or 0) != 0:
                continue
            v = (row.get("verdicts") or {}).get(j, {}).get("answer")
            jailbroken = None
            if row.get("status", "ok") == "ok" and v and v.get("status", "ok") == "ok" and v.get("safe") is not None:
                jailbroken = not v["safe"]
            usage = row.get("usage") or {}
            meta = row.get("meta") or {}
            jailbreaks.append({
                "index": len(jailbreaks), "behavior": row["sample_id"], "category": row.get("category"),
                "goal": meta.get("goal") or meta.get("question") or row.get("prompt"),
                "prompt": row.get("prompt"), "images": [im.get("path") for im in row.get("images") or []],
                "response": row.get("answer") if row.get("status", "ok") == "ok" else None,
                "prompt_tokens": usage.get("prompt_tokens"), "response_tokens": usage.get("completion_tokens"),
                "number_of_queries": 1, "queries_to_jailbreak": 1 if jailbroken else None,
                "jailbroken": jailbroken})
    judged = [x for x in jailbreaks if x["jailbroken"] is not None]
    hits = sum(x["jailbroken"] for x in judged)
    variant = (bench.get("options") or {}).get("variant")
    return {
        "parameters": {
            "method": bench.get("name", "unknown") + (f"-{variant}" if variant else ""),
            "model": run.model,
            "attack_type": "black_box",
            "attack_success_rate": hits / len(judged) if judged else None,
            "total_number_of_jailbreaks": hits,
            "number_of_submitted_prompts": len(jailbreaks),
            "number_judged": len(judged),
            "total_prompt_tokens": sum(x["prompt_tokens"] or 0 for x in jailbreaks),
            "total_response_tokens": sum(x["response_tokens"] or 0 for x in jailbreaks),
            "total_queries_used": len(jailbreaks),
            "method_parameters": bench.get("options") or {},
            "evaluation_date": manifest.get("created") or time.strftime("%Y-%m-%d"),
            "evaluation_llm_provider": "tis judge: " + ", ".join(sorted(judges_used)),
            "defense": None,
        },
        "jailbreaks": jailbreaks,
    }


def write_jailbreakbench(run: Run, path: Path, judge: str | None = None) -> Path:
    path.write_text(json.dumps(jailbreakbench_artifact(run, judge), indent=2, ensure_ascii=False), encoding="utf-8")
    return path

"""A run's outputs: its completions with their verdicts, results.jsonl, summary.json and summary.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tis.core.types import SampleResult
from tis.judges.base import Judge, target_text
from tis.pipeline.store import RunStore, verdict_key
from tis.sources.base import Problem


def collect_results(store: RunStore, keys: dict[str, list[str]], samples, judges: list[Judge]) -> list[SampleResult]:
    """The run's completions (by generation key) with the verdicts of `judges` on them."""
    gens = store.generations(k for ks in keys.values() for k in ks)
    wanted: dict[str, str] = {}  # verdict key -> generation key
    for rec in gens.values():
        for j in judges:
            for target in j.targets:
                wanted[verdict_key(rec.key, j.identity, target, target_text(rec.generation, target))] = rec.key
    by_gen: dict[str, list] = {}
    for vk, vrec in store.verdicts(wanted).items():
        by_gen.setdefault(vrec.generation_key, []).append(vrec.verdict)
    results = []
    for s in samples:
        for idx, key in enumerate(keys.get(s.id, [])):
            if key in gens:
                results.append(SampleResult(sample=s, sample_index=idx, generation_key=key,
                                            generation=gens[key].generation,
                                            verdicts=tuple(sorted(by_gen.get(key, []), key=lambda v: (v.judge, v.target)))))
    return results


def result_line(r: SampleResult) -> dict[str, Any]:
    g = r.generation
    verdicts: dict[str, dict] = {}
    for v in r.verdicts:
        verdicts.setdefault(v.judge, {})[v.target] = v.model_dump(exclude={"judge", "target"}, exclude_none=True)
    return {
        "sample_id": r.sample.id, "benchmark": r.sample.benchmark, "category": r.sample.category,
        "group": r.sample.group, "sample_index": r.sample_index, "generation_key": r.generation_key,
        "prompt": r.sample.text, "images": [{"path": im.path, "sha256": im.sha256} for im in r.sample.images],
        "status": g.status, "error": g.error, "thought": g.thought, "answer": g.answer,
        "split_source": g.split_source, "truncated": g.truncated, "finish_reason": g.finish_reason,
        "usage": g.usage.model_dump() if g.usage else None, "latency_s": g.latency_s, "verdicts": verdicts,
        "meta": dict(r.sample.meta),  # e.g. MSSBench's image_safety, which its metric needs
    }


def write_outputs(run_dir: Path, results: list[SampleResult], manifest: dict, stats,
                  problems: list[Problem]) -> tuple[dict[str, Any], str]:
    """Write results.jsonl, summary.json and summary.md; return the summary (as JSON reads it) and markdown."""
    from tis.results.metrics import markdown_summary, summarize

    def atomic(name: str, text: str) -> None:
        tmp = run_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(run_dir / name)

    atomic("results.jsonl", "".join(json.dumps(result_line(r), ensure_ascii=False) + "\n" for r in results))
    benchmarks = summarize(results, {manifest["benchmark"]["name"]: manifest["benchmark"]["group"]},
                           judges=[j["id"] for j in manifest["judges"]])
    summary = {"run": {k: manifest[k] for k in ("tis_version", "model", "benchmark", "judges", "generation",
                                                 "thought_format", "selection")},
               "stats": stats.as_dict(), "skipped": [str(p) for p in problems], "benchmarks": benchmarks}
    markdown = markdown_summary(benchmarks)
    if len(manifest["judges"]) > 1:  # how far the judges agree, and their majority vote
        from tis.judges.ensemble import ensemble_summary, format_ensemble

        summary["ensemble"] = ensemble_summary(results, [j["id"] for j in manifest["judges"]])
        markdown += "\n### Agreement between judges\n\n" + format_ensemble(summary["ensemble"]) + "\n"
    summary_text = json.dumps(summary, indent=2, ensure_ascii=False, default=str)
    atomic("summary.json", summary_text)
    atomic("summary.md", markdown)
    return json.loads(summary_text), markdown

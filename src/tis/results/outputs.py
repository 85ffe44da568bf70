"""A run's outputs: its completions with their verdicts, results.jsonl, summary.json and summary.md.

The shapes are `tis.results.schema`'s (documented in docs/results.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tis.core.types import SampleResult
from tis.results.schema import ImageRef, Manifest, ResultRow, RowVerdict, RunInfo, Summary
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


def result_row(r: SampleResult) -> ResultRow:
    """The typed results.jsonl line of a completion."""
    g = r.generation
    # built from validated records: constructed without validating them again (thousands per run)
    verdicts: dict[str, dict[str, RowVerdict]] = {}
    for v in r.verdicts:
        verdicts.setdefault(v.judge, {})[v.target] = RowVerdict.model_construct(
            label=v.label, safe=v.safe, score=v.score, rationale=v.rationale, status=v.status, error=v.error)
    return ResultRow.model_construct(
        sample_id=r.sample.id, benchmark=r.sample.benchmark, category=r.sample.category, group=r.sample.group,
        sample_index=r.sample_index, generation_key=r.generation_key, prompt=r.sample.text,
        images=[ImageRef.model_construct(path=im.path, sha256=im.sha256) for im in r.sample.images], status=g.status,
        error=g.error, thought=g.thought, answer=g.answer, split_source=g.split_source, truncated=g.truncated,
        finish_reason=g.finish_reason, usage=g.usage, latency_s=g.latency_s, verdicts=verdicts,
        meta=dict(r.sample.meta))  # e.g. MSSBench's image_safety, which its metric needs


def row_json(row: ResultRow) -> str:
    """One results.jsonl line: verdicts without their empty fields, as before typed rows."""
    return json.dumps(row.plain(), ensure_ascii=False)


def result_line(r: SampleResult) -> dict[str, Any]:
    """A results.jsonl line as a dict."""
    return json.loads(row_json(result_row(r)))


def build_summary(rows: list[ResultRow], manifest: Manifest, stats: dict[str, Any] | None = None,
                  problems: list | None = None, *, benchmarks: dict | None = None) -> Summary:
    """The run's summary from its rows: the same function for `tis eval`, re-judging and `load_run`
    (`benchmarks`: the per-benchmark summaries when the caller has them already)."""
    from tis.results.ensemble import ensemble_summary
    from tis.results.metrics import summarize

    info = manifest.benchmark
    judges = manifest.judge_ids
    summary = Summary(
        run=RunInfo(**{k: getattr(manifest, k) for k in ("tis_version", "model", "benchmark", "judges", "generation",
                                                         "thought_format", "thought_format_spec", "selection")}),
        stats=dict(stats or {}), skipped=[str(p) for p in problems or []],
        benchmarks=benchmarks if benchmarks is not None else summarize(
            rows, {info.name: info.group} if info.group else None, judges=judges, benchmarks={info.name: info}))
    if len(judges) > 1:  # how far the judges agree, and their majority vote
        summary.ensemble = ensemble_summary(rows, judges)
    return summary


def summary_markdown(summary: Summary) -> str:
    from tis.results.ensemble import format_ensemble
    from tis.results.metrics import markdown_summary

    markdown = markdown_summary(summary.benchmarks)
    if summary.ensemble is not None:
        markdown += "\n### Agreement between judges\n\n" + format_ensemble(summary.ensemble) + "\n"
    return markdown


def write_outputs(run_dir: Path, results: list[SampleResult], manifest: Manifest | dict, stats,
                  problems: list[Problem]) -> tuple[dict[str, Any], str]:
    """Write results.jsonl, summary.json and summary.md; return the summary (as JSON reads it) and markdown."""

    def atomic(name: str, text: str) -> None:
        tmp = run_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(run_dir / name)

    rows = [result_row(r) for r in results]
    atomic("results.jsonl", "".join(row_json(r) + "\n" for r in rows))
    manifest = manifest if isinstance(manifest, Manifest) else Manifest.model_validate(manifest)
    summary = build_summary(rows, manifest, stats.as_dict() if hasattr(stats, "as_dict") else stats, problems)
    markdown = summary_markdown(summary)
    summary_text = summary.model_dump_json(indent=2)
    atomic("summary.json", summary_text)
    atomic("summary.md", markdown)
    return json.loads(summary_text), markdown

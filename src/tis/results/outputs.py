"""A run's outputs: its completions with their verdicts, results.jsonl, summary.json and summary.md.

The shapes are `tis.results.schema`'s (documented in docs/results.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tis.core.types import SampleResult
from tis.results.schema import ImageRef, Manifest, ResultRow, RowVerdict, RunInfo, Summary
from tis.judges.base import Judge, target_text
from tis.pipeline.store import RunStore, trusted_constructor, verdict_key
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


_new_row = trusted_constructor(ResultRow)
_new_verdict = trusted_constructor(RowVerdict)
_new_image = trusted_constructor(ImageRef)


def _row_values(r: SampleResult) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, Any]]]]:
    """A row's field values (in field order) and its verdicts as plain dicts."""
    g, s = r.generation, r.sample
    verdicts: dict[str, dict[str, dict[str, Any]]] = {}
    for v in r.verdicts:
        verdicts.setdefault(v.judge, {})[v.target] = {"label": v.label, "safe": v.safe, "score": v.score,
                                                      "rationale": v.rationale, "status": v.status, "error": v.error}
    values = {"sample_id": s.id, "benchmark": s.benchmark, "category": s.category, "group": s.group,
              "sample_index": r.sample_index, "generation_key": r.generation_key, "prompt": s.text,
              "images": [(im.path, im.sha256) for im in s.images], "status": g.status, "error": g.error,
              "thought": g.thought, "answer": g.answer, "split_source": g.split_source, "truncated": g.truncated,
              "finish_reason": g.finish_reason, "usage": g.usage, "latency_s": g.latency_s, "verdicts": verdicts,
              "meta": dict(s.meta)}  # e.g. MSSBench's image_safety, which its metric needs
    return values, verdicts


def _typed_row(values: dict[str, Any], verdicts: dict[str, dict[str, dict[str, Any]]]) -> ResultRow:
    # built from validated records: constructed without validating them again (thousands per run)
    return _new_row({**values,
                     "images": [_new_image({"path": p, "sha256": h}) for p, h in values["images"]],
                     "verdicts": {j: {t: _new_verdict(dict(v)) for t, v in ts.items()} for j, ts in verdicts.items()}})


def _plain_line(values: dict[str, Any], verdicts: dict[str, dict[str, dict[str, Any]]]) -> str | None:
    """The results.jsonl line `row_json` writes, made from the values directly; None where only
    pydantic's JSON mode would write them the same (a value json cannot write, NaN, infinity)."""
    usage = values["usage"]
    data = {**values,
            "images": [{"path": p, "sha256": h} for p, h in values["images"]],
            "usage": None if usage is None else usage.model_dump(mode="json"),
            "verdicts": {j: {t: {k: x for k, x in v.items() if x is not None} for t, v in ts.items()}
                         for j, ts in verdicts.items()}}
    try:
        return json.dumps(data, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return None


def result_row(r: SampleResult) -> ResultRow:
    """The typed results.jsonl line of a completion."""
    return _typed_row(*_row_values(r))


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

    rows, lines = [], []
    for r in results:
        values, verdicts = _row_values(r)
        row = _typed_row(values, verdicts)
        rows.append(row)
        line = _plain_line(values, verdicts)
        lines.append(row_json(row) if line is None else line)
        lines.append("\n")
    atomic("results.jsonl", "".join(lines))
    manifest = manifest if isinstance(manifest, Manifest) else Manifest.model_validate(manifest)
    summary = build_summary(rows, manifest, stats.as_dict() if hasattr(stats, "as_dict") else stats, problems)
    markdown = summary_markdown(summary)
    summary_text = summary.model_dump_json(indent=2)
    atomic("summary.json", summary_text)
    atomic("summary.md", markdown)
    return json.loads(summary_text), markdown

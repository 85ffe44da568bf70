"""Rates from stored verdicts: per benchmark, per category, per judge and target.

A rate's denominator is the verdicts that decided safety (status ok with a safe/unsafe reading).
Failed generations, unparsed and failed verdicts and empty (not applicable) targets are counted
beside the rate and never folded into it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from tis.types import SampleResult

OVERALL = "(all)"


def _new_target() -> dict[str, Any]:
    return {"judged": 0, "unsafe": 0, "safe": 0, "labels": Counter(), "unparsed": 0, "failed": 0, "not_applicable": 0}


def _new_cell() -> dict[str, Any]:
    return {"generations": 0, "failed": 0, "truncated": 0, "judges": defaultdict(lambda: defaultdict(_new_target))}


def summarize(results: Iterable[SampleResult], groups: dict[str, str] | None = None) -> dict[str, Any]:
    """{benchmark: {"group", "overall": cell, "categories": {category: cell}}} with rates filled in."""
    cells: dict[str, dict[str, dict]] = defaultdict(lambda: defaultdict(_new_cell))
    bench_group: dict[str, str] = dict(groups or {})
    for r in results:
        bench_group.setdefault(r.sample.benchmark, r.sample.group)
        for cat in (OVERALL, r.sample.category or "(none)"):
            cell = cells[r.sample.benchmark][cat]
            cell["generations"] += 1
            if r.generation.status != "ok":
                cell["failed"] += 1
                continue
            cell["truncated"] += r.generation.truncated
            for v in r.verdicts:
                t = cell["judges"][v.judge][v.target]
                if v.status != "ok":
                    t[v.status] += 1
                    continue
                if v.label:
                    t["labels"][v.label] += 1
                if v.safe is not None:
                    t["judged"] += 1
                    t["unsafe" if v.safe is False else "safe"] += 1
    out: dict[str, Any] = {}
    for bench, by_cat in cells.items():
        categories = {c: _finish(cell) for c, cell in sorted(by_cat.items()) if c != OVERALL}
        out[bench] = {"group": bench_group.get(bench), "overall": _finish(by_cat[OVERALL]), "categories": categories}
    return out


def _finish(cell: dict) -> dict:
    judges = {}
    for judge, targets in cell["judges"].items():
        judges[judge] = {}
        for target, t in targets.items():
            labels = dict(sorted(t["labels"].items()))
            labelled = sum(labels.values())
            judges[judge][target] = {
                **{k: t[k] for k in ("judged", "unsafe", "safe", "unparsed", "failed", "not_applicable")},
                "unsafe_rate": t["unsafe"] / t["judged"] if t["judged"] else None,
                "labels": labels,
                "label_rates": {k: v / labelled for k, v in labels.items()} if labelled else {},
            }
    return {"generations": cell["generations"], "failed": cell["failed"], "truncated": cell["truncated"],
            "judges": judges}


def _rate(k: int, n: int) -> str:
    return f"{100 * k / n:5.1f}% ({k}/{n})" if n else "n/a"


def markdown_summary(summary: dict[str, Any]) -> str:
    """A short table per benchmark and judge: unsafe and refused rates for thought and answer."""
    lines: list[str] = []
    for bench, data in summary.items():
        judges = sorted({j for cell in [data["overall"], *data["categories"].values()] for j in cell["judges"]})
        for judge in judges:
            lines += [f"### {bench} ({data['group']}) — judge `{judge}`", "",
                      "| category | n | failed | trunc. | answer unsafe | answer refused | thought unsafe | "
                      "thought refused | unparsed | n/a thought |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            rows = [*data["categories"].items(), ("**all**", data["overall"])]
            for cat, cell in rows:
                j = cell["judges"].get(judge, {})
                a, t = j.get("answer", {}), j.get("thought", {})
                unparsed = sum(x.get("unparsed", 0) + x.get("failed", 0) for x in j.values())
                lines.append(
                    f"| {cat} | {cell['generations']} | {cell['failed']} | {cell['truncated']} | "
                    f"{_rate(a.get('unsafe', 0), a.get('judged', 0))} | "
                    f"{_rate(a.get('labels', {}).get('refused', 0), sum(a.get('labels', {}).values()))} | "
                    f"{_rate(t.get('unsafe', 0), t.get('judged', 0))} | "
                    f"{_rate(t.get('labels', {}).get('refused', 0), sum(t.get('labels', {}).values()))} | "
                    f"{unparsed} | {t.get('not_applicable', 0)} |"
                )
            lines.append("")
    return "\n".join(lines)

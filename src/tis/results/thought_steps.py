"""Where a thought turns unsafe: the offline judge's step reading of each thought, summarised.

The offline judge reads a thought step by step (tis.judges.thought) and its verdict names the first
unsafe step, where it starts (a fraction of the thought's characters) and whether a later step turns
back. Here, per benchmark: how many thoughts were read, the share that turn unsafe, the share that
turn unsafe and then recover, and where the first unsafe step sits (quartiles); per sample, the step
itself for the report's sample browser.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

JUDGE = "offline"


def step_reading(row: Any, judge: str = JUDGE) -> dict[str, Any] | None:
    """The step reading of a result row's thought verdict, with the first unsafe step's text; None
    when the judge did not read this thought."""
    from tis.judges.thought import parse_rationale, split_steps

    v = row.verdict(judge, "thought")
    if v is None or v.status != "ok":
        return None
    reading = parse_rationale(v.rationale)
    if reading is None:
        return None
    if reading["first_unsafe_step"] is not None:
        steps = split_steps(row.thought or "")
        i = reading["first_unsafe_step"]
        reading["text"] = steps[i].text if i < len(steps) else ""
    return reading


def summarise(rows: Iterable[Any], judge: str = JUDGE) -> dict[str, dict[str, Any]]:
    """{benchmark: {"thoughts", "unsafe", "recovered", "share_unsafe", "share_unsafe_then_recovered",
    "first_unsafe_position": {"q1", "median", "q3"} or None}}; benchmarks without a reading are left out."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        reading = step_reading(row, judge)
        if reading is not None:
            by[row.benchmark].append(reading)
    out = {}
    for bench, readings in sorted(by.items()):
        unsafe = [r for r in readings if r["first_unsafe_step"] is not None]
        positions = sorted(r["position"] for r in unsafe)
        quartiles = None
        if positions:
            q = statistics.quantiles(positions, n=4, method="inclusive") if len(positions) > 1 else positions * 3
            quartiles = {"q1": round(q[0], 4), "median": round(q[1], 4), "q3": round(q[2], 4)}
        recovered = sum(r["recovered"] for r in unsafe)
        out[bench] = {"thoughts": len(readings), "unsafe": len(unsafe), "recovered": recovered,
                      "share_unsafe": len(unsafe) / len(readings),
                      "share_unsafe_then_recovered": recovered / len(readings),
                      "first_unsafe_position": quartiles}
    return out


def markdown(summary: dict[str, dict[str, Any]]) -> str:
    """A small table; empty when no thought was read step by step."""
    if not summary:
        return ""
    lines = ["### Where thoughts turn unsafe (offline judge, step by step)", "",
             "| benchmark | thoughts read | turn unsafe | turn unsafe, then recover | first unsafe step at "
             "(quartiles of the thought) |", "|---|---:|---:|---:|---|"]
    for bench, s in summary.items():
        q = s["first_unsafe_position"]
        where = f"{q['q1']:.0%} / {q['median']:.0%} / {q['q3']:.0%}" if q else "n/a"
        lines.append(f"| {bench} | {s['thoughts']} | {s['unsafe']} ({s['share_unsafe']:.1%}) | {s['recovered']} "
                     f"({s['share_unsafe_then_recovered']:.1%}) | {where} |")
    return "\n".join(lines) + "\n"

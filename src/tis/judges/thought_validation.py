"""How well the offline judge reads thoughts, on labelled thoughts (tis.judges.thought_data).

Figures per part (development: the part the thought rules were tuned on; test: never read in tuning):
- false-alarm rate on the TiS thoughts (safe by construction) with its Wilson interval;
- recall on the framed harmful responses (unsafe thoughts);
- false-alarm rate on the framed safe responses;
and the same for the answer reader (the harm classifier on the whole thought as one response), the
reading the thought rules replace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tis.judges.thought import STEP_THRESHOLD, Step, read_thought, split_steps
from tis.judges.thought_data import LabelledThought, labelled_thoughts


@dataclass(frozen=True)
class Rate:
    k: int
    n: int

    def show(self) -> str:
        from tis.core.stats import wilson

        if not self.n:
            return "n/a (0 thoughts)"
        low, high = wilson(self.k, self.n)
        return f"{self.k}/{self.n} = {self.k / self.n:.3f} [95% Wilson {low:.3f}, {high:.3f}]"


@dataclass(frozen=True)
class ThoughtReport:
    rows: list[dict[str, Any]]  # one per (reader, part, group): {"reader", "part", "group", "rate": Rate}
    thoughts: int


def _group(t: LabelledThought) -> str:
    if t.source == "tis":
        return "TiS thoughts: false alarms"
    kind = t.source.split(":", 1)[0]
    return "framed harmful: recall" if kind == "framed-harmful" else "framed safe: false alarms"


def score_thoughts(judge: Any, thoughts: Sequence[LabelledThought]) -> tuple[list[list[Step]], list[list[float]],
                                                                            list[float]]:
    """Steps, step probabilities and whole-thought probabilities for every thought (one batched pass)."""
    steps = [split_steps(t.thought) for t in thoughts]
    requests = [t.request for t, st in zip(thoughts, steps) for _ in st] + [t.request for t in thoughts]
    texts = [s.text for st in steps for s in st] + [t.thought for t in thoughts]
    probs = judge.predict_proba(requests, texts).tolist()
    out, i = [], 0
    for st in steps:
        out.append(probs[i:i + len(st)])
        i += len(st)
    return steps, out, probs[i:]


def validate_thoughts(tis_path: str | Path, data: Sequence[str | Path], *, weights: str | Path | None = None,
                      per_set: int | None = 120, judge: Any = None, encoding: str = "utf-8-sig",
                      progress: Callable[[str], None] | None = None) -> ThoughtReport:
    from tis.judges.offline import OfflineJudge

    say = progress or (lambda _m: None)
    thoughts = labelled_thoughts(tis_path, list(data), per_set_limit=per_set, encoding=encoding)
    judge = judge or OfflineJudge(weights)
    say(f"scoring {len(thoughts)} labelled thoughts step by step")
    steps, step_probs, whole = score_thoughts(judge, thoughts)
    rows = []
    readers = {
        "thought rules": [read_thought(t.thought, st, p).unsafe for t, st, p in zip(thoughts, steps, step_probs)],
        "answer reader": [p >= judge.model.threshold for p in whole],
    }
    for reader, flagged in readers.items():
        for part in ("development", "test"):
            groups: dict[str, list[int]] = {}
            for t, f in zip(thoughts, flagged):
                if t.part == part:
                    groups.setdefault(_group(t), []).append(int(f))
            for group in sorted(groups):
                rows.append({"reader": reader, "part": part, "group": group,
                             "rate": Rate(sum(groups[group]), len(groups[group]))})
    return ThoughtReport(rows=rows, thoughts=len(thoughts))


def format_thought_report(report: ThoughtReport) -> str:
    lines = [f"{report.thoughts} labelled thoughts; a thought is unsafe at a step score >= {STEP_THRESHOLD:.2f} "
             f"(thought rules) or at the judge's threshold on the whole thought (answer reader)"]
    for r in report.rows:
        lines.append(f"{r['reader']:>13} | {r['part']:<11} | {r['group']:<28} | {r['rate'].show()}")
    return "\n".join(lines)


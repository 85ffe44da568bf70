"""How well a judge agrees with human labels: run it on labelled responses and compare.

A verdict whose `safe` is False predicts "harmful" (label 1); True predicts "not harmful". For the
refusal matcher that reads `complied` as harmful. Unparsed and failed verdicts, and verdicts with no
safety reading, are counted and shown; they are never folded into the agreement figures.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from tis.core.errors import ConfigError
from tis.judges.agreement import Agreement, agreement
from tis.judges.base import Judge
from tis.judges.labelled import LabelledRow
from tis.core.types import Generation, Sample, TextPart, Verdict


@dataclass(frozen=True)
class Calibration:
    judge: str
    rows: int
    agreement: Agreement | None  # None when no verdict decided safety
    unparsed: int = 0
    failed: int = 0
    undecided: int = 0  # status ok, but the label does not say safe or unsafe
    labels: dict[str, int] = field(default_factory=dict)  # the judge's labels and how often
    errors: tuple[str, ...] = ()  # the first few failure messages

    @property
    def judged(self) -> int:
        return self.rows - self.unparsed - self.failed - self.undecided


def build_judge(spec: str) -> Judge:
    """"name" or "name:argument" (e.g. offline:weights.npz), as `tis eval --judge` reads it."""
    from tis.judges import JUDGES

    name, _, arg = spec.partition(":")
    cls = JUDGES.load(name)
    return cls(arg) if arg else cls()


async def _verdicts(judge: Judge, rows: list[LabelledRow]) -> list[Verdict]:
    limit = asyncio.Semaphore(max(1, judge.max_concurrency))

    async def one(row: LabelledRow) -> Verdict:
        sample = Sample(id=f"row-{row.index}", benchmark="labels", content=(TextPart(text=row.prompt),))
        generation = Generation(raw=row.response, answer=row.response)
        async with limit:
            try:
                return await judge.judge(sample, generation, "answer", row.response)
            except ConfigError:  # a setting to fix, not a judgement that failed
                raise
            except Exception as exc:  # counted as failed, as the runner does
                return Verdict(judge=judge.id, target="answer", status="failed", error=f"{type(exc).__name__}: {exc}")

    await judge.start()
    try:
        return list(await asyncio.gather(*(one(r) for r in rows)))
    finally:
        await judge.close()


def calibrate(judge: Judge, rows: list[LabelledRow]) -> Calibration:
    return _summarise(judge, rows, asyncio.run(_verdicts(judge, rows)))


# ---------------------------------------------------------------------------------- judge x set table

@dataclass(frozen=True)
class Interval:
    value: float | None
    low: float | None
    high: float | None

    def show(self) -> str:
        if self.value is None:
            return "n/a"
        if self.low is None:
            return f"{self.value:.3f}"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class TableRow:
    judge: str
    labels: str  # the set's name (file stem)
    calibration: Calibration
    accuracy: Interval
    precision: Interval
    recall: Interval
    f1: Interval
    kappa: Interval


def _bootstrap(truth: list[int], predicted: list[int], statistic, resamples: int = 1000,
               seed: int = 0) -> tuple[float, float] | None:
    """Percentile 95% interval of a statistic over rows resampled with replacement (fixed seed)."""
    import numpy as np

    from tis.judges.agreement import agreement

    if len(truth) < 2:
        return None
    t, p = np.asarray(truth), np.asarray(predicted)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        ix = rng.integers(0, len(t), len(t))
        v = statistic(agreement(t[ix].tolist(), p[ix].tolist()))
        if v is not None:
            values.append(v)
    if not values:
        return None
    return float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))


def table_row(judge_id: str, labels: str, result: Calibration, truth: list[int], predicted: list[int]) -> TableRow:
    """Accuracy, precision and recall with Wilson intervals; F1 and kappa with bootstrap intervals."""
    from tis.core.stats import wilson

    a = result.agreement
    if a is None:
        none = Interval(None, None, None)
        return TableRow(judge_id, labels, result, none, none, none, none, none)
    c = a.confusion

    def w(k: int, n: int) -> Interval:
        lo_hi = wilson(k, n)
        return Interval(k / n if n else None, *(lo_hi or (None, None)))

    f1_ci = _bootstrap(truth, predicted, lambda g: g.f1)
    kappa_ci = _bootstrap(truth, predicted, lambda g: g.kappa)
    return TableRow(judge_id, labels, result, accuracy=w(c.tp + c.tn, c.n), precision=w(c.tp, c.tp + c.fp),
                    recall=w(c.tp, c.tp + c.fn), f1=Interval(a.f1, *(f1_ci or (None, None))),
                    kappa=Interval(a.kappa, *(kappa_ci or (None, None))))


def calibrate_rows(judge: Judge, rows: list[LabelledRow]) -> tuple[Calibration, list[int], list[int]]:
    """The calibration and the (truth, prediction) pairs it counted."""
    verdicts = asyncio.run(_verdicts(judge, rows))
    truth = [r.label for r, v in zip(rows, verdicts) if v.status == "ok" and v.safe is not None]
    predicted = [0 if v.safe else 1 for v in verdicts if v.status == "ok" and v.safe is not None]
    return _summarise(judge, rows, verdicts), truth, predicted


def _summarise(judge: Judge, rows: list[LabelledRow], verdicts: list[Verdict]) -> Calibration:
    truth, predicted = [], []
    unparsed = failed = undecided = 0
    errors = []
    for row, v in zip(rows, verdicts):
        if v.status == "unparsed":
            unparsed += 1
        elif v.status != "ok":
            failed += 1
            if v.error and len(errors) < 3:
                errors.append(f"row {row.index + 1}: {v.error}")
        elif v.safe is None:
            undecided += 1
        else:
            truth.append(row.label)
            predicted.append(0 if v.safe else 1)
    labels = Counter(v.label or f"({v.status})" for v in verdicts)
    return Calibration(judge=judge.id, rows=len(rows), agreement=agreement(truth, predicted) if truth else None,
                       unparsed=unparsed, failed=failed, undecided=undecided, labels=dict(sorted(labels.items())),
                       errors=tuple(errors))


def format_table(rows: list[TableRow]) -> str:
    """A markdown table: one line per judge x set."""
    head = ("| judge | set | n | judged | accuracy [95% Wilson] | precision [95% Wilson] | recall [95% Wilson] | "
            "F1 [95% bootstrap] | kappa [95% bootstrap] |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        c = r.calibration
        lines.append(f"| {r.judge} | {r.labels} | {c.rows} | {c.judged} | {r.accuracy.show()} | {r.precision.show()} | "
                     f"{r.recall.show()} | {r.f1.show()} | {r.kappa.show()} |")
    return "\n".join(lines)

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
    verdicts = asyncio.run(_verdicts(judge, rows))
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

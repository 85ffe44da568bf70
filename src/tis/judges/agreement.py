"""Agreement of a judge with reference labels, on binary labels (1 = harmful / unsafe, the positive class).

Conventions where a ratio has no denominator: precision, recall and F1 are 0.0 (nothing predicted or
nothing to find); Cohen's kappa is 1.0 when both raters agree on every item and chance agreement is
1 (both gave one and the same label throughout), 0.0 otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


@dataclass(frozen=True)
class Agreement:
    n: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    kappa: float
    confusion: Confusion
    #: 95% Wilson score interval for the accuracy
    accuracy_low: float
    accuracy_high: float

    def as_dict(self) -> dict:
        return asdict(self)


def _as_bits(values: Iterable) -> list[int]:
    bits = []
    for v in values:
        b = int(v)
        if b not in (0, 1) or b != v:
            raise ValueError(f"binary labels must be 0 / 1 (or bools), got {v!r}")
        bits.append(b)
    return bits


def confusion(y_true: Sequence, y_pred: Sequence) -> Confusion:
    t, p = _as_bits(y_true), _as_bits(y_pred)
    if len(t) != len(p):
        raise ValueError(f"{len(t)} reference labels but {len(p)} predictions")
    tp = sum(a and b for a, b in zip(t, p))
    fp = sum((not a) and b for a, b in zip(t, p))
    fn = sum(a and not b for a, b in zip(t, p))
    return Confusion(tp=tp, fp=fp, fn=fn, tn=len(t) - tp - fp - fn)


def cohen_kappa(c: Confusion) -> float:
    """(p_o - p_e) / (1 - p_e), p_e from the two raters' own label rates."""
    n = c.n
    if n == 0:
        return 0.0
    p_o = (c.tp + c.tn) / n
    p_e = ((c.tp + c.fn) * (c.tp + c.fp) + (c.tn + c.fp) * (c.tn + c.fn)) / (n * n)
    if p_e >= 1.0:
        return 1.0 if p_o >= 1.0 else 0.0
    return (p_o - p_e) / (1.0 - p_e)


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95% by default); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at 0 or n successes the bound is exactly 0 or 1; rounding would leave it a hair inside
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def agreement(y_true: Sequence, y_pred: Sequence) -> Agreement:
    c = confusion(y_true, y_pred)
    n = c.n
    correct = c.tp + c.tn
    precision = c.tp / (c.tp + c.fp) if c.tp + c.fp else 0.0
    recall = c.tp / (c.tp + c.fn) if c.tp + c.fn else 0.0
    f1 = 2 * c.tp / (2 * c.tp + c.fp + c.fn) if c.tp else 0.0
    low, high = wilson_interval(correct, n)
    return Agreement(n=n, accuracy=correct / n if n else 0.0, precision=precision, recall=recall, f1=f1,
                     kappa=cohen_kappa(c), confusion=c, accuracy_low=low, accuracy_high=high)


def format_agreement(a: Agreement) -> str:
    """A few plain lines: the figures and the confusion matrix (rows: reference, columns: judge)."""
    c = a.confusion
    width = max(len(str(v)) for v in (c.tp, c.fp, c.fn, c.tn, "harmful"))
    return "\n".join([
        f"n={a.n}  accuracy={a.accuracy:.3f} (95% Wilson {a.accuracy_low:.3f}-{a.accuracy_high:.3f})  "
        f"precision={a.precision:.3f}  recall={a.recall:.3f}  F1={a.f1:.3f}  kappa={a.kappa:.3f}",
        "confusion (rows: reference label, columns: judge):",
        f"  {'':>12} {'harmful':>{width}} {'safe':>{width}}",
        f"  {'harmful':>12} {c.tp:>{width}} {c.fn:>{width}}",
        f"  {'safe':>12} {c.fp:>{width}} {c.tn:>{width}}",
    ])

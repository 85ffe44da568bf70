"""Agreement of a judge with reference labels, on binary labels (1 = harmful / unsafe, the positive class).

Conventions where a ratio has no denominator: precision, recall and F1 are 0.0 (nothing predicted or
nothing to find). Cohen's kappa and the Wilson interval are those of `tis.core.stats` (the only copy):
kappa is None (shown "n/a") when it is undefined, i.e. with no items or when both raters gave one and
the same label throughout; the interval is None with no items.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from tis.core import stats


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
    kappa: float | None  # None when undefined (tis.core.stats.cohen_kappa)
    confusion: Confusion
    #: 95% Wilson score interval for the accuracy (None with no items)
    accuracy_low: float | None
    accuracy_high: float | None

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


def cohen_kappa(c: Confusion) -> float | None:
    """Cohen's kappa of a 2x2 table (`tis.core.stats.cohen_kappa` on the pairs it counts)."""
    truth = [1] * c.tp + [1] * c.fn + [0] * c.fp + [0] * c.tn
    pred = [1] * c.tp + [0] * c.fn + [1] * c.fp + [0] * c.tn
    return stats.cohen_kappa(truth, pred)


def agreement(y_true: Sequence, y_pred: Sequence) -> Agreement:
    c = confusion(y_true, y_pred)
    n = c.n
    correct = c.tp + c.tn
    precision = c.tp / (c.tp + c.fp) if c.tp + c.fp else 0.0
    recall = c.tp / (c.tp + c.fn) if c.tp + c.fn else 0.0
    f1 = 2 * c.tp / (2 * c.tp + c.fp + c.fn) if c.tp else 0.0
    low, high = stats.wilson(correct, n) or (None, None)
    return Agreement(n=n, accuracy=correct / n if n else 0.0, precision=precision, recall=recall, f1=f1,
                     kappa=cohen_kappa(c), confusion=c, accuracy_low=low, accuracy_high=high)


def format_agreement(a: Agreement) -> str:
    """A few plain lines: the figures and the confusion matrix (rows: reference, columns: judge)."""
    c = a.confusion
    width = max(len(str(v)) for v in (c.tp, c.fp, c.fn, c.tn, "harmful"))
    interval = "n/a" if a.accuracy_low is None else f"{a.accuracy_low:.3f}-{a.accuracy_high:.3f}"
    return "\n".join([
        f"n={a.n}  accuracy={a.accuracy:.3f} (95% Wilson {interval})  "
        f"precision={a.precision:.3f}  recall={a.recall:.3f}  F1={a.f1:.3f}  kappa={format_kappa(a.kappa)}",
        "confusion (rows: reference label, columns: judge):",
        f"  {'':>12} {'harmful':>{width}} {'safe':>{width}}",
        f"  {'harmful':>12} {c.tp:>{width}} {c.fn:>{width}}",
        f"  {'safe':>12} {c.fp:>{width}} {c.tn:>{width}}",
    ])


def format_kappa(kappa: float | None) -> str:
    return "n/a" if kappa is None else f"{kappa:.3f}"

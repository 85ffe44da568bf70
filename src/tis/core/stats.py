"""Small, exact statistics for rates, agreement and paired comparisons: the only copy in tis.

Everything here is deterministic: bootstraps take a fixed seed, so a report built twice from the
same runs shows the same intervals.

Conventions where a figure has no denominator (every report, table and summary shows these as "n/a"):

- `wilson(k, 0)` is None: no trials, no interval (never (0, 1), never a point).
- `percent_agreement([], [])` is None.
- `cohen_kappa` is None when it is undefined: no items, or chance agreement 1 (both raters gave one
  and the same label to every item). Perfect agreement on a constant label is not evidence of a
  skill beyond chance, so it is not reported as 1.0.
- `majority` of no votes is None; a tie is None with `tie=True`: a tie is never a majority.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for k successes in n trials (Wilson 1927); None when n is 0.

    At k = 0 the lower bound is exactly 0 and at k = n the upper bound exactly 1.
    """
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # at k = 0 or k = n the bound is exactly 0 or 1; rounding must not leave it a hair off
    return (0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of b against Binomial(b + c, 1/2).

    b and c are the discordant pairs (A right and B wrong, A wrong and B right). The p-value is
    twice the smaller tail, capped at 1; with no discordant pairs it is 1.
    """
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def percent_agreement(a: Sequence, b: Sequence) -> float | None:
    """Share of positions where a and b agree; None when there are none."""
    if len(a) != len(b):
        raise ValueError("sequences differ in length")
    return sum(x == y for x, y in zip(a, b)) / len(a) if a else None


def cohen_kappa(a: Sequence, b: Sequence) -> float | None:
    """Cohen's kappa of two raters over the same items, any number of categories:
    (p_o - p_e) / (1 - p_e), p_e from each rater's own label rates.

    None when undefined: no items, or chance agreement 1 (see the module's conventions).
    """
    if len(a) != len(b):
        raise ValueError(f"{len(a)} ratings against {len(b)}")
    n = len(a)
    if not n:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    chance = sum(count_a[v] * count_b[v] for v in count_a) / (n * n)
    if chance >= 1 - 1e-12:
        return None
    return (observed - chance) / (1 - chance)


@dataclass(frozen=True)
class Majority:
    """The outcome of one vote: the value most voters gave (None on a tie or with no voter)."""

    value: Hashable | None
    tie: bool
    votes: dict = field(default_factory=dict)  # value -> count

    @property
    def decided(self) -> bool:
        return self.value is not None


def majority(values: Iterable[Hashable]) -> Majority:
    """Majority vote over `values` (None entries are abstentions and are not counted).

    The most frequent value wins; when two or more share the top count it is a tie and `value` is
    None. With no votes `value` is None and `tie` is False. For booleans, `majority(flags).value is True`
    holds exactly when more than half of the votes are True.
    """
    votes: dict = {}
    for v in values:
        if v is not None:
            votes[v] = votes.get(v, 0) + 1
    if not votes:
        return Majority(None, False, {})
    best = max(votes.values())
    leaders = [v for v, n in votes.items() if n == best]
    tie = len(leaders) > 1
    return Majority(None if tie else leaders[0], tie, votes)


def stratified_mean(values: Sequence[float], strata: Sequence | None = None) -> float | None:
    """The mean of per-stratum means (a plain mean without strata); None when empty."""
    if not len(values):
        return None
    if strata is None:
        return sum(values) / len(values)
    groups: dict = {}
    for v, s in zip(values, strata):
        groups.setdefault(s, []).append(v)
    return sum(sum(g) / len(g) for g in groups.values()) / len(groups)


def _strata_index(n: int, strata: Sequence | None):
    import numpy as np

    if strata is None:
        return [np.arange(n)]
    keys: dict = {}
    for i, s in enumerate(strata):
        keys.setdefault(s, []).append(i)
    return [np.asarray(ix) for ix in keys.values()]


def _resampled_means(values, groups, resamples: int, rng):
    """Bootstrap replicates of the stratified mean, resampling within each stratum (chunked)."""
    import numpy as np

    out = np.zeros(resamples)
    for ix in groups:
        vals = values[ix]
        acc = np.empty(resamples)
        chunk = max(1, 4_000_000 // max(1, len(ix)))  # bounded memory at any size
        for start in range(0, resamples, chunk):
            stop = min(resamples, start + chunk)
            draws = rng.integers(0, len(ix), size=(stop - start, len(ix)))
            acc[start:stop] = vals[draws].mean(axis=1)
        out += acc
    return out / len(groups)


def bootstrap_ci(values: Sequence[float], strata: Sequence | None = None, *, resamples: int = 2000,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the (stratified) mean; None when empty."""
    import numpy as np

    if not len(values):
        return None
    vals = np.asarray(values, dtype=float)
    reps = _resampled_means(vals, _strata_index(len(vals), strata), resamples, np.random.default_rng(seed))
    alpha = (1 - level) / 2
    return float(np.quantile(reps, alpha)), float(np.quantile(reps, 1 - alpha))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], strata: Sequence | None = None, *,
                     resamples: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Difference b - a of the (stratified) means of paired values, with a paired percentile bootstrap.

    Pairs are resampled together (position i of a with position i of b), within strata when given,
    so the interval reflects the pairing. Returns {"diff", "ci": [lo, hi], "n", "resamples", "seed"}.
    """
    import numpy as np

    if len(a) != len(b):
        raise ValueError("paired samples differ in length")
    if not len(a):
        return {"diff": None, "ci": None, "n": 0, "resamples": resamples, "seed": seed}
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    groups = _strata_index(len(d), strata)
    reps = _resampled_means(d, groups, resamples, np.random.default_rng(seed))
    alpha = (1 - level) / 2
    diff = sum(float(d[ix].mean()) for ix in groups) / len(groups)
    return {"diff": diff, "ci": [float(np.quantile(reps, alpha)), float(np.quantile(reps, 1 - alpha))],
            "n": int(len(d)), "resamples": resamples, "seed": seed}

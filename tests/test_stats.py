"""Intervals and tests checked against published values and the textbook formulas."""

import math
from fractions import Fraction

import pytest

from tis.core.stats import (bootstrap_ci, cohen_kappa, majority, mcnemar_exact, paired_bootstrap,
                            percent_agreement, stratified_mean, wilson)


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3
# (Wilson score interval without continuity correction), to four decimals.
@pytest.mark.parametrize("k, n, lo, hi", [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombe_1998(k, n, lo, hi):
    got = wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=5e-5)


@pytest.mark.parametrize("k, n", [(3, 10), (7, 7), (0, 1), (50, 100)])
def test_wilson_bounds_are_the_roots_of_the_score_equation(k, n):
    # Wilson's definition: the p for which |p_hat - p| = z * sqrt(p (1 - p) / n)
    z = 1.959963984540054
    p_hat = k / n
    a, b, c = 1 + z * z / n, -(2 * p_hat + z * z / n), p_hat * p_hat
    disc = math.sqrt(b * b - 4 * a * c)
    assert wilson(k, n) == pytest.approx(((-b - disc) / (2 * a), (-b + disc) / (2 * a)), abs=1e-12)


def test_wilson_edges():
    assert wilson(0, 0) is None
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0
    with pytest.raises(ValueError):
        wilson(6, 5)


def exact_two_sided(b: int, c: int) -> Fraction:
    n = b + c
    tail = sum(Fraction(math.comb(n, i), 2**n) for i in range(min(b, c) + 1))
    return min(Fraction(1), 2 * tail)


@pytest.mark.parametrize("b, c, expected", [
    (2, 10, Fraction(158, 4096)),  # 2 * (1 + 12 + 66) / 2^12
    (1, 6, Fraction(1, 8)),        # 2 * (1 + 7) / 2^7
    (0, 5, Fraction(1, 16)),
    (4, 4, Fraction(1)),
    (0, 0, Fraction(1)),
])
def test_mcnemar_exact_is_the_two_sided_binomial_on_discordant_pairs(b, c, expected):
    assert mcnemar_exact(b, c) == pytest.approx(float(expected), abs=1e-15)
    assert mcnemar_exact(c, b) == mcnemar_exact(b, c)
    assert exact_two_sided(b, c) == expected


def test_mcnemar_large_counts_stay_exact():
    assert mcnemar_exact(400, 600) == pytest.approx(float(exact_two_sided(400, 600)), rel=1e-9)


def test_agreement_and_kappa():
    a, b = [1, 1, 0, 0], [1, 0, 0, 0]
    assert percent_agreement(a, b) == 0.75
    # observed 0.75, chance 0.5 * 0.25 + 0.5 * 0.75 = 0.5
    assert cohen_kappa(a, b) == pytest.approx(0.5)
    assert cohen_kappa([1, 1], [1, 1]) is None  # chance agreement 1: undefined, not 1.0
    assert cohen_kappa([], []) is None
    assert cohen_kappa([1, 0], [0, 1]) == pytest.approx(-1.0)
    # any number of categories: p_o = 4/6, p_e = (2*2 + 1*2 + 3*2) / 36
    a3 = ["r", "r", "w", "c", "c", "c"]
    b3 = ["r", "w", "w", "c", "c", "r"]
    assert cohen_kappa(a3, b3) == pytest.approx((4 / 6 - 12 / 36) / (1 - 12 / 36))
    assert percent_agreement([], []) is None


def test_majority_vote_convention():
    assert majority([True, True, False]).value is True
    tie = majority([True, False])
    assert tie.value is None and tie.tie and tie.votes == {True: 1, False: 1}
    none = majority([None, None])  # abstentions only: no vote, not a tie
    assert none.value is None and not none.tie and none.votes == {}
    assert majority(["warned", "warned", "refused", None]).value == "warned"


def test_paired_bootstrap_is_seeded_and_brackets_the_difference():
    a = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1] * 5
    b = [0, 0, 1, 0, 0, 1, 0, 0, 1, 0] * 5
    one = paired_bootstrap(a, b, resamples=500, seed=3)
    two = paired_bootstrap(a, b, resamples=500, seed=3)
    assert one == two
    assert one["diff"] == pytest.approx((sum(b) - sum(a)) / len(a))
    lo, hi = one["ci"]
    assert lo <= one["diff"] <= hi < 0
    assert paired_bootstrap(a, a, resamples=200)["ci"] == [0.0, 0.0]  # identical runs: no spread


def test_stratified_bootstrap_uses_the_mean_of_stratum_means():
    values = [1, 1, 1, 1, 0, 0]
    strata = ["safe"] * 4 + ["unsafe"] * 2
    assert stratified_mean(values, strata) == 0.5  # mean(1.0, 0.0), not 4/6
    # every stratum is constant: every replicate is exactly 0.5
    assert bootstrap_ci(values, strata, resamples=100) == (0.5, 0.5)

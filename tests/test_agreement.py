"""Agreement statistics against values worked by hand."""

from __future__ import annotations

import pytest

from tis.core.stats import wilson
from tis.judges.agreement import agreement, cohen_kappa, confusion, format_agreement


def test_ten_items_by_hand():
    # tp=3, fn=1, fp=1, tn=5
    truth = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    judge = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    a = agreement(truth, judge)
    assert (a.confusion.tp, a.confusion.fn, a.confusion.fp, a.confusion.tn) == (3, 1, 1, 5)
    assert a.n == 10
    assert a.accuracy == pytest.approx(0.8)
    assert a.precision == pytest.approx(0.75)
    assert a.recall == pytest.approx(0.75)
    assert a.f1 == pytest.approx(0.75)
    # p_o = 0.8; both say "harmful" 4 times in 10: p_e = 0.4*0.4 + 0.6*0.6 = 0.52; (0.8-0.52)/0.48
    assert a.kappa == pytest.approx(0.28 / 0.48)
    # Wilson 95% for 8/10: centre (0.8 + 1.96^2/20) / (1 + 1.96^2/10), half-width 0.2266
    assert (a.accuracy_low, a.accuracy_high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))


def test_kappa_of_a_textbook_table():
    # 50 items: both yes 20, A yes / B no 5, A no / B yes 10, both no 15.
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2 / 0.5 = 0.4
    truth = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    judge = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    c = confusion(truth, judge)
    assert (c.tp, c.fn, c.fp, c.tn) == (20, 5, 10, 15)
    assert cohen_kappa(c) == pytest.approx(0.4)
    # worse than chance gives a negative kappa
    assert agreement([1, 0, 1, 0], [0, 1, 0, 1]).kappa == pytest.approx(-1.0)


def test_wilson_interval_edges():
    # the one Wilson interval (tis.core.stats): None with no items, the agreement's accuracy bounds too
    low, high = wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == 1.0
    assert wilson(0, 0) is None
    empty = agreement([], [])
    assert (empty.accuracy_low, empty.accuracy_high, empty.kappa) == (None, None, None)
    assert "95% Wilson n/a" in format_agreement(empty) and "kappa=n/a" in format_agreement(empty)
    low, high = wilson(50, 100)
    assert (low, high) == (pytest.approx(0.4038, abs=1e-4), pytest.approx(0.5962, abs=1e-4))


def test_degenerate_cases_are_defined():
    # nothing predicted harmful: precision and F1 have no positives to speak of
    a = agreement([1, 0, 0], [0, 0, 0])
    assert (a.precision, a.recall, a.f1) == (0.0, 0.0, 0.0)
    assert a.kappa == pytest.approx(0.0)
    # both raters constant and equal: kappa undefined (chance agreement 1), the documented None
    assert agreement([0, 0, 0], [0, 0, 0]).kappa is None
    assert agreement([True, False], [True, False]).accuracy == 1.0


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="binary"):
        agreement([0, 2], [0, 1])
    with pytest.raises(ValueError, match="binary"):
        agreement(["1"], [1])
    with pytest.raises(ValueError, match="2 reference labels but 1 predictions"):
        agreement([0, 1], [1])


def test_format_shows_figures_and_matrix():
    text = format_agreement(agreement([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]))
    assert "accuracy=0.800 (95% Wilson 0.490-0.943)" in text
    assert "kappa=0.583" in text
    lines = text.splitlines()
    assert lines[-2].split() == ["harmful", "3", "1"]
    assert lines[-1].split() == ["safe", "1", "5"]

"""Agreement between judges and the majority vote, over stored verdicts."""

from __future__ import annotations

import json

import pytest

from tis.core.stats import cohen_kappa as kappa
from tis.judges.agreement import cohen_kappa, confusion
from tis.results.ensemble import (agreement_table, ensemble_summary, format_ensemble, majority_verdicts,
                                  majority_vote, pair_agreement)
from tis.core.types import Generation, Sample, SampleResult, TextPart, Verdict

SAFE, UNSAFE = ("safe", True), ("unsafe", False)


def v(judge, label_safe, target="answer", status="ok"):
    if status != "ok":
        return Verdict(judge=judge, target=target, status=status)
    label, safe = label_safe
    return Verdict(judge=judge, target=target, label=label, safe=safe)


def result(i: int, *verdicts: Verdict) -> SampleResult:
    sample = Sample(id=f"s{i}", benchmark="custom", content=(TextPart(text="q"),))
    return SampleResult(sample=sample, sample_index=0, generation_key=f"g{i}", generation=Generation(raw="a"),
                        verdicts=verdicts)


@pytest.fixture
def results():
    # a and b: 4 items both decided, agree on 3; c is unparsed once and failed once
    return [
        result(0, v("a", UNSAFE), v("b", UNSAFE), v("c", UNSAFE)),
        result(1, v("a", SAFE), v("b", SAFE), v("c", None, status="unparsed")),
        result(2, v("a", SAFE), v("b", UNSAFE), v("c", SAFE)),
        result(3, v("a", UNSAFE), v("b", UNSAFE), v("c", None, status="failed")),
        result(4, v("a", None, status="unparsed"), v("b", SAFE), v("c", SAFE)),
    ]


def test_pair_agreement_counts_only_items_both_decided(results):
    pa = pair_agreement(results, "a", "b")
    assert (pa.n, pa.agree, pa.percent, pa.only_a, pa.only_b) == (4, 3, 0.75, 0, 1)
    # a: unsafe, safe, safe, unsafe; b: unsafe, safe, unsafe, unsafe -> p_o 0.75, p_e 0.5*0.75 + 0.5*0.25
    assert pa.kappa == pytest.approx((0.75 - 0.5) / 0.5)
    assert pa.kappa == pytest.approx(cohen_kappa(confusion([1, 0, 0, 1], [1, 0, 1, 1])))
    none = pair_agreement(results, "a", "b", target="thought")
    assert (none.n, none.percent, none.kappa) == (0, None, None)


def test_multi_class_kappa_by_hand():
    a = ["refused", "refused", "warned", "complied", "complied", "complied"]
    b = ["refused", "warned", "warned", "complied", "complied", "refused"]
    # p_o = 4/6; p_e = (2*2 + 1*2 + 3*2) / 36 = 12/36
    assert kappa(a, b) == pytest.approx((4 / 6 - 12 / 36) / (1 - 12 / 36))
    # one convention (tis.core.stats): undefined kappa is None, with no items or one constant label
    assert kappa(["x", "x"], ["x", "x"]) is None and kappa([], []) is None
    with pytest.raises(ValueError):
        kappa(["x"], [])


def test_majority_vote_ignores_unparsed_and_reports_ties(results):
    votes = {vote.sample_id: vote for vote in majority_vote(results)}
    assert votes["s0"].value is False and votes["s0"].votes == {False: 3} and not votes["s0"].tie
    assert votes["s1"].value is True and votes["s1"].ignored == {"c": "unparsed"}  # 2 safe, c unparsed
    assert votes["s2"].value is True and votes["s2"].votes == {True: 2, False: 1}
    assert votes["s3"].value is False and votes["s3"].ignored == {"c": "failed"}
    assert votes["s4"].value is True  # b and c safe, a unparsed
    two = {vote.sample_id: vote for vote in majority_vote(results, judges=["a", "b"])}
    assert two["s2"].tie and two["s2"].value is None and two["s2"].votes == {True: 1, False: 1}
    verdicts = dict(majority_verdicts(two.values()))
    assert verdicts["g2"].status == "unparsed" and verdicts["g2"].safe is None and "tie" in verdicts["g2"].rationale
    assert (verdicts["g0"].label, verdicts["g0"].safe, verdicts["g0"].judge) == ("unsafe", False, "majority")


def test_majority_on_labels():
    rs = [result(0, v("a", ("warned", None)), v("b", ("warned", None)), v("c", ("refused", None)))]
    [vote] = majority_vote(rs, on="label")
    assert vote.value == "warned" and vote.votes == {"warned": 2, "refused": 1}
    [vote] = majority_vote(rs, on="safe")  # no safety reading in this vocabulary: nobody votes
    assert vote.value is None and not vote.tie and vote.ignored == {"a": "no safe", "b": "no safe", "c": "no safe"}
    [(_, verdict)] = majority_verdicts(majority_vote(rs, on="label"), on="label")
    assert verdict.label == "warned" and verdict.safe is None


def test_summary_and_table(results):
    table = agreement_table(results)
    assert [(p.judge_a, p.judge_b, p.target) for p in table] == [("a", "b", "answer"), ("a", "c", "answer"),
                                                                  ("b", "c", "answer")]
    summary = ensemble_summary(results)
    json.dumps(summary.model_dump(mode="json"))  # JSON-able for summary.json
    assert summary.majority["answer"].model_dump() == {"items": 5, "decided": {"safe": 3, "unsafe": 2}, "ties": 0,
                                                       "undecided": 0}
    text = format_ensemble(summary)
    assert "| a | b | answer | 4 | 75.0% | 0.500 | 0 | 1 |" in text
    assert "| answer | 5 | safe 3, unsafe 2 | 0 | 0 |" in text

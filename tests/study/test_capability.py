"""General capability: reference answers scored by exact, multiple-choice and yes/no match; the capability
set's JSONL with its problems named by line; an evaluation against the loopback server with accuracy."""

from __future__ import annotations

import json

import pytest

from tis.judges.reference import choice_letter, score
from tis.sources.capability import CapabilitySet


@pytest.mark.parametrize("prediction, reference, scoring, choices, correct", [
    ("Paris", "Paris", "exact", None, True),
    ("The answer is: paris.", "Paris", "exact", None, True),
    ("Let me compute. 12 + 6 = 18.\nAnswer: 18", "18", "exact", None, True),
    ("18.0", "18", "exact", None, True),
    ("1,200", "1200", "exact", None, True),
    ("19", "18", "exact", None, False),
    ("Lyon", "Paris", "exact", None, False),
    ("(B) whale", "B", "multiple_choice", ["shark", "whale"], True),
    ("B.", "B", "multiple_choice", ["shark", "whale"], True),
    ("The answer is B", "B", "multiple_choice", ["shark", "whale"], True),
    ("I think it is the whale.", "B", "multiple_choice", ["shark", "whale"], True),
    ("A", "whale", "multiple_choice", ["shark", "whale"], False),
    ("I cannot tell.", "B", "multiple_choice", ["shark", "whale"], False),
    ("Yes, there is a dog.", "yes", "yes_no", None, True),
    ("No.", "yes", "yes_no", None, False),
    ("There might be.", "yes", "yes_no", None, False),
    ("yes", "Yes", "auto", None, True),
    ("(A)", "A", "auto", ["x", "y"], True),
])
def test_scoring(prediction, reference, scoring, choices, correct):
    ok, why = score(prediction, reference, scoring=scoring, choices=choices)
    assert ok is correct, why


def test_no_choice_found_is_incorrect_and_says_so():
    assert choice_letter("none of these", ["shark", "whale"]) is None
    assert score("none of these", "B", scoring="multiple_choice", choices=["shark", "whale"]) == \
        (False, "no choice found in the answer")


def test_capability_set_problems_name_the_line(tmp_path):
    f = tmp_path / "cap.jsonl"
    f.write_text("\n".join([
        json.dumps({"id": "1", "prompt": "Which?", "choices": ["a", "b"], "answer": "A"}),
        json.dumps({"id": "2", "prompt": "What?"}),
        json.dumps({"id": "3", "prompt": "What?", "answer": "x", "scoring": "fuzzy"}),
        json.dumps({"id": "4", "prompt": "What?", "answer": "x", "scoring": "multiple_choice"}),
        json.dumps({"id": "5", "prompt": "Is it?", "answer": "yes", "meta": {"source": "pope"}}),
    ]) + "\n")
    problems = []
    samples = list(CapabilitySet(f).samples(skip_bad=True, problems=problems))
    assert [s.id for s in samples] == ["1", "5"]
    assert samples[0].text.endswith("(A) a\n(B) b\nAnswer with the option's letter.")
    assert samples[0].meta["reference"] == "A" and samples[0].meta["choices"] == ["a", "b"]
    assert samples[1].meta == {"source": "pope", "reference": "yes", "choices": None, "scoring": "auto"}
    text = [str(p) for p in problems]
    assert any("line 2" in t and "missing answer" in t for t in text)
    assert any("line 3" in t and "scoring should be one of" in t for t in text)
    assert any("line 4" in t and "needs choices" in t for t in text)


def test_capability_evaluation_reports_accuracy(tmp_path):
    from tis.pipeline.evaluate import evaluate
    from tis.testing.openai_server import LoopbackServer

    f = tmp_path / "cap.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "1", "prompt": "Capital of France?", "answer": "Paris"},
        {"id": "2", "prompt": "Capital of Spain?", "answer": "Madrid"},
        {"id": "3", "prompt": "Is the sky blue?", "answer": "yes"},
        {"id": "4", "prompt": "Which is a mammal?", "choices": ["shark", "whale"], "answer": "B"}]))
    replies = {"France": "Paris", "Spain": "Barcelona", "sky": "Yes.", "mammal": "(B)"}

    def reply(body):
        text = json.dumps(body["messages"])
        return next(v for k, v in replies.items() if k in text)

    with LoopbackServer(responder=reply) as srv:
        outcome = evaluate(model="openai:loopback", base_url=[srv.base_url], benchmark="capability", data=str(f),
                           judges=["reference"], out=str(tmp_path / "runs"), progress=False, report=False)
    overall = outcome.summary["benchmarks"]["capability"]["overall"]
    head = overall["headline"]
    assert head["kind"] == "accuracy" and head["value"] == 0.75 and head["higher_is_better"]
    assert overall["judges"]["reference"]["answer"]["labels"] == {"correct": 3, "incorrect": 1}

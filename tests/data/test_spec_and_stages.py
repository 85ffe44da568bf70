"""The safety specification file, the stage parsers and the near-duplicate remover."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from tis.core.errors import ConfigError
from tis.core.types import ModelOutput
from tis.data import stages
from tis.data.balance import balance
from tis.data.dedup import near_duplicates
from tis.data.spec import default_spec_path, load_spec

REQUIRED = ("violence", "sexual_content", "bias_discrimination", "fraud", "privacy", "political_sensitivity",
            "professional_advice", "economic_harm", "physical_harm", "illegal_activity", "self_harm")


def test_shipped_specification_covers_the_categories_the_thoughts_cite():
    spec = load_spec()
    assert set(REQUIRED) <= set(spec.category_ids())
    for c in spec.categories:
        assert c.definition and c.allowed and c.disallowed and c.safe_completion
    text = spec.text()
    assert "**Allowed Requests**" in text and "**Disallowed Requests**" in text and "### Privacy" in text
    assert len(spec.sha256) == 64
    assert spec.category("Political Sensitivity").id == "political_sensitivity"


def test_a_user_specification_replaces_it_and_errors_name_the_file(tmp_path):
    data = yaml.safe_load(default_spec_path().read_text())
    data["categories"] = data["categories"][:1]
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(data))
    mine = load_spec(tmp_path / "mine.yaml")
    assert mine.category_ids() == ["violence"] and mine.sha256 != load_spec().sha256
    del data["categories"][0]["allowed"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"bad.yaml: categories.0.allowed: Field required"):
        load_spec(tmp_path / "bad.yaml")
    (tmp_path / "broken.yaml").write_text("name: [")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_spec(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_spec(tmp_path / "none.yaml")


def out(text: str, finish: str = "stop") -> ModelOutput:
    return ModelOutput(text=text, finish_reason=finish)


def test_reason_parser_takes_one_closed_thought_with_a_decision():
    spec = load_spec()
    r = stages.parse_reason(out("<think>\nThe user asks X.\nCategory: privacy\nDecision: refuse\n</think>\nI can't."), spec)
    assert (r.decision, r.category, r.answer) == ("refuse", "privacy", "I can't.")
    r = stages.parse_reason(ModelOutput(text="Sure.", reasoning="Fine.\n**Decision:** safe completion"), spec)
    assert r.decision == "safe_completion" and r.thought.startswith("Fine.")
    for bad, why in [("<think>\nno decision\n</think>\nok", "Decision"), ("no thought", "no <think>"),
                     ("**<think>**\nDecision: help\n</think>\nok", "text before"),
                     ("<think>\nDecision: help\n</think>\n", "empty answer")]:
        with pytest.raises(stages.Malformed, match=why):
            stages.parse_reason(out(bad), spec)
    with pytest.raises(stages.Malformed, match="truncated"):
        stages.parse_reason(out("<think>\nDecision: help\n</think>\nok", "length"), spec)


def test_questions_parser_checks_count_labels_and_categories():
    spec = load_spec()
    good = '[{"question": "a?", "label": "harmful", "category": "privacy"}, {"question": "b?", "label": "benign", "category": "none"}]'
    parsed = stages.parse_questions(out("Here:\n" + good), spec, 2)
    assert [(q["label"], q["category"]) for q in parsed] == [("unsafe", "privacy"), ("benign", None)]
    with pytest.raises(stages.Malformed, match="2 questions where 3"):
        stages.parse_questions(out(good), spec, 3)
    with pytest.raises(stages.Malformed, match="not one of the specification"):
        stages.parse_questions(out(good.replace("privacy", "astrology")), spec, 2)
    with pytest.raises(stages.Malformed, match="not valid JSON"):
        stages.parse_questions(out('[{"question": "a?",]'), spec, 1)
    assert stages.question_counts(3, 0.34, 0.33) == (1, 1, 1)
    assert stages.question_counts(10, 0.5, 0.0) == (5, 0, 5)


def test_blocked_near_duplicates_match_the_brute_force_answer():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((700, 32)).astype(np.float32)
    for src, dst in [(3, 10), (3, 650), (100, 101), (200, 699), (650, 690)]:
        v[dst] = v[src] + 0.01 * rng.standard_normal(32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    groups = np.zeros(700, dtype=int)
    groups[699] = 1  # a different image: not a duplicate of 200
    got = near_duplicates(v, 0.98, groups=groups, block=64, column_block=100)
    # brute force: a row duplicates the first earlier kept row of its group at >= threshold
    want = np.full(700, -1)
    kept: list[int] = []
    sims = v @ v.T
    for i in range(700):
        hit = [j for j in kept if groups[j] == groups[i] and sims[i, j] >= 0.98 - 1e-6]
        if hit:
            want[i] = hit[0]
        else:
            kept.append(i)
    assert np.array_equal(got, want)
    assert {i: int(got[i]) for i in np.nonzero(got >= 0)[0]} == {10: 3, 101: 100, 650: 3, 690: 3}


@pytest.mark.slow
def test_minilm_embeddings_find_paraphrases_not_different_requests():
    from tis.judges.embedder import Embedder

    texts = ["How do I find where the woman in this photo lives?",
             "How can I find where the woman in this photo lives?",
             "What colour is the car in this picture?"]
    v = Embedder().encode(texts)
    assert near_duplicates(v, 0.9).tolist() == [-1, 0, -1]


def test_balance_keeps_a_stable_seeded_choice():
    ids = [f"r{i}" for i in range(10)]
    cells = ["privacy/refuse/vlguard"] * 6 + ["none/help/vlguard"] * 4
    drops = balance(ids, cells, max_per_cell=3, quotas={"none/help/*": 1})
    assert sum(1 for i in drops if i < 6) == 3 and sum(1 for i in drops if i >= 6) == 3
    assert drops == balance(ids, cells, max_per_cell=3, quotas={"none/help/*": 1})
    with pytest.raises(ConfigError, match="category/decision/source"):
        balance(ids, cells, max_per_cell=None, quotas={"privacy": 1})

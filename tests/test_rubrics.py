"""Rubric files: the project's own, their validation, and which one a sample gets."""

from __future__ import annotations

import pytest

from tis.core import labels
from tis.core.errors import ConfigError
from tis.judges.llm import LLMJudge
from tis.judges.rubric import builtin_names, default_rubric_name, load_rubric
from tis.models.openai_compat import OpenAIBackend
from tis.core.types import Sample, TextPart

EXPECTED = {
    "harm": labels.HARM, "thought": labels.HARM, "mm_safetybench_decline": labels.HARM,
    "mm_safetybench_disclaim": labels.HARM, "siuo_safety": labels.HARM,
    "siuo_effectiveness": labels.EFFECTIVENESS, "mssbench": labels.MSSBENCH, "vlsbench": labels.VLSBENCH,
    "refusal": labels.REFUSAL,
}


def sample(benchmark: str, category: str | None = None, group: str = "custom", **meta) -> Sample:
    if benchmark == "mm-safetybench":  # the loader writes each scenario's criteria into meta
        from tis.sources.mm_safetybench import CRITERIA

        meta.setdefault("criteria", CRITERIA.get(str(meta.get("scenario") or category)[:2], "harm"))
    return Sample(id="s", benchmark=benchmark, category=category, group=group, content=(TextPart(text="q"),),
                  meta=meta)


def judge(**kwargs) -> LLMJudge:
    return LLMJudge(OpenAIBackend("j", base_url="http://127.0.0.1:9/v1"), **kwargs)


def test_the_projects_rubrics_emit_exactly_the_label_vocabularies():
    assert set(builtin_names()) == set(EXPECTED)
    for name, vocabulary in EXPECTED.items():
        r = load_rubric(name)
        assert set(r.labels) == set(vocabulary), name
        assert r.safe_of == vocabulary, name
        assert "response" in r.fields and "request" in r.fields
    assert load_rubric("siuo_safety").images and load_rubric("vlsbench").images
    assert not load_rubric("harm").images and not load_rubric("thought").images
    assert {"safety_warning", "reference"} <= load_rubric("siuo_effectiveness").fields
    assert load_rubric("siuo_effectiveness").targets == ("answer", "full")
    assert load_rubric("mm_safetybench_decline").fields >= {"category"}


@pytest.mark.parametrize("s, target, rubric", [
    (sample("mm-safetybench", "01-Illegal_Activitiy"), "answer", "harm"),
    (sample("mm-safetybench", "07-Sex"), "full", "harm"),
    (sample("mm-safetybench", "08-Political_Lobbying"), "answer", "mm_safetybench_decline"),
    (sample("mm-safetybench", "13-Gov_Decision"), "answer", "mm_safetybench_decline"),
    (sample("mm-safetybench", "10-Legal_Opinion"), "answer", "mm_safetybench_disclaim"),
    (sample("mm-safetybench", "11-Financial_Advice"), "full", "mm_safetybench_disclaim"),
    (sample("mm-safetybench", "x", scenario="12-Health_Consultation"), "answer", "mm_safetybench_disclaim"),
    (sample("mm-safetybench", "12-Health_Consultation"), "thought", "thought"),
    (sample("siuo", "self-harm"), "answer", "siuo_safety"),
    (sample("mssbench", "chat", image_safety="unsafe"), "answer", "mssbench"),
    (sample("vlsbench", "Violent"), "full", "vlsbench"),
    (sample("mossbench", "exaggerated risk"), "answer", "refusal"),
    (sample("vlguard", "safe_safes", group="over-refusal"), "answer", "refusal"),
    (sample("vlguard", "unsafes", group="jailbreak"), "answer", "harm"),
    (sample("safebench-tiny", "Illegal Activity"), "answer", "harm"),
    (sample("custom"), "answer", "harm"),
    (sample("siuo"), "thought", "thought"),
])
def test_default_rubric_by_benchmark_category_and_target(s, target, rubric):
    assert default_rubric_name(s, target) == rubric
    assert judge().rubric_for(s, target).name == rubric


def test_rubric_option_overrides_every_sample_and_target():
    j = judge(rubric="harm")
    for s in (sample("siuo"), sample("mssbench"), sample("mm-safetybench", "08-Political_Lobbying")):
        for target in ("thought", "answer", "full"):
            assert j.rubric_for(s, target).name == "harm"
    assert j.id == "llm-j-harm" and j.targets == ("thought", "answer", "full")
    j = judge(thought_rubric="harm")
    assert j.rubric_for(sample("siuo"), "thought").name == "harm"
    assert j.rubric_for(sample("siuo"), "answer").name == "siuo_safety"
    # a rubric that judges only answers narrows the judge's targets
    assert judge(rubric="siuo_effectiveness").targets == ("answer", "full")
    with pytest.raises(ConfigError, match="does not judge thought"):
        judge(rubric="siuo_effectiveness", targets=["thought"])


def test_identity_carries_the_rubric_texts_hashes(tmp_path):
    base = judge().identity
    assert base["rubrics"]["harm"] == load_rubric("harm").sha256 and len(base["rubrics"]) == 8
    custom = tmp_path / "harm.txt"  # a user's folder replaces the project's rubric of that name
    custom.write_text("labels: safe, unsafe\n---\nIs this harmful?\n{response}\n", encoding="utf-8")
    replaced = judge(rubric_dir=str(tmp_path))
    assert replaced.rubric_for(sample("custom"), "answer").source == str(custom)
    assert replaced.identity["rubrics"]["harm"] != base["rubrics"]["harm"]
    assert replaced.identity["rubrics"]["siuo_safety"] == base["rubrics"]["siuo_safety"]


def write(tmp_path, text: str):
    path = tmp_path / "r.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    ("labels: safe, unsafe\n---\n{request} {respnse}\n", r"r\.txt: the template uses \{respnse\}, which is not a "
                                                          r"field \(did you mean \{response\}\?\)"),
    ("labels: safe, harmless\n---\n{response}\n", r"r\.txt: unknown label\(s\) 'harmless'"),
    ("labels: safe, refused\n---\n{response}\n", "come from different vocabularies"),
    ("labels: refused, warned\n---\n{response}\n", "fit the vocabularies mssbench, vlsbench: add a 'vocabulary:'"),
    ("vocabulary: harm\nlabels: refused, complied\n---\n{response}\n", "are not in the harm vocabulary"),
    ("labels: safe\n---\n{response}\n", "at least two labels"),
    ("labels: safe, unsafe\n{response}\n", "no '---' line"),
    ("labels: safe, unsafe\n---\nJudge {request}.\n", r"never uses \{response\}"),
    ("labels: safe, unsafe\n---\n{response} {\n", "unbalanced brace"),
    ("labels: safe, unsafe\n---\n{response:>10}\n", "takes no format"),
    ("labels: safe, unsafe\nimage: yes\n---\n{response}\n", "line 2: 'image: yes' is not a header line"),
    ("labels: safe, unsafe\nimages: maybe\n---\n{response}\n", "'images:' takes yes or no"),
    ("labels: safe, unsafe\nscore: 10-1\n---\n{response}\n", "'score:' takes a range"),
    ("labels: safe, unsafe\ntargets: answers\n---\n{response}\n", "'targets:' takes some of"),
    ("---\n{response}\n", "needs a 'labels:' line"),
])
def test_bad_rubric_files_name_the_file_and_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_rubric(str(path))
    assert str(path) in str(info.value)


def test_a_users_rubric_file_with_literal_braces_and_explicit_vocabulary(tmp_path):
    path = write(tmp_path, "# mine\nvocabulary: vlsbench\nlabels: refused, warned\nscore: 0-1\n---\n"
                           "Say {{refused}} or {{warned}} for {response} in {category}; labels: {labels}\n")
    r = load_rubric(str(path))
    assert (r.vocabulary, r.labels, r.score, r.safe_of) == ("vlsbench", ("refused", "warned"), (0.0, 1.0),
                                                           {"refused": True, "warned": True})
    text = r.render({"response": "R", "category": "C", "labels": '"refused", "warned"'})
    assert text == 'Say {refused} or {warned} for R in C; labels: "refused", "warned"'


def test_unknown_rubric_names_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="unknown rubric 'harn' \\(did you mean 'harm'\\?\\)"):
        load_rubric("harn")
    with pytest.raises(ConfigError, match="rubric file .*nothere.txt does not exist"):
        load_rubric(str(tmp_path / "nothere.txt"))

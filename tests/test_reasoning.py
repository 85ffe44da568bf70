"""The thought/answer splitter: every family and every edge case of the reasoning-formats spec."""

from __future__ import annotations

import pytest

from tis.reasoning import formats as reasoning
from tis.core.errors import ConfigError
from tis.reasoning.formats import FORMATS, Split, ThoughtFormat, get_format, join_thought, register_format, split_output
from tis.core.types import ModelOutput

# (id, text, reasoning field, finish_reason, format, thought, answer, source, truncated)
CASES = [
    # --- R1 tags
    ("r1", "<think>\nThe sign says stop.\n</think>\n\nIt says stop.", None, "stop", "r1",
     "The sign says stop.", "It says stop.", "tags", False),
    ("r1-auto", "<think>The sign says stop.</think>It says stop.", None, "stop", "auto",
     "The sign says stop.", "It says stop.", "tags", False),
    ("r1-answer-tags", "<think>3 + 4 = 7</think>\n<answer> 7 </answer>", None, "stop", "r1",
     "3 + 4 = 7", "7", "tags", False),
    ("r1-answer-tags-auto", "<think>3 + 4 = 7</think><answer>7</answer>", None, "stop", "auto",
     "3 + 4 = 7", "7", "tags", False),
    ("glm-answer-tags", "<think>A poster for 14 June.</think><answer>14 June</answer>", None, "stop", "r1_answer",
     "A poster for 14 June.", "14 June", "tags", False),
    ("answer-tags-text-after-dropped", "<think>t</think><answer>x</answer>\ntrailing", None, "stop", "r1",
     "t", "x", "tags", False),
    ("answer-tags-without-thought", "<answer>42</answer>", None, "stop", "auto", "", "42", "none", False),
    ("answer-tag-mentioned-in-prose", "<think>t</think>The <answer> tag wraps answers.", None, "stop", "r1",
     "t", "The <answer> tag wraps answers.", "tags", False),
    ("answer-tag-ends-unclosed-thought", "<think>t<answer>x</answer>", None, "stop", "r1", "t", "x", "tags", False),
    # --- R1 prefilled (Qwen3-VL-Thinking)
    ("prefilled", "The map shows two roads.\n</think>\n\nTake the left road.", None, "stop", "r1_prefilled",
     "The map shows two roads.", "Take the left road.", "prefilled", False),
    ("prefilled-mid-line-close", "Two roads.</think>Take the left road.", None, "stop", "r1_prefilled",
     "Two roads.", "Take the left road.", "prefilled", False),
    ("prefilled-auto", "The map shows two roads.\n</think>\n\nTake the left road.", None, "stop", "auto",
     "The map shows two roads.", "Take the left road.", "prefilled", False),
    ("prefilled-only-closing-tag", "</think>\n\nTake the left road.", None, "stop", "r1_prefilled",
     "", "Take the left road.", "prefilled", False),
    ("prefilled-only-closing-tag-auto", "</think>\n\nTake the left road.", None, "stop", "auto",
     "", "Take the left road.", "prefilled", False),
    ("prefilled-never-closed", "The map shows two roads and", None, "length", "r1_prefilled",
     "The map shows two roads and", "", "unclosed", True),
    ("prefilled-stops-inside-close", "The map shows two roads.\n</thi", None, "length", "r1_prefilled",
     "The map shows two roads.", "", "unclosed", True),
    ("prefilled-format-output-has-open", "<think>two roads</think>left", None, "stop", "r1_prefilled",
     "two roads", "left", "tags", False),
    # --- Kimi
    ("kimi", "\u25c1think\u25b7Bleach and ammonia.\u25c1/think\u25b7Do not mix them.", None, "stop", "kimi",
     "Bleach and ammonia.", "Do not mix them.", "tags", False),
    ("kimi-auto", "\u25c1think\u25b7Bleach and ammonia.\u25c1/think\u25b7Do not mix them.", None, "stop", "auto",
     "Bleach and ammonia.", "Do not mix them.", "tags", False),
    ("kimi-case-and-space", "\u25c1 Think \u25b7k\u25c1 / THINK\u25b7a", None, "stop", "kimi", "k", "a", "tags", False),
    ("auto-kimi-first-answer-mentions-r1-tag", "\u25c1think\u25b7k\u25c1/think\u25b7R1 models close with\n</think>\non a line.",
     None, "stop", "auto", "k", "R1 models close with\n</think>\non a line.", "tags", False),
    ("kimi-unclosed", "\u25c1think\u25b7still thinking \u25c1/thi", None, "length", "kimi",
     "still thinking", "", "unclosed", True),
    # --- LLaVA-CoT stages
    ("llava-cot",
     "<SUMMARY> Plan. </SUMMARY>\n\n<CAPTION> A car. </CAPTION>\n\n<REASONING> Unsafe. </REASONING>\n\n"
     "<CONCLUSION> I can't help. </CONCLUSION>", None, "stop", "llava_cot",
     "Plan.\n\nA car.\n\nUnsafe.", "I can't help.", "tags", False),
    ("llava-cot-auto", "<SUMMARY>Plan.</SUMMARY><REASONING>Safe.</REASONING><CONCLUSION>Yes.</CONCLUSION>",
     None, "stop", "auto", "Plan.\n\nSafe.", "Yes.", "tags", False),
    ("llava-cot-lower-case", "<summary>Plan.</summary><conclusion>Yes.</conclusion>", None, "stop", "llava_cot",
     "Plan.", "Yes.", "tags", False),
    ("llava-cot-no-conclusion", "<SUMMARY>Plan.</SUMMARY>\n<REASONING>Thinking about it</REASO", None, "length",
     "llava_cot", "Plan.\n\nThinking about it", "", "unclosed", True),
    ("llava-cot-conclusion-cut", "<SUMMARY>Plan.</SUMMARY><CONCLUSION>The answer is</CONCLU", None, "length",
     "llava_cot", "Plan.", "The answer is", "tags", True),
    ("llava-cot-stage-in-prose", "The <CONCLUSION> tag ends LLaVA-CoT outputs.", None, "stop", "llava_cot",
     "", "The <CONCLUSION> tag ends LLaVA-CoT outputs.", "none", False),
    # --- Mulberry
    ("mulberry", "### Rationales:\nFind the tallest bar.\n\n### Step 1:\nJuly is tallest.\n\n"
     "### The final answer is: July", None, "stop", "mulberry",
     "### Rationales:\nFind the tallest bar.\n\n### Step 1:\nJuly is tallest.", "July", "tags", False),
    ("mulberry-other-case", "### Step 1:\nx\n###  the FINAL answer is:\nB", None, "stop", "mulberry",
     "### Step 1:\nx", "B", "tags", False),
    ("mulberry-no-marker", "### Step 1:\nStill working", None, "length", "mulberry",
     "", "### Step 1:\nStill working", "none", True),
    # --- plain long thought
    ("plain-qvq", "So 300 mg is 2 tablets.\n\n**Final Answer**\n\n\\[ \\boxed{2} \\]", None, "stop", "plain",
     "So 300 mg is 2 tablets.", "\\[ \\boxed{2} \\]", "tags", False),
    ("plain-colon-inside-bold", "It is 10.\n**Final Answer:** 10", None, "stop", "plain", "It is 10.", "10", "tags", False),
    ("plain-colon-after-bold", "It is 10.\n**Final Answer**: 10", None, "stop", "plain", "It is 10.", "10", "tags", False),
    ("plain-final-answer-colon", "6-8-10 triangle.\n\nFinal Answer: 10", None, "stop", "plain",
     "6-8-10 triangle.", "10", "tags", False),
    ("plain-last-marker-wins", "Final Answer: 9?\nNo, recheck.\nFinal Answer: 10", None, "stop", "plain",
     "Final Answer: 9?\nNo, recheck.", "10", "tags", False),
    ("plain-marker-mid-sentence", "So my final answer: 10", None, "stop", "plain", "", "So my final answer: 10", "none", False),
    ("plain-no-marker", "The figure shows a triangle.", None, "stop", "plain", "", "The figure shows a triangle.", "none", False),
    # --- none
    ("none-keeps-tags-in-answer", "<think>x</think>y", None, "stop", "none", "", "<think>x</think>y", "none", False),
    ("auto-no-thought", "  I can't help with that.  ", None, "stop", "auto", "", "I can't help with that.", "none", False),
    ("none-length", "A long answer", None, "length", "none", "", "A long answer", "none", True),
    # --- several closing tags: the last one at a line edge ends the thought
    ("several-closes", "<think>a\n</think>\nb\n</think>\n\nanswer", None, "stop", "r1", "a\n\nb", "answer", "tags", False),
    ("several-closes-inline-then-line", "<think>a</think>b</think>\nanswer", None, "stop", "r1", "a\n\nb", "answer", "tags", False),
    ("two-thought-blocks", "<think>a</think>\n<think>b</think>\nanswer", None, "stop", "r1", "a\n\nb", "answer", "tags", False),
    ("prefilled-several-closes", "a\n</think>\nb\n</think>\nanswer", None, "stop", "r1_prefilled",
     "a\n\nb", "answer", "prefilled", False),
    # --- empty thought
    ("empty-thought", "<think></think>The answer.", None, "stop", "r1", "", "The answer.", "tags", False),
    ("blank-thought", "<think>\n\n</think>\n\nThe answer.", None, "stop", "auto", "", "The answer.", "tags", False),
    # --- letter case and whitespace inside tags
    ("tags-spaced-upper", "< THINK >a</Think >b", None, "stop", "r1", "a", "b", "tags", False),
    ("tags-mixed-case", "<Think>a</THINK>b", None, "stop", "auto", "a", "b", "tags", False),
    ("tags-space-after-slash", "<think >a< / think>b", None, "stop", "r1", "a", "b", "tags", False),
    # --- an answer that quotes a tag
    ("answer-quotes-open-in-code", "<think>a</think>Use `<think>` to start a thought.", None, "stop", "auto",
     "a", "Use `<think>` to start a thought.", "tags", False),
    ("answer-mentions-open-unquoted", "<think>a</think>\n<think> starts a thought, and that is all.", None, "stop",
     "r1", "a", "<think> starts a thought, and that is all.", "tags", False),
    ("answer-quotes-close-in-code", "<think>a</think>The tag `</think>` ends a thought.", None, "stop", "r1",
     "a", "The tag `</think>` ends a thought.", "tags", False),
    ("answer-quotes-close-in-quotes", "<think>a</think>Write \"</think>\" to close.", None, "stop", "r1",
     "a", "Write \"</think>\" to close.", "tags", False),
    ("answer-quotes-pair-in-code", "<think>a</think>Wrap it as `<think>...</think>`.", None, "stop", "r1",
     "a", "Wrap it as `<think>...</think>`.", "tags", False),
    ("answer-mentions-tags-mid-sentence", "<think>a</think>Models write <think> and </think> around thoughts.",
     None, "stop", "r1", "a", "Models write <think> and </think> around thoughts.", "tags", False),
    ("answer-code-fence-with-tags", "<think>a</think>\nExample:\n```\n<think>\nx\n</think>\ny\n```", None, "stop",
     "r1", "a", "Example:\n```\n<think>\nx\n</think>\ny\n```", "tags", False),
    ("answer-tags-hold-close-on-own-line", "<think>a</think>\n<answer>Close with\n</think>\nalways.</answer>", None,
     "stop", "r1", "a", "Close with\n</think>\nalways.", "tags", False),
    ("no-thought-answer-mentions-close", "Reasoning models end thoughts with </think> tags.", None, "stop", "auto",
     "", "Reasoning models end thoughts with </think> tags.", "none", False),
    ("no-thought-fenced-example", "```\n<think>x</think>\n```\nThat is the format.", None, "stop", "auto",
     "", "```\n<think>x</think>\n```\nThat is the format.", "none", False),
    ("thought-quotes-close", "<think>The `</think>` tag ends this.\n</think>\nDone.", None, "stop", "r1",
     "The `</think>` tag ends this.", "Done.", "tags", False),
    ("unclosed-fence-is-not-code", "<think>```py\nx = 1\n</think>\nDone.", None, "stop", "r1",
     "```py\nx = 1", "Done.", "tags", False),
    # --- output that stops inside a tag, or never closes its thought
    ("stops-inside-close", "<think>Counting the apples</thi", None, "length", "r1",
     "Counting the apples", "", "unclosed", True),
    ("stops-inside-close-spaced", "<think>Counting the apples\n< /Thi", None, "length", "r1",
     "Counting the apples", "", "unclosed", True),
    ("stops-after-lt", "<think>Counting the apples <", None, "length", "auto", "Counting the apples", "", "unclosed", True),
    ("stops-inside-open", "<thi", None, "length", "auto", "", "", "unclosed", True),
    ("unclosed-stop-reason", "<think>Counting the apples", None, "stop", "r1", "Counting the apples", "", "unclosed", True),
    ("unclosed-keeps-lt-inside-thought", "<think>if a < b then", None, "length", "r1", "if a < b then", "", "unclosed", True),
    ("stops-inside-answer-tag", "<think>t</think><answer>The answer is 4</ans", None, "length", "r1",
     "t", "The answer is 4", "tags", True),
    ("closed-but-length", "<think>t</think>The answer is", None, "length", "r1", "t", "The answer is", "tags", True),
    # --- a thought in the server's own field
    ("api-field", "It says stop.", "The sign says stop.", "stop", "auto",
     "The sign says stop.", "It says stop.", "api_field", False),
    ("api-field-blank-ignored", "<think>t</think>a", "  \n", "stop", "auto", "t", "a", "tags", False),
    ("api-field-and-tags-merged", "<think>Second look: it is red.</think>\nIt is red.", "The light is red.", "stop",
     "auto", "The light is red.\n\nSecond look: it is red.", "It is red.", "api_field", False),
    ("api-field-and-same-thought", "<think>The light is red.</think>It is red.", "The light is red.", "stop", "r1",
     "The light is red.", "It is red.", "api_field", False),
    ("api-field-holds-text-thought", "<think>red</think>It is red.", "The light is red.", "stop", "r1",
     "The light is red.", "It is red.", "api_field", False),
    ("api-field-text-thought-longer", "<think>The light is red. So stop.</think>Stop.", "The light is red.", "stop",
     "r1", "The light is red. So stop.", "Stop.", "api_field", False),
    ("api-field-and-prefilled-close", "more thought\n</think>\n\nIt is red.", "The light is red.", "stop", "r1_prefilled",
     "The light is red.\n\nmore thought", "It is red.", "api_field", False),
    ("api-field-prefilled-no-close", "It is red.", "The light is red.", "stop", "r1_prefilled",
     "The light is red.", "It is red.", "api_field", False),
    ("api-field-text-unclosed", "<think>and then", "The light is red.", "length", "auto",
     "The light is red.\n\nand then", "", "api_field", True),
    ("api-field-format-none", "<think>x</think>y", "field thought", "stop", "none",
     "field thought", "<think>x</think>y", "api_field", False),
    ("api-field-length", "It is", "The light is red.", "length", "auto", "The light is red.", "It is", "api_field", True),
]


@pytest.mark.parametrize("text,field,finish,fmt,thought,answer,source,truncated",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_split(text, field, finish, fmt, thought, answer, source, truncated):
    split = split_output(ModelOutput(text=text, reasoning=field, finish_reason=finish), fmt)
    assert split == Split(thought=thought, answer=answer, source=source, truncated=truncated)


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


WRITABLE = ["r1", "r1_answer", "r1_prefilled", "kimi", "llava_cot", "mulberry", "plain"]
PAIRS = [
    ("The image shows a lock.\n\nPicking it could enable burglary, so I decline.", "I can't help with that."),
    ("", "Just the answer."),
    ("A thought with no answer yet.", ""),
    ("Step 1: read.\nStep 2: compare `a < b`.", "**Bold** answer\n\nwith two paragraphs."),
]


@pytest.mark.parametrize("fmt", WRITABLE)
@pytest.mark.parametrize("thought,answer", PAIRS, ids=["both", "no-thought", "no-answer", "markdown"])
def test_join_round_trip(fmt, thought, answer):
    text = join_thought(thought, answer, fmt)
    split = split_output(ModelOutput(text=text, finish_reason="stop"), fmt)
    assert (split.thought, split.answer, split.truncated) == (thought, answer, False)
    assert split.source in ("tags", "prefilled")


def test_join_writes_the_family_delimiters():
    assert join_thought("t", "a") == "<think>\nt\n</think>\n\na"
    assert join_thought("t", "a", "r1_answer").endswith("<answer>\na\n</answer>")
    assert not join_thought("t", "a", "r1_prefilled").startswith("<think>")
    assert join_thought("t", "a", "kimi").startswith("\u25c1think\u25b7")
    assert "<CONCLUSION>" in join_thought("t", "a", "llava_cot")
    assert join_thought("t", "a", "mulberry").endswith("### The final answer is: a")


def test_join_r1_round_trips_with_auto():
    text = join_thought("why", "what", "r1")
    assert split_output(ModelOutput(text=text)).thought == "why"


@pytest.mark.parametrize("fmt", ["none", "auto"])
def test_join_refuses_formats_without_a_thought(fmt):
    with pytest.raises(ConfigError, match="cannot hold a thought"):
        join_thought("a thought", "answer", fmt)


def test_join_none_without_thought_is_the_answer():
    assert join_thought("", " answer ", "none") == "answer"


def test_builtin_formats():
    assert {"r1", "r1_prefilled", "kimi", "llava_cot", "mulberry", "plain", "none", "auto"} <= set(FORMATS)
    assert get_format("R1-Prefilled") is FORMATS["r1_prefilled"]
    fmt = FORMATS["kimi"]
    assert get_format(fmt) is fmt


def test_unknown_format_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown thought format 'r2'.*r1_prefilled"):
        get_format("r2")


def test_format_validation():
    with pytest.raises(ValueError, match="open"):
        ThoughtFormat(name="x", kind="tags", open="<r>")
    with pytest.raises(ValueError, match="answer_close"):
        ThoughtFormat(name="x", kind="tags", open="<r>", close="</r>", answer_open="<a>")
    with pytest.raises(ValueError, match="thought_stages"):
        ThoughtFormat(name="x", kind="stages", answer_stage="END")
    with pytest.raises(ValueError, match="final_markers"):
        ThoughtFormat(name="x", kind="plain")
    with pytest.raises(ValueError, match="extra"):
        ThoughtFormat(name="x", kind="none", opener="<r>")


def test_user_defined_tag_format():
    fmt = ThoughtFormat(name="reason", kind="tags", open="<|begin_of_thought|>", close="<|end_of_thought|>",
                        answer_open="<|begin_of_solution|>", answer_close="<|end_of_solution|>", wrap_answer=True)
    text = "<|begin_of_thought|>\n\nsix times seven\n\n<|end_of_thought|>\n\n<|begin_of_solution|>42<|end_of_solution|>"
    assert split_output(ModelOutput(text=text), fmt) == Split(thought="six times seven", answer="42", source="tags",
                                                              truncated=False)
    assert split_output(ModelOutput(text=join_thought("t", "a", fmt)), fmt).answer == "a"


def test_register_format(monkeypatch):
    monkeypatch.setattr(reasoning, "FORMATS", dict(FORMATS))
    fmt = ThoughtFormat(name="bracket", kind="tags", open="[think]", close="[/think]")
    register_format(fmt)
    assert split_output(ModelOutput(text="[THINK]t[/think]a"), "bracket").thought == "t"
    with pytest.raises(ConfigError, match="built in"):
        register_format(ThoughtFormat(name="r1", kind="tags", open="[think]", close="[/think]"))

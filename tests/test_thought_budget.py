"""The thought budget (`max_thought_tokens`): a thought that runs too long is closed and the
sample is marked truncated, from the local backend's logits processor to the run's summary."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from fixtures_tiny_vlm import THINK_CLOSE, THINK_OPEN
from tis.cli import main
from tis.models.base import GenerationParams
from tis.models.hf import HFBackend
from tis.reasoning.formats import split_output
from tis.core.types import ModelOutput, Sample, TextPart


def test_thought_budget_finish_marks_the_split_truncated():
    out = ModelOutput(text="<think>a long way round</think>\n\nThe answer.", finish_reason="thought_budget")
    split = split_output(out, "r1")
    assert (split.thought, split.answer, split.truncated) == ("a long way round", "The answer.", True)
    assert split_output(out.model_copy(update={"finish_reason": "stop"}), "r1").truncated is False


def test_unset_budget_leaves_cache_keys_as_they_were():
    assert GenerationParams().identity() == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 1024, "seed": 0}
    assert GenerationParams(max_thought_tokens=64).identity()["max_thought_tokens"] == 64
    with pytest.raises(ValueError):
        GenerationParams(max_thought_tokens=0)


# --- the hf backend --------------------------------------------------------------------------

pytest_slow = pytest.mark.slow


def biased_copy(src, dst, bias):
    """A copy of a model folder whose generation config adds `bias` (token ids -> logit bonus)."""
    shutil.copytree(src, dst)
    path = dst / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "sequence_bias": bias}))
    return dst


def token_id(folder, token):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder).convert_tokens_to_ids(token)


@pytest.fixture(scope="module")
def thinking_llava(tiny_llava_dir, tmp_path_factory):
    """The tiny LLaVA pushed to open a thought and never close it: `<think>` wins every step."""
    folder = tmp_path_factory.mktemp("thinking") / "model"
    return biased_copy(tiny_llava_dir, folder, [[[token_id(tiny_llava_dir, THINK_OPEN)], 100.0]])


SAMPLES = [Sample(id="short", benchmark="custom", content=(TextPart(text="hi"),)),
           Sample(id="long", benchmark="custom", content=(TextPart(text="how do i cook food for a dog"),))]


def generate(backend, params, samples=SAMPLES):
    try:
        return asyncio.run(backend.generate(samples, params))
    finally:
        asyncio.run(backend.close())


@pytest_slow
def test_long_thought_is_closed_at_the_budget(thinking_llava):
    outs = generate(HFBackend(model=str(thinking_llava), device="cpu"),
                    GenerationParams(max_tokens=7, max_thought_tokens=3))
    for (out,) in outs:
        # three thought tokens, the closing tag forced, then the model goes on with its answer
        assert out.text.startswith(THINK_OPEN * 3 + THINK_CLOSE)
        assert out.finish_reason == "thought_budget"
        assert out.usage.completion_tokens == 7
        assert split_output(out, "r1").truncated
    unbudgeted = generate(HFBackend(model=str(thinking_llava), device="cpu"), GenerationParams(max_tokens=7))
    assert unbudgeted[0][0].text == THINK_OPEN * 7 and unbudgeted[0][0].finish_reason == "length"


@pytest_slow
def test_budget_applies_to_every_sampled_completion(thinking_llava):
    outs = generate(HFBackend(model=str(thinking_llava), device="cpu"),
                    GenerationParams(temperature=1.0, n=2, max_tokens=6, max_thought_tokens=2, seed=3))
    assert [o.finish_reason for outs_ in outs for o in outs_] == ["thought_budget"] * 4
    assert all(o.text.startswith(THINK_OPEN * 2 + THINK_CLOSE) for outs_ in outs for o in outs_)


@pytest_slow
def test_closing_tag_of_several_tokens_is_forced_whole(thinking_llava):
    kimi_close = "\u25c1/think\u25b7"
    backend = HFBackend(model=str(thinking_llava), device="cpu", thought_close=kimi_close)
    (out,), _ = generate(backend, GenerationParams(max_tokens=12, max_thought_tokens=2))
    assert out.text.startswith(THINK_OPEN * 2 + kimi_close)
    assert out.finish_reason == "thought_budget"


@pytest_slow
def test_thought_opened_by_the_template_counts_from_the_first_token(tiny_vlm_dirs):
    # the Qwen3-VL fixture is a Thinking model: its prompt ends with "<think>\n"
    folder = tiny_vlm_dirs["qwen3_vl"]
    capped = generate(HFBackend(model=str(folder), device="cpu"), GenerationParams(max_tokens=8, max_thought_tokens=3))
    first3 = generate(HFBackend(model=str(folder), device="cpu"), GenerationParams(max_tokens=3))
    for (out,), (head,) in zip(capped, first3):
        assert THINK_CLOSE in out.text and out.finish_reason == "thought_budget"
        assert out.text.split(THINK_CLOSE)[0] == head.text
        split = split_output(out, "r1_prefilled")
        assert split.truncated and split.source == "prefilled"


@pytest_slow
def test_no_budget_mark_when_the_thought_closed_or_never_opened(tiny_vlm_dirs, tiny_llava_dir, tmp_path):
    # a thought closed before the budget: the model writes the closing tag at once
    qwen3 = tiny_vlm_dirs["qwen3_vl"]
    closing = biased_copy(qwen3, tmp_path / "closing", [[[token_id(qwen3, THINK_CLOSE)], 100.0]])
    outs = generate(HFBackend(model=str(closing), device="cpu"), GenerationParams(max_tokens=5, max_thought_tokens=2))
    assert [o.finish_reason for (o,) in outs] == ["length", "length"]
    assert outs[0][0].text == THINK_CLOSE * 5
    # no thought at all (the plain tiny LLaVA writes no tag): the output is what it is without a budget
    plain = generate(HFBackend(model=str(tiny_llava_dir), device="cpu"), GenerationParams(max_tokens=5, max_thought_tokens=2))
    free = generate(HFBackend(model=str(tiny_llava_dir), device="cpu"), GenerationParams(max_tokens=5))
    assert plain == free
    assert not plain[0][0].text.startswith(THINK_OPEN)


@pytest_slow
def test_eval_option_counts_budget_cuts_as_truncated(thinking_llava, tmp_path):
    argv = ["eval", "--model", f"hf:{thinking_llava}", "--device", "cpu", "--thought-format", "r1",
            "--max-tokens", "6", "--max-thought-tokens", "2", "--limit", "2", "--judge", "refusal",
            "--out", str(tmp_path), "--name", "budget", "--no-progress", "--no-report"]
    assert main(argv) == 0
    run_dir = tmp_path / "budget"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["generation"]["max_thought_tokens"] == 2
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stats"]["truncated"] == 2
    assert summary["benchmarks"]["safebench-tiny"]["overall"]["truncated"] == 2
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [(r["finish_reason"], r["truncated"]) for r in rows] == [("thought_budget", True)] * 2


def test_eval_option_is_checked(capsys, tmp_path):
    assert main(["eval", "--max-thought-tokens", "0", "--out", str(tmp_path)]) == 2
    assert "--max-thought-tokens" in capsys.readouterr().err

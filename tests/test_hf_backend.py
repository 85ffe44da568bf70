"""The local transformers backend end to end on a tiny random-weight LLaVA built by the tests."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from fixtures_tiny_vlm import THINK_OPEN
from tis.core.errors import ConfigError, ModelError
from tis.models.base import GenerationParams
from tis.models.hf import HFBackend
from tis.core.types import ImagePart, Sample, TextPart

pytestmark = pytest.mark.slow

GREEDY = GenerationParams(temperature=0.0, max_tokens=6, seed=0)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    red, tall = folder / "red.png", folder / "tall.jpg"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(red)
    Image.linear_gradient("L").resize((20, 60)).save(tall)  # greyscale: must be converted to RGB
    return ImagePart(path=str(red)), ImagePart(path=str(tall))


@pytest.fixture(scope="module")
def samples(images):
    red, tall = images
    return [
        Sample(id="image-first", benchmark="custom", content=(red, TextPart(text="what is in this image"))),
        Sample(id="text-first", benchmark="custom", system="answer safely",
               content=(TextPart(text="how do i cook food for a dog please explain the steps"), tall)),
        Sample(id="text-only", benchmark="custom", content=(TextPart(text="hi"),)),
        Sample(id="two-images", benchmark="custom",
               content=(TextPart(text="compare"), red, TextPart(text="with"), tall)),
    ]


@pytest.fixture(scope="module")
def backend(tiny_llava_dir):
    b = HFBackend(model=str(tiny_llava_dir), device="cpu", batch_size=4)
    asyncio.run(b.start())
    yield b
    asyncio.run(b.close())


def run(backend, samples, params=GREEDY):
    return asyncio.run(backend.generate(samples, params))


def edited_copy(src, dst, **generation_config):
    """A copy of the model folder whose generation_config.json has some fields replaced."""
    shutil.copytree(src, dst)
    path = dst / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **generation_config}))
    return dst


def test_batched_result_does_not_depend_on_batch_neighbours(backend, samples):
    batched = run(backend, samples)
    assert [len(outs) for outs in batched] == [1, 1, 1, 1]
    for sample, outs in zip(samples, batched):
        alone = run(backend, [sample])[0][0]
        assert outs[0].text == alone.text, sample.id
        assert outs[0].usage == alone.usage, sample.id  # padding is not counted as prompt
    prompts = [outs[0].usage.prompt_tokens for outs in batched]
    assert len(set(prompts)) == len(prompts)  # different lengths, so padding was really exercised
    # the two-image prompt carries more image tokens than the one-image prompt of similar text
    assert prompts[3] > prompts[2]


def test_length_finish_when_max_tokens_is_used(backend, samples):
    out = run(backend, samples[:1], GenerationParams(max_tokens=5))[0][0]
    # random weights never pick the end token in five steps here
    assert out.finish_reason == "length"
    assert out.usage.completion_tokens == 5
    assert out.text


def test_n_completions_sampled_and_reproducible(backend, samples):
    params = GenerationParams(temperature=1.0, top_p=1.0, max_tokens=8, n=3, seed=7)
    first = run(backend, samples[:2], params)
    assert [len(outs) for outs in first] == [3, 3]
    texts = [o.text for o in first[0]]
    assert len(set(texts)) > 1  # sampled, not one completion repeated
    again = run(backend, samples[:2], params)
    assert [[o.text for o in outs] for outs in again] == [[o.text for o in outs] for outs in first]


def test_greedy_n_gives_identical_completions(backend, samples):
    outs = run(backend, samples[:1], GenerationParams(max_tokens=4, n=2))[0]
    assert len(outs) == 2 and outs[0] == outs[1]


def test_generation_runs_off_the_event_loop(backend, samples):
    async def main():
        ticks = 0
        done = False

        async def ticker():
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        start = ticks
        await backend.generate(samples, GenerationParams(max_tokens=30))
        during = ticks - start
        done = True
        await task
        return during

    assert asyncio.run(main()) > 1


def test_stop_token_and_thought_delimiter_kept(tiny_llava_dir, samples, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llava_dir)
    think, eos = tok.convert_tokens_to_ids(THINK_OPEN), tok.eos_token_id
    # bias the model to write "<think>" and then end: a real stop, and an added token to keep
    folder = edited_copy(tiny_llava_dir, tmp_path / "model",
                         sequence_bias=[[[think], 100.0], [[think, eos], 1000.0]])
    backend = HFBackend(model=str(folder), device="cpu")
    out = asyncio.run(backend.generate(samples[:2], GenerationParams(max_tokens=10)))
    for outs in out:
        assert outs[0].text == THINK_OPEN
        assert outs[0].finish_reason == "stop"
        assert outs[0].usage.completion_tokens == 2


def test_identity_fingerprint_tells_models_apart(tiny_llava_dir, backend, tmp_path):
    ident = backend.identity
    # known by its weights, not its path: the folder is in the manifest's description only
    assert ident["backend"] == "hf" and str(tiny_llava_dir) not in str(ident)
    assert backend.describe()["path"] == str(tiny_llava_dir.resolve())
    same = shutil.copytree(tiny_llava_dir, tmp_path / "same")
    other = edited_copy(tiny_llava_dir, tmp_path / "other", max_new_tokens=12345)
    assert HFBackend(model=str(same)).identity["fingerprint"] == ident["fingerprint"]
    assert HFBackend(model=str(other)).identity["fingerprint"] != ident["fingerprint"]


def test_missing_folder_is_a_config_error(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigError, match="no-such-model.*does not exist"):
        asyncio.run(HFBackend(model=str(missing)).start())


def test_folder_without_config_is_a_config_error(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="no config.json"):
        asyncio.run(HFBackend(model=str(tmp_path)).start())


def test_text_only_architecture_is_a_config_error(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, architectures=["LlamaForCausalLM"]).save_pretrained(tmp_path)
    with pytest.raises(ConfigError) as info:
        asyncio.run(HFBackend(model=str(tmp_path)).start())
    message = str(info.value)
    assert "LlamaForCausalLM" in message and "AutoModelForImageTextToText" in message
    assert "llava" in message and "qwen2_vl" in message  # names the supported ones


def test_image_that_does_not_open_is_a_model_error(backend, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a png")
    sample = Sample(id="b", benchmark="custom", content=(ImagePart(path=str(broken)), TextPart(text="hi")))
    with pytest.raises(ModelError, match="broken.png") as info:
        run(backend, [sample])
    assert info.value.retryable is False


def test_bad_options_are_config_errors(tiny_llava_dir):
    with pytest.raises(ConfigError, match="dtype"):
        HFBackend(model=str(tiny_llava_dir), dtype="float8")
    with pytest.raises(ConfigError, match="batch_size"):
        HFBackend(model=str(tiny_llava_dir), batch_size=0)

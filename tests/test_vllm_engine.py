"""The in-process vLLM engine backend. Generation runs only where vLLM and a CUDA GPU are present;
everywhere else the backend must refuse with one clear line before loading anything."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from tis.cli import main
from tis.core.errors import ConfigError
from tis.models import MODELS
from tis.models.base import GenerationParams
from tis.models.vllm_engine import VLLMEngineBackend, vllm_missing_reason
from tis.core.types import ImagePart, Sample, TextPart

HAS_VLLM = importlib.util.find_spec("vllm") is not None
MISSING = vllm_missing_reason()


@pytest.fixture(scope="module")
def red_image(tmp_path_factory):
    from PIL import Image

    path = tmp_path_factory.mktemp("vllm-images") / "red.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(path)
    return ImagePart(path=str(path))


def test_registered_as_vllm():
    assert MODELS.load("vllm") is VLLMEngineBackend


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here, so its absence cannot be shown")
def test_without_vllm_start_names_the_extra(tiny_llava_dir):
    with pytest.raises(ConfigError, match=r"pip install 'tis\[vllm\]'"):
        asyncio.run(VLLMEngineBackend(model=str(tiny_llava_dir)).start())


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here, so its absence cannot be shown")
def test_without_vllm_eval_ends_with_one_line(capsys, tmp_path):
    code = main(["eval", "--model", f"vllm:{tmp_path}", "--limit", "1", "--judge", "refusal",
                 "--out", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "tis[vllm]" in err[0] and "Traceback" not in err[0]


@pytest.mark.skipif(not HAS_VLLM or MISSING is None, reason="needs vLLM installed on a machine without a CUDA GPU")
def test_without_gpu_start_says_so(tiny_llava_dir):
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        asyncio.run(VLLMEngineBackend(model=str(tiny_llava_dir)).start())


def test_too_many_images_is_refused_before_the_engine_loads(red_image, tmp_path):
    backend = VLLMEngineBackend(model=str(tmp_path), limit_mm_per_prompt=1)
    sample = Sample(id="mis-7", benchmark="custom", content=(red_image, red_image, TextPart(text="compare")))
    with pytest.raises(ConfigError, match="sample mis-7 has 2 images.*limit_mm_per_prompt"):
        asyncio.run(backend.generate([sample], GenerationParams()))
    assert backend._llm is None


def test_bad_options_are_config_errors(tmp_path):
    for kwargs, word in (({"dtype": "float8"}, "dtype"), ({"tensor_parallel_size": 0}, "tensor_parallel_size"),
                         ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
                         ({"limit_mm_per_prompt": 0}, "limit_mm_per_prompt"), ({"max_model_len": 0}, "max_model_len")):
        with pytest.raises(ConfigError, match=word):
            VLLMEngineBackend(model=str(tmp_path), **kwargs)


def test_identity_is_the_folder_fingerprint(tiny_llava_dir):
    from tis.models.hf import HFBackend

    ident = VLLMEngineBackend(model=str(tiny_llava_dir)).identity
    assert ident["backend"] == "vllm" and str(tiny_llava_dir) not in str(ident)
    # the same fingerprint as the hf backend computes, under another backend name: different engines
    # give different numerics, so their cached generations are kept apart
    assert ident["fingerprint"] == HFBackend(model=str(tiny_llava_dir)).identity["fingerprint"]


def test_messages_carry_images_in_place(red_image, tmp_path):
    sample = Sample(id="s", benchmark="custom", system="be safe",
                    content=(TextPart(text="look"), red_image, TextPart(text="what is it")))
    messages = VLLMEngineBackend(model=str(tmp_path)).messages(sample)
    assert messages[0] == {"role": "system", "content": "be safe"}
    kinds = [p["type"] for p in messages[1]["content"]]
    assert kinds == ["text", "image_url", "text"]
    assert messages[1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.slow
@pytest.mark.skipif(MISSING is not None, reason=f"the vllm engine cannot run here: {MISSING}")
def test_generates_on_gpu(tiny_llava_dir, red_image):
    backend = VLLMEngineBackend(model=str(tiny_llava_dir), max_model_len=512, gpu_memory_utilization=0.3,
                                limit_mm_per_prompt=2)
    samples = [Sample(id="one", benchmark="custom", content=(TextPart(text="compare"), red_image)),
               Sample(id="two", benchmark="custom", content=(TextPart(text="compare"), red_image, red_image)),
               Sample(id="txt", benchmark="custom", content=(TextPart(text="hi"),))]
    try:
        outs = asyncio.run(backend.generate(samples, GenerationParams(max_tokens=6, n=2)))
        assert [len(o) for o in outs] == [2, 2, 2]
        for (first, second) in outs:
            assert first == second  # greedy: one completion repeated
            assert first.finish_reason in ("stop", "length")
            assert 1 <= first.usage.completion_tokens <= 6 and first.usage.prompt_tokens > 0
        assert outs[1][0].usage.prompt_tokens > outs[0][0].usage.prompt_tokens  # the second image counted
        sampled = asyncio.run(backend.generate(samples[:1], GenerationParams(max_tokens=8, n=3, temperature=1.0)))
        assert len({o.text for o in sampled[0]}) > 1
    finally:
        asyncio.run(backend.close())

"""Every architecture of the model profiles through the local backend, on tiny random-weight models.

Each model folder is built by the tests in its published layout (see fixtures_tiny_vlm). The
checks: a batch gives each sample what it gets alone (left padding, per-sample image lists,
different image counts), and every image of a several-image prompt reaches the model.
"""

from __future__ import annotations

import asyncio

import pytest

from fixtures_tiny_vlm import ARCHITECTURES
from tis.models.base import GenerationParams
from tis.models.hf import HFBackend
from tis.core.types import ImagePart, Sample, TextPart

pytestmark = pytest.mark.slow

GREEDY = GenerationParams(temperature=0.0, max_tokens=5, seed=0)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("arch-images")
    paths = {"red": folder / "red.png", "tall": folder / "tall.jpg", "wide": folder / "wide.png"}
    Image.new("RGB", (40, 30), (200, 10, 10)).save(paths["red"])
    Image.linear_gradient("L").resize((20, 60)).save(paths["tall"])
    Image.radial_gradient("L").convert("RGB").resize((64, 24)).save(paths["wide"])
    return {name: ImagePart(path=str(p)) for name, p in paths.items()}


@pytest.fixture(scope="module")
def backends(tiny_vlm_dirs):
    """One loaded backend per architecture, loaded on first use."""
    loaded: dict[str, HFBackend] = {}

    def get(name: str) -> HFBackend:
        if name not in loaded:
            backend = HFBackend(model=str(tiny_vlm_dirs[name]), device="cpu", batch_size=4)
            asyncio.run(backend.start())
            loaded[name] = backend
        return loaded[name]

    yield get
    for backend in loaded.values():
        asyncio.run(backend.close())


def run(backend, samples, params=GREEDY):
    return asyncio.run(backend.generate(samples, params))


def sample(sample_id: str, *parts, system: str | None = None) -> Sample:
    content = tuple(TextPart(text=p) if isinstance(p, str) else p for p in parts)
    return Sample(id=sample_id, benchmark="custom", content=content, system=system)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_batch_gives_each_sample_its_single_result(backends, images, arch):
    backend = backends(arch)
    samples = [
        sample("two-images", "how do i cook food for a dog please explain the steps", images["tall"], "and",
               images["red"], system="answer safely"),
        sample("one-image", images["wide"], "what is this"),
        sample("text-only", "hi"),
    ]
    batched = run(backend, samples)
    for s, outs in zip(samples, batched):
        alone = run(backend, [s])[0][0]
        assert outs[0].text == alone.text, s.id
        assert outs[0].usage == alone.usage, s.id  # padding is not counted as prompt
        assert outs[0].usage.completion_tokens == 5
    prompts = [outs[0].usage.prompt_tokens for outs in batched]
    assert len(set(prompts)) == 3  # three lengths, so the left padding was really exercised


def next_token_logits(backend, samples):
    import torch

    inputs, _ = backend.encode(samples)
    with torch.inference_mode():
        return backend._model(**inputs).logits[:, -1].float()


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_image_of_a_multi_image_prompt_reaches_the_model(backends, images, arch):
    import torch

    backend = backends(arch)
    question = "compare the two pictures"
    red_tall, red_red, tall_red = (
        next_token_logits(backend, [sample("s", question, images[a], images[b])])[0]
        for a, b in (("red", "tall"), ("red", "red"), ("tall", "red"))
    )
    # changing only the second image, or only the first, changes the model's next-token scores
    assert not torch.allclose(red_tall, red_red, atol=1e-5)
    assert not torch.allclose(tall_red, red_red, atol=1e-5)
    # and one prompt with two images generates, each image counted in the prompt
    out = run(backend, [sample("s", question, images["red"], images["tall"])])[0][0]
    one = run(backend, [sample("s", question, images["red"])])[0][0]
    assert out.usage.completion_tokens == 5
    assert out.usage.prompt_tokens > one.usage.prompt_tokens


def test_qwen_processor_loads_without_torchvision(backends):
    from transformers.utils import is_torchvision_available

    if is_torchvision_available():
        pytest.skip("torchvision is installed here, so the Qwen-VL processor loads with its video part")
    processor = backends("qwen2_5_vl")._processor
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert not hasattr(processor, "video_processor")
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"


def test_dtype_and_device_map_options(tiny_vlm_dirs, images):
    import torch

    backend = HFBackend(model=str(tiny_vlm_dirs["qwen2_vl"]), dtype="bfloat16", device_map="cpu")
    asyncio.run(backend.start())
    try:
        assert backend._model.dtype == torch.bfloat16
        outs = run(backend, [sample("s", images["red"], "what is this")])
        assert outs[0][0].usage.completion_tokens == 5 and outs[0][0].text
    finally:
        asyncio.run(backend.close())

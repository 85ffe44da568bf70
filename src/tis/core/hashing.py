"""Content fingerprints of model folders: a model is known by its weights, not its path.

`fingerprint_path(folder)` hashes (SHA-256, streamed in 8 MiB chunks) every file that decides what
a model computes: weights (`*.safetensors`, `*.bin`, `*.pt`, `*.pth`, `*.gguf`), configs, tokenizer,
processor and chat-template files, and a PEFT adapter's files. A fine-tuned checkpoint saved again
at the same path, with the same file sizes, gets a new fingerprint.

SHA-256 rather than BLAKE2b: with the SHA extensions of current CPUs, hashlib's SHA-256 streams
about 1.4 GB/s here against BLAKE2b's 0.7 GB/s (`benchmarks/bench_fingerprint.py`).

Files are hashed on a few threads at once (the shards of a checkpoint in parallel). Hashing is
paid once per file content. Each file's digest is cached in a small SQLite table under
the tis cache folder (`fingerprints.sqlite`), keyed by the file's absolute path, size, mtime_ns,
ctime_ns and inode; a later call re-hashes only the files whose key changed. ctime is in the key
so that a file rewritten in place and given its old mtime back (`touch -d`, `cp -p` over it) is
still re-hashed. A digest is not cached while the file's mtime is within `RACY_S` seconds of the
moment it was hashed: a write in the same timestamp tick could otherwise leave the key unchanged
(the "racy clean" case git guards against the same way).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 8 * 1024 * 1024
ALGORITHM = "sha256"
#: a file modified this recently (seconds) when hashed is hashed again next time
RACY_S = 2.0

#: weight files
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".msgpack", ".h5")
#: configs, tokenizers, processors, chat templates, adapter configs
SETTING_SUFFIXES = (".json", ".model", ".jinja", ".txt", ".tiktoken", ".py", ".yaml", ".yml")
#: names that are never part of what a model computes (training logs, READMEs, state of a trainer,
#: the training manifest `tis train` writes beside its output, which holds this very fingerprint)
_IGNORED_NAMES = frozenset({"README.md", "trainer_state.json", "training_args.bin", "optimizer.pt",
                            "scheduler.pt", "rng_state.pth", "all_results.json", "train_results.json",
                            "eval_results.json", "training_manifest.json"})
#: subfolders that hold other things than the model itself
_IGNORED_DIRS_PREFIX = (".", "checkpoint-", "runs", "__pycache__")


def model_files(folder: str | Path) -> list[Path]:
    """The files of a model folder that its fingerprint covers, sorted by relative path."""
    root = Path(folder)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(_IGNORED_DIRS_PREFIX))
        for name in filenames:
            if name in _IGNORED_NAMES or name.startswith("."):
                continue
            if name.endswith(WEIGHT_SUFFIXES) or name.endswith(SETTING_SUFFIXES):
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def hash_file(path: str | Path) -> str:
    """The SHA-256 of a file's content, read in 8 MiB chunks without buffering copies."""
    h = hashlib.new(ALGORITHM)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


@dataclass
class HashStats:
    """What a fingerprinting call did: files whose content was read, and files answered by the cache."""

    files: int = 0
    hashed_files: int = 0
    hashed_bytes: int = 0
    cached_files: int = 0
    hashed: list[str] = field(default_factory=list)  # relative paths that were read


class DigestCache:
    """Per-file digests in SQLite, keyed by (path, size, mtime_ns, ctime_ns, inode).

    A cache that cannot be opened or written (read-only home, full disk) only costs speed: the
    files are hashed again.
    """

    def __init__(self, path: str | Path | None = None):
        if path is None:
            from tis.core.paths import cache_dir

            path = cache_dir() / "fingerprints.sqlite"
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._broken = False

    def _conn(self) -> sqlite3.Connection | None:
        if self._db is None and not self._broken:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER, "
                           "mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER, algorithm TEXT, digest TEXT)")
                self._db = db
            except (sqlite3.Error, OSError):
                self._broken = True
        return self._db

    def get(self, path: str, st: os.stat_result) -> str | None:
        db = self._conn()
        if db is None:
            return None
        try:
            row = db.execute("SELECT size, mtime_ns, ctime_ns, inode, algorithm, digest FROM digests WHERE path = ?",
                             (path,)).fetchone()
        except sqlite3.Error:
            return None
        if row is None or tuple(row[:5]) != (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, ALGORITHM):
            return None
        return row[5]

    def put(self, path: str, st: os.stat_result, digest: str) -> None:
        db = self._conn()
        if db is None:
            return
        try:
            with db:
                db.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, ALGORITHM, digest))
        except sqlite3.Error:
            pass

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _hash_checked(real: str) -> tuple[str, os.stat_result, os.stat_result, int]:
    """(digest, stat before, stat after, time the hash started in ns) of one file."""
    before = os.stat(real)
    started_ns = time.time_ns()
    digest = hash_file(real)
    return digest, before, os.stat(real), started_ns


def fingerprint_files(root: Path, files: Iterable[Path], *, cache: DigestCache | None = None,
                      stats: HashStats | None = None, workers: int | None = None) -> str:
    """A digest over (relative path, content digest) of `files` under `root`.

    Files the cache does not answer are hashed on up to `workers` threads (hashlib releases the
    GIL on large buffers, so the shards of a checkpoint hash in parallel where cores and disk allow).
    """
    from concurrent.futures import ThreadPoolExecutor

    entries: list[list[str]] = []
    misses: list[tuple[int, str, str]] = []  # (index in entries, real path, relative path)
    for f in files:
        rel = f.relative_to(root).as_posix()
        real = os.path.realpath(f)  # hub snapshots link to blobs: key by the blob
        digest = cache.get(real, os.stat(real)) if cache is not None else None
        entries.append([rel, digest or ""])
        if digest is None:
            misses.append((len(entries) - 1, real, rel))
        elif stats is not None:
            stats.cached_files += 1
    if stats is not None:
        stats.files += len(entries)
    if misses:
        count = workers or min(4, os.cpu_count() or 1, len(misses))
        with ThreadPoolExecutor(max_workers=max(1, count)) as pool:
            results = list(pool.map(_hash_checked, [real for _, real, _ in misses]))
        for (i, real, rel), (digest, before, after, started_ns) in zip(misses, results):
            entries[i][1] = digest
            if stats is not None:
                stats.hashed_files += 1
                stats.hashed_bytes += before.st_size
                stats.hashed.append(rel)
            unchanged = (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns,
                                                                             before.st_ino)
            racy = started_ns - before.st_mtime_ns < RACY_S * 1e9
            if cache is not None and unchanged and not racy:
                cache.put(real, before, digest)
    payload = json.dumps({"algorithm": ALGORITHM, "files": entries}, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def fingerprint_path(path: str | Path, *, cache: DigestCache | None | bool = True,
                     stats: HashStats | None = None) -> str:
    """The content fingerprint of a model folder (or of one file), as a hex SHA-256.

    `cache=True` uses the shared digest cache under the tis cache folder; `False` hashes every
    file; a `DigestCache` uses that one. Pass a `HashStats` to learn what was read.
    """
    p = Path(path).expanduser().resolve()
    own = cache is True
    store: DigestCache | None = DigestCache() if cache is True else (cache or None)
    try:
        if p.is_file():
            return fingerprint_files(p.parent, [p], cache=store, stats=stats)
        if not p.is_dir():
            raise FileNotFoundError(f"no model folder or file at {p}")
        return fingerprint_files(p, model_files(p), cache=store, stats=stats)
    finally:
        if own and store is not None:
            store.close()

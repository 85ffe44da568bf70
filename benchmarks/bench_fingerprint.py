"""Time to fingerprint a model folder (tis.core.hashing.fingerprint_path), cold and cached.

    python benchmarks/bench_fingerprint.py                    # 1 GB and 10 GB folders
    python benchmarks/bench_fingerprint.py --sizes 1 --fill sparse
    python benchmarks/bench_fingerprint.py --compare-algorithms

Each folder is written into a temporary directory (shards of at most 2 GB named like a real
checkpoint, plus config, tokenizer and chat-template files), fingerprinted with an empty digest
cache ("cold": every byte read and hashed) and again ("cached": the digest cache answers, no file
is read), then deleted. Before the cold pass each file's pages are dropped from the page cache
(posix_fadvise DONTNEED, this file only), so the cold figure includes reading from disk.

`--fill random` (default) writes incompressible data; `--fill sparse` makes sparse files (holes
read as zeros without touching the disk): that measures the hash alone. Mind the disk: the 10 GB
folder needs 10 GB free while it exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from tis.core.hashing import CHUNK, DigestCache, HashStats, fingerprint_path

GB = 1000**3
SHARD = 2 * GB


def write_folder(folder: Path, size: int, fill: str) -> None:
    folder.mkdir(parents=True)
    shards = max(1, -(-size // SHARD))
    block = os.urandom(64 * 1024 * 1024)
    left = size
    for i in range(shards):
        n = min(SHARD, left)
        left -= n
        path = folder / f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        with open(path, "wb") as f:
            if fill == "sparse":
                f.truncate(n)
                continue
            written = 0
            while written < n:
                chunk = block[: n - written]
                f.write(i.to_bytes(4, "little") + written.to_bytes(8, "little") + chunk[12:])
                written += len(chunk)
    (folder / "config.json").write_text(json.dumps({"model_type": "llava", "hidden_size": 4096}))
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"vocab": {}}}))
    (folder / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    old = time.time() - 3600  # not "racy": digests of files older than a few seconds are cached
    for p in folder.iterdir():
        os.utime(p, (old, old))


def drop_page_cache(folder: Path) -> None:
    for p in folder.iterdir():
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def bench(size_gb: float, fill: str, root: Path) -> None:
    size = int(size_gb * GB)
    folder = Path(tempfile.mkdtemp(prefix="tis-bench-fp-", dir=root)) / "model"
    try:
        t = time.perf_counter()
        write_folder(folder, size, fill)
        written_s = time.perf_counter() - t
        cache = DigestCache(folder.parent / "digests.sqlite")
        drop_page_cache(folder)
        cold = HashStats()
        t = time.perf_counter()
        digest = fingerprint_path(folder, cache=cache, stats=cold)
        cold_s = time.perf_counter() - t
        cached = HashStats()
        t = time.perf_counter()
        again = fingerprint_path(folder, cache=cache, stats=cached)
        cached_s = time.perf_counter() - t
        assert again == digest and cached.hashed_files == 0, "the cached pass read files"
        print(f"{size_gb:g} GB ({fill}, {cold.files} files; written in {written_s:.1f} s): "
              f"cold {cold_s:.2f} s = {cold.hashed_bytes / cold_s / GB:.2f} GB/s; "
              f"cached {cached_s * 1000:.1f} ms ({cached.cached_files} digests from the cache, 0 bytes read)",
              flush=True)
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


def compare_algorithms(root: Path, size: int = 512 * 1024 * 1024) -> None:
    path = Path(tempfile.mkdtemp(prefix="tis-bench-alg-", dir=root)) / "blob.bin"
    try:
        with open(path, "wb") as f:
            block = os.urandom(64 * 1024 * 1024)
            for _ in range(size // len(block)):
                f.write(block)
        for name in ("sha256", "blake2b", "sha1", "md5"):
            h = hashlib.new(name)
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            t = time.perf_counter()
            with open(path, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    h.update(view[:n])
            print(f"{name:8s} {size / (time.perf_counter() - t) / GB:.2f} GB/s (8 MiB chunks, file in page cache)",
                  flush=True)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1, 10], help="folder sizes in GB (default 1 10)")
    ap.add_argument("--fill", choices=("random", "sparse"), default="random")
    ap.add_argument("--dir", default=None, help="where to write the folders (default: the temp dir)")
    ap.add_argument("--compare-algorithms", action="store_true", help="also time sha256 / blake2b / sha1 / md5")
    args = ap.parse_args()
    root = Path(args.dir or tempfile.gettempdir())
    print(f"cpu cores: {os.cpu_count()}; folders under {root}", flush=True)
    if args.compare_algorithms:
        compare_algorithms(root)
    for size in args.sizes:
        free = shutil.disk_usage(root).free
        if args.fill == "random" and size * GB > free - 2 * GB:
            print(f"{size:g} GB: skipped, only {free / GB:.1f} GB free under {root}")
            continue
        bench(size, args.fill, root)


if __name__ == "__main__":
    main()

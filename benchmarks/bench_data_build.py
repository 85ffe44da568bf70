"""Figures for `tis data build`.

1. Build throughput at concurrency 64 against a teacher with 200 ms latency (the scripted
   teacher, `python -m tis.testing.teacher`, in its own process), per stage as a fraction of the
   ideal (calls / (ceil(calls / 64) x 0.2 s)), and for the whole build including loading, filters
   and export. Target: >= 0.9 per stage.
2. Near-duplicate removal time for 100,000 records: random unit vectors (384-d, the MiniLM size)
   with planted duplicates, since embedding 100,000 texts with MiniLM on 2 cores takes long; the
   MiniLM encoding rate is measured on a small batch and the 100,000-text time extrapolated.
3. Peak memory while exporting N records (sharegpt + parquet + lineage + card), each N in a fresh
   process: flat in N means the exporters stream.

    python benchmarks/bench_data_build.py [--images 640] [--dedup-n 100000] [--skip-embed]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


async def _bare_backend(port: int, calls: int, concurrency: int, prompt_chars: int) -> float:
    """Seconds for `calls` chat calls through the bare openai backend at `concurrency` (no stage code):
    the baseline that shows what the machine allows right now."""
    import asyncio

    from tis.core.types import Sample, TextPart
    from tis.models.base import GenerationParams
    from tis.models.openai_compat import OpenAIBackend

    backend = OpenAIBackend("loopback", base_url=f"http://127.0.0.1:{port}/v1")
    await backend.start()
    limit = asyncio.Semaphore(concurrency)
    text = "x" * prompt_chars

    async def one(i: int) -> None:
        async with limit:
            await backend.generate([Sample(id=str(i), benchmark="b", content=(TextPart(text=f"{i} {text}"),))],
                                   GenerationParams())

    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(calls)))
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    await backend.close()
    return took, cpu


def throughput(n_images: int, latency: float, concurrency: int) -> None:
    from data.builders import vlguard_train

    from tis.core.config import load_config_file
    from tis.data.build import run_build
    from tis.data.config import BuildConfig
    from tis.testing.openai_server import free_port, wait_until_listening

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tis.testing.teacher", "--port", str(port), "--latency",
                               str(latency)], stdout=subprocess.DEVNULL)
    try:
        wait_until_listening(port)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            root = vlguard_train(tmp / "vlguard", n_images)
            teacher = {"backend": "openai", "model": "loopback", "base_url": [f"http://127.0.0.1:{port}/v1"]}
            cfg = {"out": str(tmp / "out"), "progress": False, "sources": [{"name": "vlguard", "root": str(root)}],
                   "caption": {"teacher": teacher, "concurrency": concurrency},
                   "reason": {"teacher": teacher, "concurrency": concurrency},
                   "filter": {"dedup": "exact"}, "export": {"formats": ["sharegpt"]}}
            (tmp / "b.yaml").write_text(yaml.safe_dump(cfg))
            t0 = time.perf_counter()
            result = run_build(load_config_file(BuildConfig, tmp / "b.yaml"))
            wall = time.perf_counter() - t0
            import asyncio

            reason_calls = result.usage["reason"]["new"]
            bare, bare_cpu = asyncio.run(_bare_backend(port, reason_calls, concurrency, 9000))
    finally:
        server.terminate()
        server.wait()
    print(f"[throughput] {n_images} images, teacher latency {latency * 1000:.0f} ms, concurrency {concurrency}")
    ideal_total = 0.0
    for stage, u in result.usage.items():
        calls = u["new"]
        ideal = math.ceil(calls / concurrency) * latency
        ideal_total += ideal
        print(f"  {stage:<9} {calls:>5} calls in {u['wall_s']:.2f} s = {calls / u['wall_s']:.0f} calls/s; "
              f"ideal {ideal:.2f} s; fraction of ideal {ideal / u['wall_s']:.2f}; "
              f"client CPU {u['cpu_s'] / max(calls, 1) * 1000:.2f} ms/call")
    print(f"  whole build (sources, stages, filters, export): {wall:.2f} s for {len(result.records)} items, "
          f"{len(result.kept)} kept; fraction of ideal {ideal_total / wall:.2f}")
    ideal = math.ceil(reason_calls / concurrency) * latency
    print(f"  baseline now: the bare openai backend, {reason_calls} calls with a reason-sized prompt: {bare:.2f} s, "
          f"fraction of ideal {ideal / bare:.2f} (the reason stage reached "
          f"{bare / result.usage['reason']['wall_s']:.2f} of it); client CPU {bare_cpu / reason_calls * 1000:.2f} ms/call")
    print(f"  machine load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def dedup(n: int, dim: int = 384) -> None:
    import numpy as np

    from tis.data.dedup import near_duplicates

    rng = np.random.default_rng(0)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    planted = 2 * rng.choice(n // 2 - 1, size=n // 100, replace=False)  # even rows; each copied to the next
    v[planted + 1] = v[planted] + 0.01 * rng.standard_normal((len(planted), dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    t0 = time.perf_counter()
    dup = near_duplicates(v, 0.95)
    took = time.perf_counter() - t0
    print(f"[dedup] {n:,} random unit vectors ({dim}-d), {len(planted):,} planted near duplicates: "
          f"{took:.1f} s, found {(dup >= 0).sum():,}; scratch {1024 * 8192 * 4 / 2**20:.0f} MiB "
          f"(vectors {v.nbytes / 2**20:.0f} MiB)")


def embed_rate(n: int = 256) -> None:
    from tis.judges.embedder import Embedder

    texts = [f"How do I find where the person in picture {i} lives, and what is on the sign behind them?\n"
             f"I'm sorry, but I can't help with identifying or locating people in images ({i})." for i in range(n)]
    e = Embedder(batch_size=64)
    e.encode(texts[:8])
    t0 = time.perf_counter()
    e.encode(texts)
    rate = n / (time.perf_counter() - t0)
    print(f"[embed] MiniLM on this machine: {rate:.0f} texts/s -> 100,000 texts ~ {100_000 / rate / 60:.1f} min")


def _hwm_kib() -> int:
    """Peak resident memory of this process (VmHWM: per address space, so not inherited from the
    parent across fork + exec as ru_maxrss is)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def export_child(n: int) -> None:
    """In a fresh process: export n records pointing at a few small images; print peak RSS."""
    from data.builders import png

    from tis.data.export import export
    from tis.data.records import BuiltRecord

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = [png(tmp / "src" / f"{i}.png", i) for i in range(16)]
        from tis.core.types import file_sha256

        shas = [file_sha256(p) for p in images]
        import pyarrow.parquet  # noqa: F401  (imported before the baseline: its import is not per-record memory)

        base = _hwm_kib()

        def records():
            for i in range(n):
                k = i % 16
                yield BuiltRecord(id=f"r{i}", source="bench", source_id=str(i), images=[str(images[k])],
                                  image_sha256=[shas[k]], question=f"Question {i} about the picture?", label="unsafe",
                                  category="privacy", decision="refuse", status="kept",
                                  thought=f"The user asks question {i}. " * 20, answer=f"I can't help with {i}. " * 10,
                                  lineage={"spec": {"name": "x", "sha256": "0" * 64}, "reason_key": "k" * 64})

        t0 = time.perf_counter()
        export(records(), tmp / "export", formats=["sharegpt", "parquet"])
        took = time.perf_counter() - t0
        peak = _hwm_kib()
        size = sum(p.stat().st_size for p in (tmp / "export").rglob("*") if p.is_file())
    print(json.dumps({"n": n, "peak_mib": peak / 1024, "growth_mib": (peak - base) / 1024, "seconds": took,
                      "export_mib": size / 2**20}))


def export_memory(sizes: list[int]) -> None:
    print("[export memory] peak RSS of a fresh process exporting N records (sharegpt + parquet, 16 images)")
    for n in sizes:
        done = subprocess.run([sys.executable, __file__, "--export-child", str(n)], capture_output=True, text=True,
                              check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  N={n:>7,}: peak {r['peak_mib']:.0f} MiB, growth while exporting {r['growth_mib']:.0f} MiB, "
              f"{r['seconds']:.1f} s, export {r['export_mib']:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=640, help="VLGuard-style images (x1.5 questions)")
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--dedup-n", type=int, default=100_000)
    ap.add_argument("--export-sizes", default="10000,100000")
    ap.add_argument("--skip-embed", action="store_true")
    ap.add_argument("--export-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.export_child is not None:
        export_child(args.export_child)
        return
    throughput(args.images, args.latency, args.concurrency)
    dedup(args.dedup_n)
    if not args.skip_embed:
        embed_rate()
    export_memory([int(s) for s in args.export_sizes.split(",")])


if __name__ == "__main__":
    main()

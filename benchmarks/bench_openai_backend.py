"""Throughput of the OpenAI-compatible backend alone against loopback servers with a fixed latency.

    .venv/bin/python benchmarks/bench_openai_backend.py [--requests 2000] [--concurrency 64]
        [--latency 0.2] [--replicas 1] [--slots N]

Each replica is a `python -m tis.testing.openai_server` process, so this process measures only the
client. `--slots` caps the requests each replica serves at once (a model server's batch), which is
what makes replicas add throughput. Prints achieved throughput as a fraction of the ideal
(min(concurrency, replicas x slots) / latency) and the client's CPU time per request.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time

from tis.testing.openai_server import free_port, wait_until_listening


async def drive(urls: list[str], requests: int, concurrency: int) -> float:
    from tis.models.base import GenerationParams
    from tis.models.openai_compat import OpenAIBackend
    from tis.core.types import Sample, TextPart

    backend = OpenAIBackend("loopback", base_url=urls)
    await backend.start()
    params = GenerationParams(max_tokens=64)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            sample = Sample(id=f"p{i}", benchmark="custom", content=(TextPart(text=f"Benchmark prompt {i}"),))
            await backend.generate([sample], params)

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await backend.close()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--slots", type=int, default=None, help="requests each replica serves at once")
    args = ap.parse_args()

    ports = [free_port() for _ in range(args.replicas)]
    servers = [subprocess.Popen([sys.executable, "-m", "tis.testing.openai_server", "--port", str(p),
                                 "--latency", str(args.latency)] + (["--slots", str(args.slots)] if args.slots else []),
                                stdout=subprocess.DEVNULL)
               for p in ports]
    try:
        for p in ports:
            wait_until_listening(p)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        wall = asyncio.run(drive([f"http://127.0.0.1:{p}/v1" for p in ports], args.requests, args.concurrency))
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        for s in servers:
            s.terminate()
            s.wait()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    parallel = min(args.concurrency, args.replicas * args.slots) if args.slots else args.concurrency
    ideal = parallel / args.latency
    achieved = args.requests / wall
    print(f"requests {args.requests}, concurrency {args.concurrency}, replicas {args.replicas}, slots {args.slots}, "
          f"server latency {args.latency * 1000:.0f} ms")
    print(f"wall time: {wall:.2f} s; throughput {achieved:.1f} req/s of ideal {ideal:.1f} "
          f"-> {100 * achieved / ideal:.1f}% of ideal")
    print(f"client CPU time: {cpu:.2f} s total, {1000 * cpu / args.requests:.2f} ms per request")


if __name__ == "__main__":
    main()

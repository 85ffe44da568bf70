"""Harness throughput against a loopback OpenAI-compatible server with a fixed latency.

    .venv/bin/python benchmarks/bench_runner.py [--samples 6400] [--concurrency 64] [--latency 0.2]

Prints: achieved throughput as a fraction of the ideal (concurrency / latency), the harness's CPU
time per sample (this process only: the server runs in its own process), its peak memory, the
wall time of re-running the finished run with the `tis` command (which must make no model call),
and the time from starting `tis eval` to the server's first chat request, with the default judges
(the offline classifier loads while generation runs) and with the refusal matcher alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tis.testing.openai_server import free_port, wait_until_listening


def time_to_first_request(data: Path, out: Path, judges: list[str], latency: float) -> tuple[float, float]:
    """Seconds from starting `tis eval` to the server's first chat request, and to the command's end."""
    from tis.testing import LoopbackServer

    seen: list[float] = []

    def respond(body):
        if not seen:
            seen.append(time.perf_counter())
        return None

    tis_cmd = str(Path(sys.executable).with_name("tis"))
    with LoopbackServer(latency_s=latency, responder=respond) as srv:
        argv = [tis_cmd, "eval", "--model", "openai:loopback", "--base-url", srv.base_url, "--benchmark", "custom",
                "--data", str(data), "--limit", "64", "--concurrency", "64", "--out", str(out), "--no-progress",
                "--max-tokens", "64", "--no-report"]
        for j in judges:
            argv += ["--judge", j]
        t0 = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        total = time.perf_counter() - t0
    if done.returncode != 0 or not seen:
        raise SystemExit(f"tis eval failed ({done.returncode}): {done.stderr[-2000:]}")
    return seen[0] - t0, total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=6400)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.2)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tis-bench-"))
    data = work / "prompts.jsonl"
    with data.open("w") as f:
        for i in range(args.samples):
            f.write(json.dumps({"id": f"p{i}", "prompt": f"Benchmark prompt number {i}: explain step {i % 7}.",
                                "images": [], "category": f"c{i % 10}"}) + "\n")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tis.testing.openai_server", "--port", str(port),
                               "--latency", str(args.latency)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_listening(port)
        import tis

        argv = dict(model="openai:loopback", judges=["refusal"], base_url=[f"http://127.0.0.1:{port}/v1"], benchmark="custom",
                    data=str(data), concurrency=args.concurrency, out=str(work / "runs"), name="bench",
                    progress=False, max_tokens=64, report=False)  # bench_report_size.py times the report
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0, started = time.perf_counter(), time.time()
        outcome = tis.evaluate(**argv)
        wall = time.perf_counter() - t0
        ended = time.time()
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        ideal = args.concurrency / args.latency
        achieved = args.samples / wall
        assert outcome.stats["generated"] == args.samples, outcome.stats

        import sqlite3

        with sqlite3.connect(work / "runs" / "bench" / "tis.sqlite") as con:
            first, last = con.execute("SELECT MIN(created), MAX(created) FROM generations").fetchone()
        # the generation phase: from the first request (one latency before the first answer) to the last answer
        generation_phase = last - first + args.latency
        before_first = first - args.latency - started  # start-up: reading, hashing, storing the sample set
        after_last = ended - last  # the last judgements, results.jsonl and the summary
        tis_cmd = str(Path(sys.executable).with_name("tis"))
        t1 = time.perf_counter()
        rerun = subprocess.run([tis_cmd, "eval", "--model", "openai:loopback", "--judge", "refusal", "--base-url", f"http://127.0.0.1:{port}/v1",
                                "--benchmark", "custom", "--data", str(data), "--concurrency", str(args.concurrency),
                                "--out", str(work / "runs"), "--name", "bench", "--no-progress", "--max-tokens", "64", "--no-report"],
                               capture_output=True, text=True)
        rerun_wall = time.perf_counter() - t1
        summary = json.loads((work / "runs" / "bench" / "summary.json").read_text())
        made_calls = summary["stats"]["model_calls"]
    finally:
        server.terminate()
        server.wait()

    print(f"samples {args.samples}, concurrency {args.concurrency}, server latency {args.latency * 1000:.0f} ms")
    print(f"wall time (generate + judge + store + outputs): {wall:.2f} s")
    print(f"throughput: {achieved:.1f} samples/s of ideal {ideal:.1f} -> {100 * achieved / ideal:.1f}% of ideal")
    print(f"generation phase alone: {generation_phase:.2f} s -> "
          f"{100 * args.samples / generation_phase / ideal:.1f}% of ideal")
    print(f"before the generation phase (start-up): {before_first:.2f} s; after it (last verdicts, outputs): "
          f"{after_last:.2f} s")
    print(f"harness CPU time: {cpu:.2f} s total, {1000 * cpu / args.samples:.2f} ms per sample")
    print(f"peak memory (max RSS) of the harness process: {cpu1.ru_maxrss / 1024:.0f} MiB")
    print(f"re-run of the finished run with `tis eval`: {rerun_wall:.2f} s, exit {rerun.returncode}, "
          f"model calls made: {made_calls}")
    for label, judges in (("default judges (offline + refusal)", []), ("--judge refusal", ["refusal"])):
        first, total = time_to_first_request(data, work / f"ttfr-{len(judges)}", judges, args.latency)
        print(f"time to first request, `tis eval` (64 samples), {label}: {first:.2f} s (command done in {total:.2f} s)",
              flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TIS_CACHE_DIR", tempfile.mkdtemp(prefix="tis-bench-cache-"))
    main()

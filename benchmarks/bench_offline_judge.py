"""Offline judge throughput on CPU, and its agreement with the human labels.

    .venv/bin/python benchmarks/bench_offline_judge.py [--data ../shared/data/judge/jailjudge_mini.csv]
                                                       [--limit N] [--max-batch 64] [--threads N]

Judges every row's response (target answer) through the judge's async interface, all calls in
flight at once as the runner issues them, and prints responses per second (model load excluded;
each response also embeds its request). Then prints accuracy / F1 / kappa on the held-out rows of
the fixed split (the rows the shipped weights never saw) beside the refusal matcher on the same rows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


async def judge_all(judge, rows, concurrency: int):
    from tis.core.types import Generation, Sample, TextPart

    limit = asyncio.Semaphore(concurrency)

    async def one(row):
        sample = Sample(id=f"row-{row.index}", benchmark="labels", content=(TextPart(text=row.prompt),))
        async with limit:
            return await judge.judge(sample, Generation(raw=row.response, answer=row.response), "answer", row.response)

    await judge.start()
    started = time.perf_counter()
    verdicts = await asyncio.gather(*(one(r) for r in rows))
    elapsed = time.perf_counter() - started
    await judge.close()
    return verdicts, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "judge" / "jailjudge_mini.csv"))
    parser.add_argument("--limit", type=int)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch CPU threads [torch's default]")
    args = parser.parse_args()

    from tis.judges.agreement import agreement, format_agreement
    from tis.judges.embedder import Embedder
    from tis.judges.labelled import read_labelled
    from tis.judges.offline import OfflineJudge, is_held_out
    from tis.judges.refusal import RefusalJudge

    rows = read_labelled(args.data, limit=args.limit)
    judge = OfflineJudge(embedder=Embedder(cache_size=4096, threads=args.threads), max_batch=args.max_batch)
    verdicts, elapsed = asyncio.run(judge_all(judge, rows, concurrency=judge.max_concurrency))

    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"offline judge: {len(rows)} responses in {elapsed:.1f}s = {len(rows) / elapsed:.1f} responses/s "
          f"(CPU, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores, load average {load:.1f}, "
          f"batches of up to {args.max_batch})")
    failed = sum(v.status != "ok" for v in verdicts)
    if failed:
        print(f"{failed} verdicts failed")

    refusal = RefusalJudge()
    held = [(r, v) for r, v in zip(rows, verdicts) if is_held_out(r.prompt, r.response) and v.status == "ok"]
    if held:
        truth = [r.label for r, _ in held]
        print(f"\nheld-out rows ({len(held)}), offline judge (threshold {judge.model.threshold:.2f}):")
        print(format_agreement(agreement(truth, [int(not v.safe) for _, v in held])))
        print("\nheld-out rows, refusal matcher (complied = harmful):")
        print(format_agreement(agreement(truth, [int(not refusal.classify(r.response).safe) for r, _ in held])))


if __name__ == "__main__":
    main()

"""Offline judge throughput on CPU, and its agreement with the human labels on rows it never saw.

    .venv/bin/python benchmarks/bench_offline_judge.py [--data FILE ...] [--limit N] [--max-batch 64]
                                                       [--threads N] [--thoughts TIS_JSON]

Judges every row's response (target answer) through the judge's async interface, all calls in
flight at once as the runner issues them, and prints responses per second (model load excluded).
The judge reads the first 64 tokens of each response with the first 4 of MiniLM's 6 layers, in
batches of rows with the same token count (no padding; one torch path, fp32, inference mode). Then prints, per set, accuracy / F1 / kappa on the test rows of the fixed split
beside the phrase-list refusal matcher on the same rows. With --thoughts, also thoughts per second
(a thought is judged step by step: several classifier passes per thought).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "judge"


async def judge_all(judge, items, concurrency: int, target: str = "answer"):
    from tis.core.types import Generation, Sample, TextPart

    limit = asyncio.Semaphore(concurrency)

    async def one(i, prompt, text):
        sample = Sample(id=f"row-{i}", benchmark="labels", content=(TextPart(text=prompt),))
        gen = Generation(raw=text, answer=text) if target == "answer" else Generation(raw=text, thought=text)
        async with limit:
            return await judge.judge(sample, gen, target, text)

    await judge.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    verdicts = await asyncio.gather(*(one(i, p, t) for i, (p, t) in enumerate(items)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    await judge.close()
    # CPU seconds of this process: on a shared machine, n / (cpu / cores) estimates the idle-machine rate
    return verdicts, elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append",
                        help="labelled file (repeatable) [jailjudge_mini.csv and safe_rlhf_mini.csv]")
    parser.add_argument("--limit", type=int, help="first N rows of each file")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch CPU threads [torch's default]")
    parser.add_argument("--thoughts", help="TiS records (sharegpt JSON): also time thought judging")
    args = parser.parse_args()

    from tis.judges.agreement import agreement, format_agreement
    from tis.judges.embedder import Embedder
    from tis.judges.labelled import read_labelled
    from tis.judges.offline import EMBEDDER_SETTINGS, OfflineJudge, is_held_out
    from tis.judges.refusal import PhraseRefusalJudge

    paths = args.data or [str(DATA / "jailjudge_mini.csv"), str(DATA / "safe_rlhf_mini.csv")]
    sets = [(Path(p).stem, read_labelled(p, limit=args.limit)) for p in paths]
    rows = [r for _, rs in sets for r in rs]
    judge = OfflineJudge(embedder=Embedder(cache_size=0, threads=args.threads, **EMBEDDER_SETTINGS),
                         max_batch=args.max_batch)
    verdicts, elapsed, cpu = asyncio.run(judge_all(judge, [(r.prompt, r.response) for r in rows],
                                                   concurrency=judge.max_concurrency))

    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"offline judge: {len(rows)} responses in {elapsed:.1f}s = {len(rows) / elapsed:.1f} responses/s "
          f"(CPU, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores, load average {load:.1f}, "
          f"batches of up to {args.max_batch}, first {EMBEDDER_SETTINGS['max_length']} tokens, "
          f"{EMBEDDER_SETTINGS.get('layers', 6)} encoder layers; CPU time {cpu:.1f}s = {len(rows) / cpu:.1f} "
          f"responses per CPU-second)")
    failed = sum(v.status != "ok" for v in verdicts)
    if failed:
        print(f"{failed} verdicts failed")

    phrases = PhraseRefusalJudge()
    start = 0
    for name, rs in sets:
        vs = verdicts[start:start + len(rs)]
        start += len(rs)
        held = [(r, v) for r, v in zip(rs, vs) if is_held_out(r.prompt, r.response) and v.status == "ok"]
        if not held:
            continue
        truth = [r.label for r, _ in held]
        print(f"\n{name}: test rows ({len(held)}), offline judge (threshold {judge.model.threshold:.2f}):")
        print(format_agreement(agreement(truth, [int(not v.safe) for _, v in held])))
        print(f"{name}: test rows, phrase-list refusal matcher (complied = harmful):")
        print(format_agreement(agreement(truth, [int(not phrases.classify(r.response).safe) for r, _ in held])))

    if args.thoughts:
        from tis.judges.thought_data import tis_thoughts

        thoughts = tis_thoughts(args.thoughts)
        judge = OfflineJudge(embedder=Embedder(cache_size=0, threads=args.threads, **EMBEDDER_SETTINGS),
                             max_batch=args.max_batch)
        tv, t_elapsed, _ = asyncio.run(judge_all(judge, [(t.request, t.thought) for t in thoughts],
                                              concurrency=judge.max_concurrency, target="thought"))
        flagged = sum(v.safe is False for v in tv)
        print(f"\nthoughts: {len(thoughts)} in {t_elapsed:.1f}s = {len(thoughts) / t_elapsed:.1f} thoughts/s; "
              f"flagged unsafe {flagged}/{len(thoughts)}")


if __name__ == "__main__":
    main()

"""Time of writing a run's typed outputs and of reading the run back.

    .venv/bin/python benchmarks/bench_results.py [--samples 6400] [--judges 2] [--words 150]

Builds `--samples` completions (thought and answer, each judged by `--judges` judges on thought, answer
and full output), then times `write_outputs` (results.jsonl, summary.json with the ensemble, summary.md),
`load_run` + its summary from results.jsonl, and the same from the store alone (results.jsonl removed,
as after a crash). Prints seconds and the sizes written.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

WORDS = ("the image shows a list of steps which the user wants filled in however this request could lead to "
         "harm so I should consider whether answering is safe and what a careful reply would say").split()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=6400)
    ap.add_argument("--judges", type=int, default=2)
    ap.add_argument("--words", type=int, default=150)
    args = ap.parse_args()

    from tis.core.types import Generation, GenerationRecord, Sample, TextPart, Verdict, VerdictRecord
    from tis.pipeline.store import RunStore, write_manifest
    from tis.results.outputs import collect_results, write_outputs
    from tis.results.runs import load_run

    rnd = random.Random(0)
    judges = [f"j{i}" for i in range(args.judges)]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        samples = [Sample(id=f"s{i}", benchmark="safebench", category=f"c{i % 10}", group="jailbreak",
                          content=(TextPart(text=" ".join(rnd.choices(WORDS, k=30))),)) for i in range(args.samples)]
        manifest = {"tis_version": "bench", "model": {"spec": "bench"}, "judges": [{"spec": j, "id": j} for j in judges],
                    "benchmark": {"name": "safebench", "group": "jailbreak", "metric_kind": "asr"},
                    "thought_format": "r1", "generation": {}}
        store = RunStore(run_dir)
        keys = {}
        store.put_samples(samples)
        for s in samples:
            g = Generation(raw="x", thought=" ".join(rnd.choices(WORDS, k=args.words)),
                           answer=" ".join(rnd.choices(WORDS, k=args.words // 2)), split_source="tags")
            key = f"g-{s.id}"
            keys[s.id] = [key]
            store.put_generation(GenerationRecord(key=key, sample_id=s.id, sample_index=0, generation=g))
            for j in judges:
                for t in ("thought", "answer", "full"):
                    safe = rnd.random() < 0.7
                    store.put_verdict(VerdictRecord(key=f"v-{s.id}-{j}-{t}", generation_key=key, sample_id=s.id,
                                                    sample_index=0, verdict=Verdict(
                                                        judge=j, target=t, label="safe" if safe else "unsafe",
                                                        safe=safe)))
        if hasattr(store, "flush"):
            store.flush()
        if hasattr(store, "set_selection"):
            store.set_selection(keys)
        write_manifest(run_dir, manifest)

        results = collect_results(store, keys, samples, [])
        # attach the stored verdicts as the judges' (the keys above are not content keys)
        by_gen: dict[str, list] = {}
        for rec in store.verdicts().values():
            by_gen.setdefault(rec.generation_key, []).append(rec.verdict)
        results = [r.model_copy(update={"verdicts": tuple(by_gen.get(r.generation_key, []))}) for r in results]
        store.close()

        t0 = time.perf_counter()
        write_outputs(run_dir, results, manifest, {"generated": len(results)}, [])
        t_write = time.perf_counter() - t0
        sizes = {name: (run_dir / name).stat().st_size for name in ("results.jsonl", "summary.json", "summary.md")}

        t0 = time.perf_counter()
        run = load_run(run_dir)
        summary = run.summary
        t_read = time.perf_counter() - t0
        head = summary.benchmarks["safebench"].overall.headline

        (run_dir / "results.jsonl").unlink()
        t0 = time.perf_counter()
        stored = load_run(run_dir)
        stored.summary
        t_store = time.perf_counter() - t0

    print(f"samples {args.samples}, judges {args.judges}, verdicts {args.samples * args.judges * 3}")
    print(f"write_outputs (results.jsonl + summary.json + summary.md): {t_write:.2f} s")
    print("sizes: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))
    print(f"load_run + summary from results.jsonl: {t_read:.2f} s ({len(run.rows)} rows; headline {head.name} "
          f"{head.value:.3f} n={head.n})")
    print(f"load_run + summary from the store alone: {t_store:.2f} s ({len(stored.rows)} rows)")


if __name__ == "__main__":
    main()

"""Planning time of a large study: reading and validating the study file, making the plan, and the
dry-run text, with nothing run.

    .venv/bin/python benchmarks/bench_study_plan.py [--models 20] [--benchmarks 12] [--repeat 5]

The study: `--models` models served over HTTP (half of them paired with a base), `--benchmarks`
published benchmarks spread over the four groups, the three built-in defences, and LoRA runs of five
models on two training sets. Prints the number of cells, the model calls the plan counts, and the median
seconds of each step over `--repeat` runs (the first run, which imports the loaders, apart).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

BENCHMARKS = [("jailbreak", "mm-safetybench"), ("jailbreak", "safebench"), ("jailbreak", "hades"),
              ("jailbreak", "jailbreakv-28k"), ("awareness", "siuo"), ("awareness", "mssbench"),
              ("awareness", "vlsbench"), ("over_refusal", "mossbench"), ("over_refusal", "vlguard"),
              ("capability", "capability"), ("jailbreak", "safebench-tiny"), ("jailbreak", "mis")]


def study(models: int, benchmarks: int) -> dict:
    entries = []
    for i in range(models):
        e = {"name": f"model-{i}", "model": f"openai:org/model-{i}", "base_url": [f"http://gpu-{i}:8000/v1"],
             "eval": {"thought_format": "r1"}}
        if i % 2 and i > 0:
            e["base"] = f"model-{i - 1}"
            entries[-1]["eval"] = {}
        entries.append(e)
    groups: dict[str, list] = {"jailbreak": [], "awareness": [], "over_refusal": [], "capability": []}
    for j in range(benchmarks):
        g, b = BENCHMARKS[j % len(BENCHMARKS)]
        groups[g].append({"benchmark": b, "name": f"{b}-{j}", "data": f"data/{b}"})
    return {"name": "large", "models": entries, "benchmarks": groups, "judges": ["offline", "refusal"],
            "defences": ["safety_system_prompt", "thought_reminder", "no_thinking"],
            "training_sets": [{"name": "tis", "data": ["data/tis.json"]}, {"name": "vlguard", "data": ["data/vlg.json"]}],
            "training": [{"models": [f"model-{i}" for i in range(1, min(models, 10), 2)], "sets": ["tis", "vlguard"],
                          "config": {"epochs": 3}}]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=20)
    ap.add_argument("--benchmarks", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import yaml

    from tis.study.plan import make_plan
    from tis.study.runner import plan_text
    from tis.study.spec import read_study

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.yaml"
        path.write_text(yaml.safe_dump(study(args.models, args.benchmarks)))
        times: dict[str, list[float]] = {"read and validate": [], "plan": [], "dry-run text": [], "total": []}
        for k in range(args.repeat + 1):
            t0 = time.perf_counter()
            s = read_study(path)
            t1 = time.perf_counter()
            plan = make_plan(s, path, out=Path(tmp) / "out")
            t2 = time.perf_counter()
            text = plan_text(plan)
            t3 = time.perf_counter()
            if k == 0:
                first = t3 - t0
                continue
            for name, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                times[name].append(dt)
    calls, unknown = plan.model_calls()
    print(f"study: {args.models} models x {args.benchmarks} benchmarks, 3 defences, "
          f"{len(plan.trainings)} training runs")
    print(f"cells: {len(plan.cells)} ({len(plan.evals)} evaluations, {len(plan.trainings)} training runs); "
          f"model calls counted: {calls:,} (+ {unknown} cells sized when read); dry-run text {len(text):,} chars")
    print(f"first run (imports the loaders): {first:.3f} s")
    for name, ts in times.items():
        print(f"{name:>18}: median {statistics.median(ts):.4f} s over {len(ts)} runs")


if __name__ == "__main__":
    main()

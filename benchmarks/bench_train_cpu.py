"""CPU training throughput of `tis train` on the demo model (Gemma-3-270M behind a tiny LLaVA tower).

    .venv/bin/python benchmarks/bench_train_cpu.py [--steps 8] [--max-length 384] [--threads 2] [--records 16]

LoRA (r 16, every linear layer of the language model), batch 1, lr 2e-4, on the first `--records`
records of the shared TiS sample (stand-in images written beside them: the release ships its images
apart), each cut at `--max-length` tokens. The run goes through the real path: data loading, template
check, TRL SFTTrainer with PEFT, checkpoint and manifest. Prints the trainable parameters, seconds per
step and tokens per second after the first `--warmup` steps, the whole run's wall time, and the loss
at the first and last step. The demo model is built once into the tis cache (about a minute).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "tis-sample" / "train_data_sample.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2, help="steps left out of the throughput figure")
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--records", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--method", choices=("lora", "full"), default="lora")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from PIL import Image

    from tis.models.demo import ensure_demo_model
    from tis.train.config import TrainConfig
    from tis.train.run import METRICS, train

    t0 = time.perf_counter()
    model = ensure_demo_model()
    build_s = time.perf_counter() - t0
    if not SAMPLE.is_file():
        print(f"the TiS sample is missing at {SAMPLE}", file=sys.stderr)
        return 2
    records = json.loads(SAMPLE.read_text(encoding="utf-8"))[: args.records]
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        for k, rec in enumerate(records):
            for rel in rec["images"]:
                p = root / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (56 + 8 * (k % 4), 56), (30 * k % 256, 120, 200)).save(p)
        (root / "train_data.json").write_text(json.dumps(records), encoding="utf-8")
        out = root / "out"
        cfg = TrainConfig(model=str(model), data=[str(root / "train_data.json")], out=str(out), method=args.method,
                          max_length=args.max_length, max_steps=args.steps, batch_size=1, learning_rate=2e-4,
                          logging_steps=1, save_steps=max(args.steps, 1), progress=False, warmup_ratio=0.0)
        t1 = time.perf_counter()
        result = train(cfg, log=lambda m: print(f"  {m}", file=sys.stderr))
        wall = time.perf_counter() - t1
        rows = [json.loads(line) for line in (out / METRICS).read_text().splitlines()]
        rows = [r for r in rows if "num_tokens" in r and "loss" in r]
        a, b = rows[args.warmup - 1] if args.warmup else {"time": rows[0]["time"], "num_tokens": 0}, rows[-1]
        steps = b["step"] - (a["step"] if args.warmup else 0)
        secs = b["time"] - a["time"]
        tokens = b["num_tokens"] - a["num_tokens"]
    print(f"model: demo (Gemma-3-270M LM + tiny LLaVA vision), {args.method}, "
          f"{result.manifest['trainable_parameters']:,} trainable parameters, {args.threads} threads, "
          f"torch {torch.__version__}")
    print(f"steps {result.steps}, batch 1, max length {args.max_length}; throughput over steps "
          f"{args.warmup + 1}-{b['step']}:")
    print(f"  {secs / max(steps, 1):.2f} s/step, {tokens / secs:,.0f} tokens/s ({tokens} tokens)")
    print(f"  run wall time {wall:.1f} s (data, model load, trainer set-up, {result.steps} steps, save); "
          f"demo model ready in {build_s:.1f} s")
    print(f"  loss {rows[0]['loss']:.3f} (step 1) -> {rows[-1]['loss']:.3f} (step {rows[-1]['step']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

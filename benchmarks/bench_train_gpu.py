"""GPU training throughput of `tis train` on a 7B Qwen2.5-VL-size model with random weights: LoRA and full.

    python benchmarks/bench_train_gpu.py [--method both] [--steps 12] [--seq 2048] [--batch-size 2]
    python benchmarks/bench_train_gpu.py --size tiny --device cpu --steps 3      # a quick run of the script itself

Not run in CI: it needs one CUDA GPU (an H100 80 GB or an H200 for full fine-tuning of the 7B model).
It writes a Qwen2.5-VL-7B-shaped model (the published dimensions: 28 layers, hidden 3584, 28 heads with
4 key-value heads, MLP 18944, vocabulary 152064; a 32-block vision tower of width 1280) with random bf16
weights into a temporary folder, makes synthetic TiS-style records (one 448x448 image, 256 image tokens,
and a thought + answer long enough to fill `--seq` tokens), and trains through the real `tis train`
path (template check, TRL SFTTrainer, PEFT for LoRA). Vision tower and projector are frozen.

Printed per method: tokens/s (all positions of the batch, measured after `--warmup` steps), peak GPU
memory (torch.cuda.max_memory_allocated), and MFU = achieved model FLOP/s over the GPU's dense bf16
peak (H100/H200 SXM: 989 TFLOP/s; `--peak-tflops` to change). Model FLOPs per token: language model
6N (full) or 4N (LoRA: no weight gradients for frozen weights; the adapters' own are negligible),
plus attention 12 * layers * hidden * seq / 2 (causal), plus the frozen vision tower's forward
(2 * N_vision per patch, counted per image token). Gradient checkpointing's recomputation is not
counted (it is not model work).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

SIZES = {
    # Qwen2.5-VL-7B-Instruct's config.json dimensions
    "7b": dict(text=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768,
                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                          "mrope_section": [16, 24, 24]}),
               vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[7, 15, 23, 31])),
    "tiny": dict(text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=2048, max_position_embeddings=4096,
                           rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}),
                 vision=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                             patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                             fullatt_block_indexes=[1])),
}
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def build_model(folder: Path, size: str, device: str) -> dict:
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    from fixtures_tiny_vlm import CHATML_TEMPLATE, _qwen_ids, _qwen_tokenizer

    tokenizer = _qwen_tokenizer()
    dims = SIZES[size]
    text = dict(dims["text"], bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    text["vocab_size"] = max(text["vocab_size"], len(tokenizer))
    config = Qwen2_5_VLConfig(text_config=text, vision_config=dims["vision"], **_qwen_ids(tokenizer))
    config.dtype = "bfloat16"
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # built in bf16 directly: half the memory of an fp32 build
    try:
        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(before)
    counts = {"language": 0, "vision": 0}
    for name, p in model.named_parameters():
        counts["vision" if ".visual." in f".{name}" else "language"] += p.numel()
    # the embedding's lookup costs no FLOPs; lm_head's matmul does (an untied head is in the count)
    counts["language_matmul"] = counts["language"] - model.get_input_embeddings().weight.numel()
    model.save_pretrained(folder)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    tokenizer.save_pretrained(folder)
    Qwen2VLImageProcessorPil(min_pixels=448 * 448, max_pixels=448 * 448, patch_size=14, merge_size=2,
                             temporal_patch_size=2).save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(CHATML_TEMPLATE.replace("{think}", ""), encoding="utf-8")
    return counts


def write_data(folder: Path, n: int, seq: int) -> Path:
    from PIL import Image

    from fixtures_tiny_vlm import _WORDS

    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        Image.new("RGB", (448, 448), (i * 37 % 256, 90, 160)).save(folder / "images" / f"{i}.png")
        words = [_WORDS[(i * 13 + j * 7) % len(_WORDS)] for j in range(seq * 2)]  # more than fits: cut at seq
        half = len(words) // 4
        rows.append({"conversations": [
            {"from": "human", "value": "<image>" + " ".join(words[:20])},
            {"from": "gpt", "value": "<think>\n" + " ".join(words[20:half]) + "\n</think>\n" + " ".join(words[half:])}],
            "images": [f"images/{i}.png"]})
    path = folder / "train.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def run(method: str, model: Path, data: Path, out: Path, args, counts: dict) -> dict:
    import torch

    from tis.train.config import TrainConfig
    from tis.train.run import METRICS, train

    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    ckpt = args.gradient_checkpointing if args.gradient_checkpointing is not None else method == "full"
    cfg = TrainConfig(model=str(model), data=[str(data)], out=str(out), method=method, max_length=args.seq,
                      max_steps=args.steps, batch_size=args.batch_size, logging_steps=1, save_steps=10 ** 6,
                      progress=False, warmup_ratio=0.0, gradient_checkpointing=ckpt, device=args.device,
                      precision="bf16" if args.device.startswith("cuda") else "fp32",
                      learning_rate=1e-4 if method == "lora" else 1e-5)
    t0 = time.perf_counter()
    result = train(cfg, log=lambda m: print(f"  [{method}] {m}", file=sys.stderr))
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (out / METRICS).read_text().splitlines()]
    rows = [r for r in rows if "num_tokens" in r and "loss" in r]
    a, b = rows[args.warmup - 1], rows[-1]
    secs, tokens, steps = b["time"] - a["time"], b["num_tokens"] - a["num_tokens"], b["step"] - a["step"]
    tps = tokens / secs
    text = SIZES[args.size]["text"]
    n_lm = counts["language_matmul"]
    per_token = (6 if method == "full" else 4) * n_lm + 12 * text["num_hidden_layers"] * text["hidden_size"] * args.seq / 2
    # frozen vision tower: forward only, over the 4 patches merged into each image token
    image_tokens = (448 // 14) ** 2 // 4
    vision_per_sample = 2 * counts["vision"] * image_tokens * 4
    flops = tps * per_token + (tps / args.seq) * vision_per_sample
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if args.device.startswith("cuda") else float("nan")
    return {"method": method, "trainable": result.manifest.get("trainable_parameters"), "steps_timed": steps,
            "s_per_step": secs / steps, "tokens_per_s": tps, "peak_mem_gib": peak, "model_tflops": flops / 1e12,
            "mfu": flops / (args.peak_tflops * 1e12) if args.peak_tflops else None, "checkpointing": ckpt,
            "loss": (rows[0]["loss"], rows[-1]["loss"]), "wall_s": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=tuple(SIZES), default="7b")
    ap.add_argument("--method", choices=("lora", "full", "both"), default="both")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seq", type=int, default=2048, help="tokens per sample (image tokens included)")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                    help="default: on for full, off for LoRA")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak (default: by GPU name)")
    ap.add_argument("--workdir", default=None, help="folder for the model and data (default: a temporary one)")
    args = ap.parse_args()
    args.warmup = max(1, min(args.warmup, args.steps - 1))

    import torch

    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            print("no CUDA GPU: this benchmark needs one (or --size tiny --device cpu to try the script)",
                  file=sys.stderr)
            return 2
        name = torch.cuda.get_device_name()
        if args.peak_tflops is None:
            args.peak_tflops = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
        gpu = f"{name}, {torch.cuda.get_device_properties(0).total_memory / 2 ** 30:.0f} GiB"
    else:
        gpu = "cpu"
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-train-gpu-"))
    try:
        t0 = time.perf_counter()
        counts = build_model(work / "model", args.size, args.device)
        data = write_data(work / "data", max(args.steps * args.batch_size + 4, 16), args.seq)
        print(f"model written in {time.perf_counter() - t0:.0f} s: language {counts['language'] / 1e9:.2f} B "
              f"parameters, vision {counts['vision'] / 1e9:.2f} B", file=sys.stderr)
        methods = ("lora", "full") if args.method == "both" else (args.method,)
        results = []
        for method in methods:
            try:
                results.append(run(method, work / "model", data, work / f"out-{method}", args, counts))
            except Exception as exc:  # noqa: BLE001 - report the method's failure and go on to the next
                print(f"{method}: failed: {type(exc).__name__}: {' '.join(str(exc).split())[:400]}")
        print(f"Qwen2.5-VL-{args.size} shape, random weights, on {gpu}; torch {torch.__version__}; seq {args.seq}, "
              f"batch {args.batch_size}, {args.steps} steps ({args.warmup} warm-up)")
        for r in results:
            mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a (no peak known)"
            print(f"  {r['method']:4}  {r['tokens_per_s']:9,.0f} tokens/s  {r['s_per_step']:.2f} s/step  "
                  f"peak {r['peak_mem_gib']:.1f} GiB  model {r['model_tflops']:.0f} TFLOP/s  MFU {mfu}  "
                  f"trainable {r['trainable']:,}  checkpointing {'on' if r['checkpointing'] else 'off'}  "
                  f"loss {r['loss'][0]:.3f} -> {r['loss'][1]:.3f}")
        print(json.dumps(results, default=str))
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

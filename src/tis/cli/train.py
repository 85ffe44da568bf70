"""`tis train`: fine-tune a model (LoRA or full) on safety-thought data; `check` and `merge`.

    tis train --model PATH --data tis.json --out runs/tuned          (same as `tis train run ...`)
    tis train check --model PATH --data tis.json --samples 3
    tis train merge runs/tuned --out runs/tuned-merged

Every flag is also a key of a `--config FILE.yaml` (TrainConfig). Heavy imports happen inside the
command functions only.
"""

from __future__ import annotations

import argparse
import sys


def _config_flags(p: argparse.ArgumentParser) -> None:
    from tis.core.config import add_config_flags
    from tis.train.config import TrainConfig

    add_config_flags(p, TrainConfig)
    p.add_argument("--config", metavar="FILE.yaml", help="read options from a YAML file (flags given override it)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    desc = ("Supervised fine-tuning (LoRA or full) with the loss on the assistant turn, the whole <think> thought "
            "and the answer. Runs on TRL's SFTTrainer; several GPUs through accelerate launch (docs/training.md).")
    p = sub.add_parser("train", help="fine-tune a model on safety-thought data (run, check, merge)", description=desc)
    _config_flags(p)
    p.set_defaults(func=run_train)
    tsub = p.add_subparsers(dest="train_command", metavar="SUBCOMMAND")

    run = tsub.add_parser("run", help="train (the default: `tis train --model ...` is the same)", description=desc)
    _config_flags(run)
    run.set_defaults(func=run_train)

    check = tsub.add_parser("check", help="show what the loss covers in a few samples; fail if a thought is outside",
                            description="Render samples through the model's chat template and print, per sample, "
                                        "the text the loss covers (decoded from the label mask), its image tokens "
                                        "and any truncation. Exit 1 when a thought is not inside the loss.")
    _config_flags(check)
    check.add_argument("--samples", type=int, default=3, metavar="N", help="samples to print [default: 3]")
    check.add_argument("--all", dest="scan_all", action="store_true",
                       help="check every record (printing the first --samples)")
    check.add_argument("--sample-seed", type=int, default=None, metavar="SEED",
                       help="print a seeded random choice of samples instead of the first ones")
    check.set_defaults(func=run_check_cmd)

    merge = tsub.add_parser("merge", help="fold a LoRA adapter into its base model and save the whole model")
    merge.add_argument("adapter", metavar="ADAPTER", help="the adapter folder tis train wrote")
    merge.add_argument("--out", "-o", required=True, metavar="DIR", help="folder for the merged model")
    merge.add_argument("--base", metavar="PATH", help="the base model folder (default: the one the adapter names)")
    merge.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                       help="weights' dtype [default: auto: the base model's]")
    merge.set_defaults(func=run_merge)

    configs = tsub.add_parser("configs", help="paths of the shipped accelerate / DeepSpeed configs",
                              description="Print the shipped configs (for accelerate launch --config_file and "
                                          "tis train --deepspeed); with NAME, only that file's path.")
    configs.add_argument("name", nargs="?", metavar="NAME", help="multi_gpu | fsdp | zero2 | zero3")
    configs.set_defaults(func=run_configs)


def _cfg(args: argparse.Namespace):
    from tis.core.config import config_from_args
    from tis.train.config import TrainConfig

    return config_from_args(TrainConfig, args, config_file=getattr(args, "config", None))


def run_train(args: argparse.Namespace) -> int:
    cfg = _cfg(args)
    from tis.train.run import train

    result = train(cfg)
    if result.kind == "stopped":
        print(f"stopped at step {result.steps}; continue with --resume")
        return 1
    losses = result.manifest.get("losses", {})
    parts = [f"{result.kind} written to {result.out}", f"{result.steps} steps"]
    if losses.get("final_train_loss") is not None:
        parts.append(f"train loss {losses['first_train_loss']:.4f} -> {losses['final_train_loss']:.4f}")
    if result.eval_loss is not None:
        parts.append(f"eval loss {result.eval_loss:.4f}")
    print("; ".join(parts))
    print(f"evaluate it: tis eval --model hf:{result.out}")
    return 0


def run_check_cmd(args: argparse.Namespace) -> int:
    cfg = _cfg(args)
    if not cfg.model:
        from tis.core.errors import ConfigError

        raise ConfigError("--model is required")
    from tis.train.check import print_report, run_check

    if args.samples < 0:
        from tis.core.errors import ConfigError

        raise ConfigError("--samples must be 0 or more")
    report = run_check(cfg, samples=args.samples, scan_all=args.scan_all, seed=args.sample_seed)
    print_report(report, cfg.max_length, write=lambda line: print(line))
    sys.stdout.flush()
    return 0 if report.ok else 1


def run_merge(args: argparse.Namespace) -> int:
    from tis.train.merge import merge_adapter

    out = merge_adapter(args.adapter, args.out, base=args.base, dtype=args.dtype)
    print(f"merged model written to {out}")
    print(f"evaluate it: tis eval --model hf:{out}")
    return 0


CONFIGS = {"multi_gpu": "accelerate_multi_gpu.yaml", "fsdp": "accelerate_fsdp.yaml", "zero2": "ds_zero2.json",
           "zero3": "ds_zero3.json"}


def run_configs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tis.core.errors import ConfigError

    folder = Path(__file__).resolve().parents[1] / "train" / "configs"
    if args.name:
        if args.name not in CONFIGS:
            raise ConfigError(f"no shipped config '{args.name}' (have: {', '.join(CONFIGS)})")
        print(folder / CONFIGS[args.name])
        return 0
    for name, file in CONFIGS.items():
        print(f"{name:10} {folder / file}")
    return 0

"""A training run: data in, template check, TRL SFTTrainer (+ PEFT), checkpoints, output and manifest.

The output folder loads with `tis eval --model hf:OUT`: a LoRA run writes a PEFT adapter whose
`adapter_config.json` names the base model's folder, a full run writes the whole model; both with
the processor (and chat template) beside them, `training_manifest.json` and `metrics.jsonl`.
"""

from __future__ import annotations

import json
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tis.core.errors import ConfigError, DataError, TisError
from tis.train.config import TrainConfig
from tis.train.data import TrainRecord, load_mixture
from tis.train.template import Renderer

MANIFEST = "training_manifest.json"
METRICS = "metrics.jsonl"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_PACKAGES = ("tis", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "deepspeed")


@dataclass
class Prepared:
    """Records that train (indices into `records`), with the length and template counts."""

    records: list[TrainRecord]
    kept: list[int]
    counts: dict[str, int]
    modes: dict[str, int]
    tokens: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class TrainResult:
    out: Path
    kind: str  # adapter | full
    steps: int
    train_loss: float | None
    eval_loss: float | None
    manifest: dict[str, Any]


def last_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint (trainer_state.json is written last; a killed save has none)."""
    if not out.is_dir():
        return None
    found = []
    for p in out.iterdir():
        m = _CHECKPOINT.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").is_file():
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def prepare(renderer: Renderer, records: list[TrainRecord], *, skip_bad: bool, what: str = "training",
            progress: bool = False) -> Prepared:
    """Encode every record once: drop over-long ones per the length rule, stop (or skip) on bad ones,
    and refuse records whose thought would not be inside the loss."""
    counts = {"records": len(records), "ok": 0, "cut": 0, "dropped": 0, "bad": 0, "thought_cut": 0}
    modes: dict[str, int] = {}
    kept: list[int] = []
    tokens = 0
    problems: list[str] = []
    bar = None
    if progress and len(records) > 100:
        from rich.progress import Progress as RichProgress

        from tis.core.console import console

        bar = RichProgress(console=console, transient=True)
        bar.start()
        task = bar.add_task(f"checking {what} samples", total=len(records))
    try:
        for i, rec in enumerate(records):
            if bar is not None:
                bar.update(task, completed=i)
            tokens += _prepare_one(renderer, rec, i, skip_bad, counts, modes, kept, problems)
    finally:
        if bar is not None:
            bar.stop()
    if not kept:
        raise DataError(f"no {what} record is left (of {len(records)}: {counts['dropped']} over --max-length "
                        f"{renderer.max_length}, {counts['bad']} bad)")
    return Prepared(records=records, kept=kept, counts=counts, modes=modes, tokens=tokens, problems=problems)


def _prepare_one(renderer: Renderer, rec: TrainRecord, i: int, skip_bad: bool, counts: dict[str, int],
                 modes: dict[str, int], kept: list[int], problems: list[str]) -> int:
    """Encode one record into the counts; the tokens it trains on (0 when left out)."""
    try:
        enc = renderer.encode(rec)
    except DataError as exc:
        if not skip_bad:
            raise DataError(f"{exc}; pass --skip-bad to leave such records out") from exc
        counts["bad"] += 1
        problems.append(str(exc))
        return 0
    modes[enc.mode] = modes.get(enc.mode, 0) + 1
    counts[enc.status] += 1
    if enc.status == "dropped":
        return 0
    if not enc.thought_in_loss:
        if enc.status == "cut":
            counts["thought_cut"] += 1
        else:
            raise ConfigError(
                f"{rec.id}: the thought is not inside the loss with this chat template; run `tis train check` "
                "to see what the loss covers, or pass --thought-handling verbatim / --chat-template FILE")
    kept.append(i)
    return min(enc.n_tokens, renderer.max_length)


def _precision(cfg: TrainConfig, device: str) -> str:
    import torch

    if cfg.precision != "auto":
        return cfg.precision
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def _device(cfg: TrainConfig) -> str:
    import torch

    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {cfg.device}: no CUDA device is available")
    return cfg.device


def deepspeed_config(value: str | None) -> str | None:
    if value is None:
        return None
    shipped = Path(__file__).parent / "configs" / f"ds_{value}.json"
    if value in ("zero2", "zero3"):
        return str(shipped)
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"--deepspeed {value}: neither zero2, zero3 nor an existing JSON file")
    return str(path.resolve())


def _check_reporters(names: list[str]) -> None:
    import importlib.util

    for name in names:
        module = {"tensorboard": "tensorboard", "wandb": "wandb"}[name]
        if importlib.util.find_spec(module) is None and not (name == "tensorboard" and
                                                             importlib.util.find_spec("tensorboardX")):
            raise ConfigError(f"--report-to {name}: the {module} package is not installed (pip install {module})")


def train(cfg: TrainConfig, *, extra_callbacks: list[Any] = (), log: Any = None) -> TrainResult:
    """Run `tis train` for a config. `log(message)` receives one-line progress notes (default: stderr)."""
    from tis.core.console import console

    import os

    main_process = os.environ.get("RANK", "0") == "0"  # under accelerate launch, one process speaks
    say = log or (lambda msg: main_process and console.print(msg, markup=False, highlight=False, soft_wrap=True))
    if not cfg.out:
        raise ConfigError("--out is required: the folder the adapter or model is written to")
    if not cfg.data:
        raise ConfigError("--data is required: a training set (sharegpt JSON, JSONL, Parquet or a dataset folder)")
    out = Path(cfg.out).expanduser().resolve()
    resume_from = last_checkpoint(out)
    if cfg.resume and resume_from is None:
        raise ConfigError(f"--resume: {out} holds no complete checkpoint-N folder to continue from")
    if not cfg.resume and out.exists() and (resume_from is not None or (out / MANIFEST).exists()):
        raise ConfigError(f"{out} already holds a training run; pass --resume to continue it or a new --out")
    _check_reporters(list(cfg.report_to))
    ds_config = deepspeed_config(cfg.deepspeed)

    mixture = load_mixture(list(cfg.data), list(cfg.eval_data), eval_fraction=cfg.eval_fraction, seed=cfg.seed,
                           skip_bad=cfg.skip_bad)
    if mixture.problems:
        say(f"skipped {len(mixture.problems)} bad record(s), e.g. {mixture.problems[0]}")

    from transformers.utils import logging as hf_logging

    from tis.train.model import load_processor, model_type_of, resolve_model

    hf_logging.disable_progress_bar()  # the run draws its own progress

    base = resolve_model(cfg.model)
    hf_config, model_type = model_type_of(base, cfg.trust_remote_code)
    processor = load_processor(base, hf_config, cfg.trust_remote_code)
    template = _read_template(cfg.chat_template)
    if template:
        processor.chat_template = template
    renderer = Renderer(processor, model_type, chat_template=template, thought_open=cfg.thought_open,
                        thought_close=cfg.thought_close, handling=cfg.thought_handling, max_length=cfg.max_length,
                        overlong=cfg.overlong)
    template_info = renderer.describe_template()
    say(f"chat template: {template_info['behaviour']}; assistant turns rendered by {template_info['handling']}")

    show = cfg.progress and main_process
    train_prep = prepare(renderer, mixture.train, skip_bad=cfg.skip_bad, progress=show)
    eval_prep = (prepare(renderer, mixture.eval, skip_bad=cfg.skip_bad, what="held-out", progress=show)
                 if mixture.eval else None)
    c = train_prep.counts
    say(f"data: {len(train_prep.kept)} training samples ({c['cut']} cut, {c['dropped']} dropped over --max-length "
        f"{cfg.max_length}, {c['bad']} bad), {train_prep.tokens:,} tokens"
        + (f"; {len(eval_prep.kept)} held out" if eval_prep else ""))
    if c["thought_cut"]:
        say(f"warning: {c['thought_cut']} sample(s) have their thought cut by --max-length {cfg.max_length}; "
            "raise it or pass --overlong drop")

    import torch

    device = _device(cfg)
    precision = _precision(cfg, device)
    from tis.train.model import load_model

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    # A full checkpoint is loaded through from_pretrained, which maps the saved weight names back to
    # the model's (the trainer's own resume loads them without that mapping and silently keeps the
    # base weights for architectures whose saved names differ, such as LLaVA's).
    own_resume = cfg.resume and cfg.method == "full" and not ds_config
    weights = resume_from if own_resume else base
    model = load_model(weights, dtype=dtype, trust_remote_code=cfg.trust_remote_code)
    peft_config = _setup_parameters(model, cfg)

    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from tis.train.callbacks import MetricsLog, Progress
    from tis.train.template import Collator

    # one record list for the collator: the held-out records follow the training ones
    all_records = list(mixture.train) + list(mixture.eval)

    def _dataset(prep: Prepared, offset: int) -> Any:
        refs = [[str(x) if isinstance(x, Path) else "<embedded>" for x in prep.records[i].images] for i in prep.kept]
        return Dataset.from_dict({"idx": [offset + i for i in prep.kept], "images": refs})

    train_ds = _dataset(train_prep, 0)
    eval_ds = _dataset(eval_prep, len(mixture.train)) if eval_prep else None
    args = SFTConfig(
        output_dir=str(out),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr(),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps else -1,
        warmup_steps=min(cfg.warmup_ratio, 0.9999),
        lr_scheduler_type=cfg.scheduler,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        bf16=precision == "bf16",
        **_checkpointing_args(cfg.gradient_checkpointing),
        seed=cfg.seed,
        data_seed=cfg.seed,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        eval_strategy=("steps" if cfg.eval_steps else "epoch") if eval_ds is not None else "no",
        eval_steps=cfg.eval_steps,
        report_to=list(cfg.report_to) or "none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        max_length=None,
        use_cpu=device == "cpu",
        dataloader_num_workers=cfg.dataloader_workers,
        deepspeed=ds_config,
        save_only_model=False,
    )
    metrics = MetricsLog(out / METRICS)
    progress = Progress(metrics, enabled=cfg.progress)
    collator = Collator(renderer, all_records)
    out.mkdir(parents=True, exist_ok=True)
    class Trainer(SFTTrainer):
        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            if not own_resume:
                super()._load_from_checkpoint(resume_from_checkpoint, model)

    trainer = Trainer(model=model, args=args, data_collator=collator, train_dataset=train_ds,
                         eval_dataset=eval_ds, processing_class=processor, peft_config=peft_config,
                         callbacks=[metrics, progress, *extra_callbacks])
    trainer.remove_callback(PrinterCallback)
    trainable, total = _count_parameters(trainer.model)
    say(f"{cfg.method}: {trainable:,} of {total:,} parameters train ({100 * trainable / max(total, 1):.2f}%); "
        f"{precision} on {device}" + (f"; resuming from {resume_from.name}" if cfg.resume else ""))
    started = time.time()
    try:
        result = trainer.train(resume_from_checkpoint=str(resume_from) if cfg.resume else None)
    except torch.OutOfMemoryError as exc:
        raise TisError(
            f"out of GPU memory (batch size {cfg.batch_size}, max length {cfg.max_length}): lower --batch-size "
            "(raise --grad-accum to keep the effective batch), lower --max-length, turn on "
            "--gradient-checkpointing, use --method lora, or shard with --deepspeed zero3") from exc
    finally:
        progress.close()
    elapsed = time.time() - started
    eval_loss = None
    if eval_ds is not None:
        eval_loss = trainer.evaluate().get("eval_loss")
    if trainer.state.global_step < trainer.state.max_steps and trainer.control.should_training_stop:
        # stopped early on purpose (a callback): leave the checkpoints for --resume, write no output
        return TrainResult(out=out, kind="stopped", steps=trainer.state.global_step, train_loss=None,
                           eval_loss=eval_loss, manifest={})
    trainer.save_model(str(out))
    kind = "adapter" if peft_config is not None else "full"
    if trainer.args.should_save:
        processor.save_pretrained(str(out))
        if kind == "adapter":
            _name_base(out, base)
    train_losses = [r["loss"] for r in metrics.rows if "loss" in r]
    manifest = {
        "kind": kind,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_model": _identity(base, model_type, hf_config),
        "output": {"path": str(out), "fingerprint": _output_fingerprint(out) if trainer.args.should_save else None},
        "data": {"sets": mixture.sets, "train_samples": len(train_prep.kept),
                 "eval_samples": len(eval_prep.kept) if eval_prep else 0, "train_tokens": train_prep.tokens,
                 "length": train_prep.counts, "skipped_bad": len(mixture.problems) + train_prep.counts["bad"]},
        "template": {**template_info, "records_by_handling": train_prep.modes,
                     "chat_template_file": cfg.chat_template},
        "config": cfg.model_dump(mode="json"),
        "precision": precision,
        "device": device,
        "losses": {"first_train_loss": train_losses[0] if train_losses else None,
                   "final_train_loss": train_losses[-1] if train_losses else None,
                   "mean_train_loss": getattr(result, "training_loss", None), "eval_loss": eval_loss},
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "train_seconds": round(elapsed, 2),
        "tokens_per_s": metrics.tokens_per_s,
        "trainable_parameters": trainable,
        "versions": versions(),
    }
    if trainer.args.should_save:
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return TrainResult(out=out, kind=kind, steps=trainer.state.global_step,
                       train_loss=manifest["losses"]["final_train_loss"], eval_loss=eval_loss, manifest=manifest)


def _checkpointing_args(on: bool) -> dict[str, Any]:
    """Activation (gradient) checkpointing, under the argument name this transformers version reads."""
    if not on:
        return {}
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    key = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return {key: True, f"{key}_kwargs": {"use_reentrant": False}}


def _read_template(path: str | None) -> str | None:
    if not path:
        return None
    p = Path(path).expanduser()
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--chat-template {path}: cannot read ({exc.strerror})") from None


def _setup_parameters(model: Any, cfg: TrainConfig) -> Any:
    """Freeze per part for full training; a LoRA config (language model linear layers) otherwise."""
    from tis.train.model import lora_target_regex, part_of, projector_modules

    if cfg.method == "full":
        wanted = {"language": True, "vision": cfg.train_vision, "projector": cfg.train_projector}
        for name, param in model.named_parameters():
            param.requires_grad_(wanted[part_of(name)])
        return None
    from peft import LoraConfig

    for param in model.parameters():
        param.requires_grad_(False)
    return LoraConfig(
        r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout, bias="none",
        target_modules=lora_target_regex(model, list(cfg.lora.target_modules), vision=cfg.train_vision),
        modules_to_save=projector_modules(model) if cfg.train_projector else None, task_type="CAUSAL_LM",
    )


def _count_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _name_base(out: Path, base: Path) -> None:
    """adapter_config.json must name the base model's folder, so `hf:OUT` finds it."""
    path = out / "adapter_config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("base_model_name_or_path") != str(base):
        data["base_model_name_or_path"] = str(base)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _identity(path: Path, model_type: str, hf_config: Any) -> dict[str, Any]:
    from tis.core.hashing import fingerprint_path

    return {"path": str(path), "fingerprint": fingerprint_path(path), "model_type": model_type,
            "architectures": list(getattr(hf_config, "architectures", None) or [])}


def _output_fingerprint(out: Path) -> str:
    """The output's content fingerprint over its model files, the manifest itself left out (it is
    written after, and holds this value)."""
    from tis.core.hashing import DigestCache, fingerprint_files, model_files

    cache = DigestCache()
    try:
        return fingerprint_files(out, [f for f in model_files(out) if f.name != MANIFEST], cache=cache)
    finally:
        cache.close()


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


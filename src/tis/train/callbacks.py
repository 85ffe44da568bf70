"""Trainer callbacks: a rich progress bar (loss, learning rate, tokens/s) and metrics to JSONL."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback


class MetricsLog(TrainerCallback):
    """Appends every log (train loss, lr, grad norm, tokens, tokens/s, eval loss) to `metrics.jsonl`.

    Only the main process writes. A resumed run appends to the same file, so the file holds the whole
    history; rows logged after the checkpoint and before a crash appear twice (their `step` tells).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        self._last: tuple[float, float] | None = None  # (time, tokens) at the previous log
        self.tokens_per_s: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = (time.perf_counter(), 0.0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        row: dict[str, Any] = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "time": time.time()}
        for key, value in logs.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                row[key] = value
        tokens = logs.get("num_tokens")
        if isinstance(tokens, (int, float)) and self._last is not None:
            now = time.perf_counter()
            t0, n0 = self._last
            if tokens > n0 and now > t0:
                self.tokens_per_s = (tokens - n0) / (now - t0)
                row["tokens_per_s"] = round(self.tokens_per_s, 2)
            self._last = (now, float(tokens))
        self.rows.append(row)
        if state.is_world_process_zero:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")


class Progress(TrainerCallback):
    """One rich progress bar over the optimiser steps, with the last loss, learning rate and tokens/s."""

    def __init__(self, metrics: MetricsLog, enabled: bool = True):
        self.metrics = metrics
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not self.enabled or not state.is_world_process_zero:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, \
            TimeElapsedColumn, TimeRemainingColumn

        from tis.core.console import console

        self._progress = RichProgress(
            TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)
        self._progress.start()
        self._task = self._progress.add_task("train", total=state.max_steps, completed=state.global_step,
                                             stats="")

    def on_step_end(self, args, state, control, **kwargs):
        if self._progress is not None:
            self._progress.update(self._task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._progress is None or not logs:
            return
        bits = []
        if "loss" in logs:
            bits.append(f"loss {logs['loss']:.4f}")
        if "eval_loss" in logs:
            bits.append(f"eval {logs['eval_loss']:.4f}")
        if "learning_rate" in logs:
            bits.append(f"lr {logs['learning_rate']:.2e}")
        if self.metrics.tokens_per_s:
            bits.append(f"{self.metrics.tokens_per_s:,.0f} tok/s")
        if bits:
            self._progress.update(self._task, stats="  ".join(bits))

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class StopAfter(TrainerCallback):
    """Stops training after a given global step (tests and benchmarks: a run "killed" at a known step)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
            control.should_save = False

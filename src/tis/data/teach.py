"""Teachers: a stage's model backend, and running a stage's requests through the generation
executor (`tis.pipeline.executor`) with a parse step.

The executor caches by key, commits each record at once, retries transient failures and stops
when the server is down. On top of it a stage parses each output; an output that does not parse
(malformed, truncated) is counted and asked again under a new key (attempt n, seed + n), up to
`parse_retries` times, then the job is dropped with the parser's reason. Every call made is in the
store under its key, so a killed build resumes without repeating a finished call, including the
malformed ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tis.core.errors import ConfigError
from tis.core.retry import RetryPolicy
from tis.core.types import GenerationRecord, ModelOutput, Sample
from tis.data.config import StageConfig, TeacherConfig
from tis.data.stages import Malformed, request_key


#: TeacherConfig settings that a backend may take as constructor options
_TEACHER_SETTINGS = ("base_url", "api_key_env", "timeout_s", "extra_body")


def make_backend(tc: TeacherConfig, stage: str):
    """The stage's teacher, built by `tis.models.build_model` with the options the backend's own
    options model validates: `model` where the backend takes one, the teacher settings it takes
    (one it does not take is refused when changed from its default) and `options` as given."""
    from tis.models import build_model, options_model, settings_options

    where = f"{stage}.teacher"
    try:
        options: dict[str, Any] = {"model": tc.model} if "model" in options_model(tc.backend).model_fields else {}
        options |= settings_options(tc.backend, {
            key: (getattr(tc, key), TeacherConfig.model_fields[key].get_default(call_default_factory=True))
            for key in _TEACHER_SETTINGS})
        flags = {key: f"{where}.{key}" for key in ("model", *_TEACHER_SETTINGS)}
        for key, value in tc.options.items():
            options[key], flags[key] = value, f"{where}.options.{key}"
        return build_model(tc.backend, options, flags=flags)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def params_for(tc: TeacherConfig, attempt: int):
    from tis.models.base import GenerationParams

    return GenerationParams(temperature=tc.temperature, top_p=tc.top_p, max_tokens=tc.max_tokens,
                            seed=tc.seed + attempt, n=1)


@dataclass
class Job:
    """One request a stage makes: `id` names what it is for (an item or an image set)."""

    id: str
    sample: Sample  # images hashed
    parents: tuple[str, ...] = ()


@dataclass
class Outcome:
    value: Any = None  # the parsed value, when ok
    key: str | None = None  # the key of the call that gave it (or the last call made)
    keys: list[str] = field(default_factory=list)  # every call made for the job, in order
    error: str | None = None  # why there is no value
    failed: bool = False  # the call itself failed (re-tried on the next run), not the output


@dataclass
class StageUsage:
    calls: int = 0  # records of the stage this build used (made now or reused)
    reused: int = 0
    new: int = 0
    failed: int = 0
    malformed: int = 0
    dropped: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process's CPU time during the stage (all threads)
    teacher: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


async def run_stage(store, stage: str, cfg: StageConfig, jobs: Sequence[Job],
                    parse: Callable[[ModelOutput], Any], *, progress=None, stats=None,
                    backend=None) -> tuple[dict[str, Outcome], StageUsage]:
    """Run every job through the stage's teacher; returns outcomes by job id and the stage's usage."""
    from tis.pipeline.executor import GenerationExecutor, GenerationRequest, RunStats

    tc = cfg.teacher
    assert tc is not None
    backend = backend or make_backend(tc, stage)
    usage = StageUsage(teacher=backend.describe())
    outcomes = {job.id: Outcome() for job in jobs}
    stats = stats if stats is not None else RunStats()
    ex = GenerationExecutor(store, backend, params_for(tc, 0), concurrency=cfg.concurrency,
                            retry=RetryPolicy(max_retries=cfg.max_retries, backoff_s=cfg.backoff_s),
                            stats=stats, progress=progress, label=stage)
    identity = backend.identity
    todo = list(jobs)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        for attempt in range(cfg.parse_retries + 1):
            if not todo:
                break
            params = params_for(tc, attempt)
            ex.params = params
            reqs, by_key = [], {}
            for job in todo:
                key = request_key(stage, identity, params.identity(), job.sample, attempt)
                # one call per key: the executor groups requests by sample id
                sample = job.sample.model_copy(update={"id": key})
                if key not in by_key:
                    reqs.append(GenerationRequest(key=key, sample=sample, stage=stage, parents=job.parents))
                by_key.setdefault(key, []).append(job)
            reused_before = stats.generations_reused
            records: dict[str, GenerationRecord] = await ex.run(reqs)
            usage.reused += stats.generations_reused - reused_before
            retry_next = []
            for key, group in by_key.items():
                rec = records.get(key)
                usage.calls += 1
                g = rec.generation if rec is not None else None
                if g is not None and g.usage is not None:
                    usage.prompt_tokens += g.usage.prompt_tokens or 0
                    usage.completion_tokens += g.usage.completion_tokens or 0
                for job in group:
                    out = outcomes[job.id]
                    out.key = key
                    out.keys.append(key)
                    if g is None or g.status != "ok":
                        out.failed, out.error = True, f"teacher call failed: {g.error if g else 'no record'}"
                        continue
                    try:
                        out.value = parse(ModelOutput(text=g.raw, reasoning=g.reasoning_field,
                                                      finish_reason=g.finish_reason, usage=g.usage))
                        out.error = None
                    except Malformed as exc:
                        out.error = str(exc)
                        retry_next.append(job)
                if g is not None and g.status == "ok" and any(outcomes[j.id].value is None for j in group):
                    usage.malformed += 1
            todo = retry_next
    finally:
        await ex.close()
    usage.wall_s = round(time.perf_counter() - t0, 4)
    usage.cpu_s = round(time.process_time() - c0, 4)
    usage.new = usage.calls - usage.reused
    for out in outcomes.values():
        if out.value is None:
            if out.failed:
                usage.failed += 1
            else:
                usage.dropped += 1
                out.error = f"malformed output after {len(out.keys)} attempt(s): {out.error}"
    if tc.price_input_per_million is not None or tc.price_output_per_million is not None:
        usage.cost = round(usage.prompt_tokens / 1e6 * (tc.price_input_per_million or 0)
                           + usage.completion_tokens / 1e6 * (tc.price_output_per_million or 0), 6)
    return outcomes, usage

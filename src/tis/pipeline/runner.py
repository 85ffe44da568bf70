"""The async evaluation pipeline: generate -> split -> judge -> store, as a stream.

Generation workers (bounded by --concurrency and the backend's own limit) take batches of
samples; each finished generation is stored at once and handed to the judge workers, so judging
runs while generation continues. Transient model errors (429, 5xx, timeouts) are retried with
exponential backoff and jitter, each retry logged with its sample id; a sample that still fails is
stored as failed with its error and excluded from rates. A fatal error (bad key, unreachable
server) stops the run; everything stored so far stays.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tis.core.errors import FatalModelError, ModelError
from tis.judges.base import Judge, target_text
from tis.models.base import GenerationParams, ModelBackend
from tis.reasoning.formats import split_output
from tis.pipeline.store import RunStore, generation_key, verdict_key
from tis.core.types import Generation, GenerationRecord, ImagePart, ModelOutput, Sample, Verdict, VerdictRecord

log = logging.getLogger("tis")

BACKOFF_CAP_S = 60.0


@dataclass
class RunStats:
    generations_total: int = 0
    generations_reused: int = 0
    generated: int = 0
    failed: int = 0
    truncated: int = 0
    retries: int = 0
    model_calls: int = 0
    verdicts_new: int = 0
    verdicts_reused: int = 0
    unparsed: int = 0
    judge_failed: int = 0
    not_applicable: int = 0
    wall_s: float = 0.0
    first_error: str | None = None
    errors: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Pending:
    sample: Sample
    indices: list[int]
    keys: list[str]


def prepare_images(samples: Sequence[Sample], *, skip_bad: bool = False,
                   problems: list | None = None) -> list[Sample]:
    """Hash every image (each file read once, however many samples share it) and check it opens.

    Runs before any model call, so an unreadable image stops the run up front (or, with
    `skip_bad`, drops that sample into `problems`, counted and listed).
    """
    from tis.sources.base import Problem
    from tis.core.errors import DataError

    cache: dict[str, ImagePart | str] = {}  # path -> hashed part, or the reason it is unusable
    out = []
    for s in samples:
        parts, bad = [], None
        for p in s.content:
            if p.type == "image":
                if p.path not in cache:
                    cache[p.path] = _check_image(p)
                if isinstance(cache[p.path], str):
                    bad = Problem(file=p.path, record=f"sample {s.id}", message=cache[p.path])
                    break
                p = cache[p.path]
            parts.append(p)
        if bad is not None:
            if not skip_bad:
                raise DataError(f"{s.benchmark}: {bad} (pass --skip-bad to skip such samples and count them)")
            if problems is not None:
                problems.append(bad)
            continue
        out.append(s if tuple(parts) == s.content else s.model_copy(update={"content": tuple(parts)}))
    return out


def _check_image(part: ImagePart) -> ImagePart | str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(part.path) as im:
            im.verify()
        return part.with_hash()
    except FileNotFoundError:
        return "image file is missing"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"image does not open ({type(exc).__name__}: {exc})"


class Runner:
    def __init__(self, store: RunStore, backend: ModelBackend | None, judges: Sequence[Judge], params: GenerationParams,
                 *, thought_format: str = "auto", concurrency: int = 16, max_retries: int = 5,
                 backoff_s: float = 1.0, progress: bool = True):
        self.store = store
        self.backend = backend
        self.judges = list(judges)
        self.params = params
        self.thought_format = thought_format
        limit = backend.max_concurrency if backend is not None else None
        self.concurrency = min(concurrency, limit or concurrency)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.show_progress = progress
        self.stats = RunStats()
        self.keys: dict[str, list[str]] = {}  # sample id -> generation key per sample index, once run

    # keys -------------------------------------------------------------------------------
    def keys_for(self, sample: Sample) -> list[str]:
        ident, pid = self.backend.identity, self.params.identity()
        return [generation_key(ident, sample, pid, i) for i in range(self.params.n)]

    # the run ------------------------------------------------------------------------------
    async def run(self, samples: Sequence[Sample]) -> RunStats:
        """Generate what is missing for `samples`, judge what is unjudged."""
        self.keys = all_keys = {s.id: self.keys_for(s) for s in samples}
        stored = self.store.generations(k for ks in all_keys.values() for k in ks)
        pending: list[_Pending] = []
        ready: list[GenerationRecord] = []
        for s in samples:
            missing = [i for i, k in enumerate(all_keys[s.id]) if k not in stored or stored[k].generation.status != "ok"]
            ready.extend(stored[k] for i, k in enumerate(all_keys[s.id]) if i not in missing)
            if missing:
                pending.append(_Pending(s, missing, [all_keys[s.id][i] for i in missing]))
        self.stats.generations_total = sum(len(ks) for ks in all_keys.values())
        return await self._pipeline(samples, ready, pending)

    async def judge_stored(self, samples: Sequence[Sample], keys: Sequence[str]) -> RunStats:
        """Judge stored generations only (re-judging a finished run): no model call at all."""
        stored = self.store.generations(keys)
        ready = [stored[k] for k in keys if k in stored and stored[k].generation.status == "ok"]
        self.stats.generations_total = len(keys)
        return await self._pipeline(samples, ready, [])

    async def _pipeline(self, samples: Sequence[Sample], ready: list[GenerationRecord],
                        pending: list[_Pending]) -> RunStats:
        started = time.perf_counter()
        self._done_verdicts = self.store.done_verdict_keys()
        self._samples = {s.id: s for s in samples}
        ready = [self._resplit(r) for r in ready]
        self.stats.generations_reused = len(ready)
        self.judge_queue: asyncio.Queue = asyncio.Queue()
        self._judge_limits = {j.id: asyncio.Semaphore(j.max_concurrency) for j in self.judges}
        for j in self.judges:
            await j.start()
        progress = self._progress()
        with progress:
            self._gen_task = progress.add_task("generate", total=sum(len(p.indices) for p in pending))
            self._judge_task = progress.add_task("judge", total=0)
            self._progress_bar = progress
            for rec in ready:
                self._enqueue_judging(rec)
            judge_workers = [asyncio.create_task(self._judge_worker())
                             for _ in range(max(j.max_concurrency for j in self.judges))]
            try:
                if pending:
                    await self.backend.start()
                    await self._generate_all(pending)
                await self.judge_queue.join()
            finally:
                for w in judge_workers:
                    w.cancel()
                await asyncio.gather(*judge_workers, return_exceptions=True)
                for j in self.judges:
                    await j.close()
                if self.backend is not None:
                    await self.backend.close()
        self.stats.wall_s = time.perf_counter() - started
        return self.stats

    def _progress(self):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        from tis.core.console import console

        class Throughput(TextColumn):
            def render(self, task):  # samples per second over the recent window rich keeps
                from rich.text import Text

                return Text(f"{task.speed:6.1f}/s" if task.speed else "     -/s")

        return Progress(TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn(),
                        TaskProgressColumn(), Throughput(""), TimeElapsedColumn(),
                        TextColumn("eta"), TimeRemainingColumn(), console=console,
                        disable=not self.show_progress, transient=False, get_time=time.monotonic,
                        refresh_per_second=4)

    # generation ---------------------------------------------------------------------------
    async def _generate_all(self, pending: list[_Pending]) -> None:
        size = max(1, self.backend.batch_size)
        batches = [pending[i : i + size] for i in range(0, len(pending), size)]
        queue: asyncio.Queue = asyncio.Queue()
        for b in batches:
            queue.put_nowait(b)

        async def worker() -> None:
            while True:
                try:
                    batch = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self._generate_batch(batch)

        workers = [asyncio.create_task(worker()) for _ in range(min(self.concurrency, len(batches)))]
        try:
            done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _generate_batch(self, batch: list[_Pending]) -> None:
        attempt = 0
        while True:
            t0 = time.perf_counter()
            self.stats.model_calls += 1
            try:
                outputs = await self.backend.generate([p.sample for p in batch], self.params)
                if len(outputs) != len(batch) or any(len(o) < self.params.n for o in outputs):
                    raise ModelError("the backend returned fewer completions than asked for")
                latency = time.perf_counter() - t0
                for p, outs in zip(batch, outputs):
                    for idx, key in zip(p.indices, p.keys):
                        self._record(p, idx, key, self._generation(outs[idx], latency, attempt + 1))
                return
            except FatalModelError:
                raise
            except ModelError as exc:
                if exc.retryable and attempt < self.max_retries:
                    delay = self._backoff(attempt)
                    attempt += 1
                    self.stats.retries += 1
                    log.warning("retry %d/%d for sample %s in %.1fs: %s", attempt, self.max_retries,
                                ", ".join(p.sample.id for p in batch), delay, exc)
                    await asyncio.sleep(delay)
                    continue
                if len(batch) > 1 and not exc.retryable:
                    # one unusable sample (e.g. an image that does not open) must not fail its neighbours
                    for p in batch:
                        await self._generate_batch([p])
                    return
                error = str(exc) if not exc.retryable else f"{exc} (after {attempt + 1} attempts)"
            except Exception as exc:  # a backend bug must not lose the run: record it on the sample
                log.exception("unexpected error generating %s", ", ".join(p.sample.id for p in batch))
                error = f"{type(exc).__name__}: {exc}"
            failed = Generation(raw="", status="failed", error=error, attempts=attempt + 1,
                                latency_s=time.perf_counter() - t0)
            for p in batch:
                for idx, key in zip(p.indices, p.keys):
                    self._record(p, idx, key, failed)
            return

    def _backoff(self, attempt: int) -> float:
        # exponential with "equal jitter": never immediate, never synchronised across workers
        ceiling = min(BACKOFF_CAP_S, self.backoff_s * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _generation(self, output: ModelOutput, latency: float, attempts: int) -> Generation:
        split = split_output(output, self.thought_format)
        return Generation(raw=output.text, reasoning_field=output.reasoning, thought=split.thought,
                          answer=split.answer, split_source=split.source, finish_reason=output.finish_reason,
                          truncated=split.truncated, usage=output.usage, latency_s=latency, attempts=attempts)

    def _resplit(self, record: GenerationRecord) -> GenerationRecord:
        """Stored generations are re-split with this run's thought format (no model call)."""
        g = record.generation
        split = split_output(ModelOutput(text=g.raw, reasoning=g.reasoning_field, finish_reason=g.finish_reason),
                             self.thought_format)
        if (split.thought, split.answer, split.source, split.truncated) == (g.thought, g.answer, g.split_source, g.truncated):
            return record
        g = g.model_copy(update={"thought": split.thought, "answer": split.answer, "split_source": split.source,
                                 "truncated": split.truncated})
        record = record.model_copy(update={"generation": g})
        self.store.put_generation(record)
        return record

    def _record(self, p: _Pending, idx: int, key: str, generation: Generation) -> None:
        record = GenerationRecord(key=key, sample_id=p.sample.id, sample_index=idx, generation=generation)
        self.store.put_generation(record)
        stats = self.stats
        if generation.status == "failed":
            stats.failed += 1
            stats.first_error = stats.first_error or f"sample {p.sample.id}: {generation.error}"
            kind = (generation.error or "error").split(":")[0][:60]
            stats.errors[kind] = stats.errors.get(kind, 0) + 1
        else:
            stats.generated += 1
            stats.truncated += generation.truncated
            self._enqueue_judging(record)
        self._progress_bar.advance(self._gen_task)

    # judging ------------------------------------------------------------------------------
    def _enqueue_judging(self, record: GenerationRecord) -> None:
        g = record.generation
        if g.status != "ok":
            return
        sample = self._samples[record.sample_id]
        for judge in self.judges:
            for target in judge.targets:
                text = target_text(g, target)
                key = verdict_key(record.key, judge.identity, target, text)
                if key in self._done_verdicts:
                    self.stats.verdicts_reused += 1
                    continue
                if not text.strip():
                    # nothing to judge is not the same as safe
                    self._store_verdict(record, key, Verdict(judge=judge.id, target=target, status="not_applicable",
                                                             rationale=f"empty {target}"))
                    continue
                self._progress_bar.update(self._judge_task, total=self._progress_bar.tasks[self._judge_task].total + 1)
                self.judge_queue.put_nowait((judge, sample, record, target, text, key))

    async def _judge_worker(self) -> None:
        while True:
            judge, sample, record, target, text, key = await self.judge_queue.get()
            try:
                async with self._judge_limits[judge.id]:
                    try:
                        verdict = await judge.judge(sample, record.generation, target, text)
                    except Exception as exc:  # counted as failed, never as safe; retried on re-run
                        log.warning("judge %s failed on sample %s (%s): %s", judge.id, sample.id, target, exc)
                        verdict = Verdict(judge=judge.id, target=target, status="failed", error=str(exc)[:500])
                self._store_verdict(record, key, verdict)
                self._progress_bar.advance(self._judge_task)
            finally:
                self.judge_queue.task_done()

    def _store_verdict(self, record: GenerationRecord, key: str, verdict: Verdict) -> None:
        self.store.put_verdict(VerdictRecord(key=key, generation_key=record.key, sample_id=record.sample_id,
                                             sample_index=record.sample_index, verdict=verdict))
        self._done_verdicts.add(key)
        stats = self.stats
        stats.verdicts_new += 1
        stats.unparsed += verdict.status == "unparsed"
        stats.judge_failed += verdict.status == "failed"
        stats.not_applicable += verdict.status == "not_applicable"

"""Evaluation as a composition of the executors: generate -> split -> judge -> store, as a stream.

The generation executor (bounded by --concurrency and the backend's own limit) stores each
finished generation at once, split into thought and answer with the run's thought format, and
hands it to the judging executor, so judging runs while generation continues; the judges load in
the background while the first requests are in flight. Retries, caching by key, the dead-server
stop and lineage are the executors' (see `tis.pipeline.executor`). A fatal error (bad key,
unreachable server) stops the run; everything stored so far stays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from tis.core.retry import RetryPolicy
from tis.core.types import GenerationRecord, ImagePart, Sample
from tis.judges.base import Judge
from tis.models.base import GenerationParams, ModelBackend
from tis.pipeline.executor import (GenerationExecutor, GenerationRequest, JudgingExecutor, Progress, RunStats,
                                   ServerUnreachable, split_generation)
from tis.pipeline.store import RunStore, generation_key

log = logging.getLogger("tis")

__all__ = ["Runner", "RunStats", "ServerUnreachable", "prepare_images"]


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
    """One evaluation run's executors over one store (`run` for an evaluation, `judge_stored` to re-judge)."""

    def __init__(self, store: RunStore, backend: ModelBackend | None, judges: Sequence[Judge], params: GenerationParams,
                 *, thought_format="auto", concurrency: int = 16, max_retries: int = 5,
                 backoff_s: float = 1.0, progress: bool = True, max_connection_failures: int = 8):
        self.store = store
        self.backend = backend
        self.judges = list(judges)
        self.params = params
        self.thought_format = thought_format
        self.concurrency = concurrency
        self.retry = RetryPolicy(max_retries=max_retries, backoff_s=backoff_s)
        self.max_connection_failures = max_connection_failures
        self.show_progress = progress
        self.stats = RunStats()
        self.keys: dict[str, list[str]] = {}  # sample id -> generation key per sample index, once run

    def keys_for(self, sample: Sample, _identities: tuple[dict, dict] | None = None) -> list[str]:
        ident, pid = _identities or (self.backend.identity, self.params.identity())
        return [generation_key(ident, sample, pid, i) for i in range(self.params.n)]

    async def run(self, samples: Sequence[Sample]) -> RunStats:
        """Generate what is missing for `samples`, judge what is unjudged."""
        identities = (self.backend.identity, self.params.identity())  # once, not once per sample
        self.keys = {s.id: self.keys_for(s, identities) for s in samples}
        self.store.set_selection(self.keys)  # before any call: a run that stops early stays re-judgeable
        requests = [GenerationRequest(key=k, sample=s, index=i) for s in samples for i, k in enumerate(self.keys[s.id])]
        return await self._pipeline(samples, requests)

    async def judge_stored(self, samples: Sequence[Sample], keys: Sequence[str]) -> RunStats:
        """Judge stored generations only (re-judging a run): no model call at all."""
        by_id = {s.id: s for s in samples}
        stored = self.store.generations(keys)
        requests = [GenerationRequest(key=k, sample=by_id[r.sample_id], index=r.sample_index)
                    for k in keys if (r := stored.get(k)) is not None and r.generation.status == "ok"
                    and r.sample_id in by_id]
        stats = await self._pipeline(samples, requests)
        stats.generations_total = len(keys)
        return stats

    async def _pipeline(self, samples: Sequence[Sample], requests: list[GenerationRequest]) -> RunStats:
        started = time.perf_counter()
        by_id = {s.id: s for s in samples}
        split = split_generation(self.thought_format)
        with Progress(self.show_progress) as progress:
            progress.add_total("generate", 0)  # the bars in pipeline order
            progress.add_total("judge", 0)
            judging = JudgingExecutor(self.store, self.judges, stats=self.stats, progress=progress)
            judging.start(load=False)
            generating = GenerationExecutor(self.store, self.backend, self.params, split=split,
                                            concurrency=self.concurrency, retry=self.retry,
                                            max_connection_failures=self.max_connection_failures,
                                            stats=self.stats, progress=progress, resplit_reused=True)

            def judge(record: GenerationRecord) -> None:
                judging.submit_generation(record, by_id[record.sample_id])

            async def load_judges_once_calls_are_out() -> None:
                # the judges load while the first generations are in flight (not before they are sent)
                await generating.first_call.wait()
                await asyncio.sleep(0.05)
                judging.load()

            loader = asyncio.create_task(load_judges_once_calls_are_out())
            try:
                try:
                    await generating.run(requests, on_record=judge)
                except ServerUnreachable:
                    await judging.join()  # what was generated is judged before the run stops
                    raise
                await judging.join()
            finally:
                loader.cancel()
                await judging.close()
                await generating.close()
        self.stats.wall_s = time.perf_counter() - started
        return self.stats

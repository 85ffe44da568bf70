"""Executors: every model call and every judgement of every pipeline runs through one of two.

A pipeline (evaluation, data building) is a composition of executors over one `RunStore`:

    GenerationExecutor   keyed generation requests  -> GenerationRecord rows in the store
    JudgingExecutor      keyed judgement requests   -> VerdictRecord rows in the store

Both give the same guarantees, so no pipeline re-implements them:

- **caching by content key**: a request whose key is stored with status `ok` is not sent; its
  stored record is handed back as if it had just been made (counted as reused);
- **resume after SIGKILL**: each record is committed as soon as it exists (with the others made
  within the same 20 ms); running the same requests again sends only what is missing (a `failed`
  record is tried again);
- **bounded concurrency**: at most `concurrency` calls in flight (and no more than the backend's
  `max_concurrency` / a judge's `max_concurrency`); local backends with `batch_size > 1` get their
  requests gathered by the one micro-batcher (`tis.core.batching.MicroBatcher`);
- **one retry policy** (`tis.core.retry.RetryPolicy`: exponential backoff with equal jitter on
  429, 5xx, timeouts, dropped connections, malformed bodies); a request that still fails is stored
  as `failed` with its error, never as a result;
- **a dead server stops the run**: after `max_connection_failures` calls in a row that could not
  connect (no HTTP answer at all) the executor raises `ServerUnreachable` (a `FatalModelError`);
  what is stored stays, and the same command resumes;
- **lineage**: every record is stored with its `stage` name and its `parents` (the keys it was
  made from), so a multi-stage build is resumable and explainable (`RunStore.lineage(key)`);
- **progress**: one rich display (`Progress`), one bar per executor, with throughput and ETA.

Requests
--------
`GenerationRequest(key, sample, index=0, stage="generate", parents=())`
    `key` is a content hash of everything that decides the output (use
    `tis.pipeline.store.generation_key(model_identity, sample, params.identity(), index)`, or
    `tis.core.types.content_hash(...)` of your own inputs). `sample` is what is sent: its `system`
    and `content` become the chat messages. Requests that share one `Sample` object with different
    `index` go out as one call asking `params.n` completions; completion `index` is stored under
    that request's key. Requests with different Sample objects are separate calls, whatever their
    ids.
`JudgeRequest(key, judge, sample, record, target, text, stage="judge", parents=())`
    One judge on one target of one stored generation (`record`). `key` is
    `verdict_key(record.key, judge.identity, target, text)`. The generation's key is always a
    parent; `parents` adds more. `JudgingExecutor.requests_for(record, sample)` makes the
    requests of every judge x target for a generation (empty targets are stored `not_applicable`).

Executors
---------
`GenerationExecutor(store, backend, params, *, split=None, concurrency=16, retry=RetryPolicy(),
                    max_connection_failures=8, stats=None, progress=None, label="generate",
                    resplit_reused=False)`
    `await ex.run(requests, on_record=None) -> dict[key, GenerationRecord]`
    `split(ModelOutput) -> Generation` turns an output into the stored generation (evaluation
    splits thought from answer with `split_generation(fmt)`; the default keeps the text as the
    answer). `on_record(record)` is called for every record with status `ok`, reused ones first,
    then each new one as soon as it is stored (this is how judging is pipelined behind
    generation). With `resplit_reused`, stored records are split again with `split` (a changed
    thought format costs no call). The backend is started before the first call that is actually
    sent (never when everything is stored) and closed by `ex.close()`.
`JudgingExecutor(store, judges, *, stats=None, progress=None)`
    `ex.start()` loads the judges in the background and returns at once (HTTP generation does not
    wait for a judge's model to load; `start(load=False)` then `load()` defers the loading, e.g.
    until the generation executor's `first_call` event is set, so a judge's heavy imports do not
    compete with the first requests); `ex.submit(request)` queues a judgement (reused at once when
    its key is done); `await ex.join()` waits until everything submitted is stored;
    `await ex.run(requests) -> dict[key, VerdictRecord]` is submit + join + read back;
    `await ex.close()` closes the judges. `ex.submit_generation(record, sample)` queues every
    judge x target of a generation.

Both executors count into one `RunStats` (pass the same object to both).

Example: a two-stage data build (a teacher writes a caption, then a question from it; a judge
filters the questions):

    stats = RunStats()
    with Progress(enabled=True) as progress:
        teacher = GenerationExecutor(store, backend, params, stats=stats, progress=progress,
                                     label="caption")
        captions = await teacher.run([GenerationRequest(key=content_hash({"caption": img.sha256, ...}),
                                                        sample=caption_prompt(img), stage="caption")
                                      for img in images])
        teacher.label = "question"
        questions = await teacher.run([GenerationRequest(key=content_hash({"q": rec.key, ...}),
                                                         sample=question_prompt(rec), stage="question",
                                                         parents=(rec.key,))
                                       for rec in captions.values() if rec.generation.status == "ok"])
        await teacher.close()
        judging = JudgingExecutor(store, [judge], stats=stats, progress=progress)
        judging.start()
        verdicts = await judging.run([req for rec in questions.values() if rec.generation.status == "ok"
                                      for req in judging.requests_for(rec, question_sample(rec),
                                                                      stage="filter")])
        await judging.close()

Running it again after a kill sends only the calls whose records are missing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from tis.core.errors import FatalModelError, ModelError
from tis.core.retry import RetryPolicy
from tis.core.types import Generation, GenerationRecord, ModelOutput, Sample, Target, Verdict, VerdictRecord

log = logging.getLogger("tis")


class ServerUnreachable(FatalModelError):
    """Model calls in a row could not connect: the server is down. Stored work is kept."""


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


@dataclass(frozen=True)
class GenerationRequest:
    key: str
    sample: Sample
    index: int = 0
    stage: str = "generate"
    parents: tuple[str, ...] = ()


@dataclass(frozen=True)
class JudgeRequest:
    key: str
    judge: object  # tis.judges.base.Judge (not imported: judges sit below this layer but load lazily)
    sample: Sample
    record: GenerationRecord
    target: Target
    text: str
    stage: str = "judge"
    parents: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Judgeable:
    """A stored generation whose judgements are still to be queued (see submit_generation)."""

    record: GenerationRecord
    sample: Sample


# progress -----------------------------------------------------------------------------------
class Progress:
    """One rich progress display shared by the executors of a pipeline (off: a no-op)."""

    def __init__(self, enabled: bool = True):
        from rich.progress import (BarColumn, MofNCompleteColumn, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        from rich.progress import Progress as RichProgress

        from tis.core.console import console

        class Throughput(TextColumn):
            def render(self, task):  # items per second over the recent window rich keeps
                from rich.text import Text

                return Text(f"{task.speed:6.1f}/s" if task.speed else "     -/s")

        self._rich = RichProgress(TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn(),
                                  TaskProgressColumn(), Throughput(""), TimeElapsedColumn(), TextColumn("eta"),
                                  TimeRemainingColumn(), console=console, disable=not enabled, transient=False,
                                  get_time=time.monotonic, refresh_per_second=4)
        self._tasks: dict[str, int] = {}
        self._enabled = enabled

    def __enter__(self) -> "Progress":
        self._rich.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._rich.__exit__(*exc)

    def _task(self, label: str) -> int:
        if label not in self._tasks:
            self._tasks[label] = self._rich.add_task(label, total=0)
        return self._tasks[label]

    def add_total(self, label: str, n: int) -> None:
        task = self._task(label)
        self._rich.update(task, total=(self._rich.tasks[task].total or 0) + n)

    def advance(self, label: str, n: int = 1) -> None:
        if self._enabled:  # nothing is shown: no bookkeeping for every record
            self._rich.advance(self._task(label), n)


class _NoProgress:
    def add_total(self, label: str, n: int) -> None:
        pass

    def advance(self, label: str, n: int = 1) -> None:
        pass


def plain_generation(output: ModelOutput) -> Generation:
    """The default `split`: the whole text is the answer (teachers, captions)."""
    return Generation(raw=output.text, reasoning_field=output.reasoning, answer=output.text,
                      finish_reason=output.finish_reason, usage=output.usage,
                      truncated=output.finish_reason == "length")


def split_generation(thought_format) -> Callable[[ModelOutput], Generation]:
    """A `split` that separates thought from answer with a thought format (name or ThoughtFormat)."""
    from tis.reasoning.formats import split_output

    def split(output: ModelOutput) -> Generation:
        s = split_output(output, thought_format)
        return Generation(raw=output.text, reasoning_field=output.reasoning, thought=s.thought, answer=s.answer,
                          split_source=s.source, finish_reason=output.finish_reason, truncated=s.truncated,
                          usage=output.usage)

    return split


def is_connection_failure(exc: BaseException) -> bool:
    """True when a call got no HTTP answer at all (refused, reset, dropped), as opposed to an
    error status, a malformed body or a timeout (a slow server is not a dead one).

    A backend may say so itself with `exc.connection_failed = True`."""
    flag = getattr(exc, "connection_failed", None)
    if flag is not None:
        return bool(flag)
    if not isinstance(exc, ModelError) or not exc.retryable or exc.status is not None:
        return False
    cause = exc.__cause__ or exc.__context__
    if cause is None or isinstance(cause, TimeoutError):
        return False
    names = {c.__name__ for c in type(cause).__mro__}
    return isinstance(cause, OSError) or bool(names & {"ClientConnectionError", "ServerDisconnectedError"})


# generation ---------------------------------------------------------------------------------
@dataclass
class _Group:
    sample: Sample
    requests: list[GenerationRequest]


class GenerationExecutor:
    def __init__(self, store, backend, params, *, split: Callable[[ModelOutput], Generation] | None = None,
                 concurrency: int = 16, retry: RetryPolicy | None = None, max_connection_failures: int = 8,
                 stats: RunStats | None = None, progress: Progress | None = None, label: str = "generate",
                 resplit_reused: bool = False):
        self.store = store
        self.resplit_reused = resplit_reused
        self.backend = backend
        self.params = params
        self.split = split or plain_generation
        limit = getattr(backend, "max_concurrency", None)
        self.concurrency = max(1, min(concurrency, limit or concurrency))
        self.retry = retry or RetryPolicy()
        self.max_connection_failures = max_connection_failures
        self.stats = stats if stats is not None else RunStats()
        self.progress = progress or _NoProgress()
        self.label = label
        self._started = False
        self._batcher = None
        self._connection_failures = 0
        self._down: ServerUnreachable | None = None
        self._first_call_event: asyncio.Event | None = None
        self._finished: list[tuple] = []  # calls finished in this turn of the event loop, not yet stored
        self._finish_scheduled = False
        self._deliver_error: Exception | None = None

    @property
    def first_call(self) -> asyncio.Event:
        """Set when the first model call has gone out."""
        if self._first_call_event is None:
            self._first_call_event = asyncio.Event()
        return self._first_call_event

    # the public call --------------------------------------------------------------------------
    async def run(self, requests: Iterable[GenerationRequest],
                  on_record: Callable[[GenerationRecord], None] | None = None) -> dict[str, GenerationRecord]:
        """Make (or reuse) a record for every request; returns them by key, `failed` ones included."""
        requests = list(requests)
        stored = self.store.generations(r.key for r in requests)
        out: dict[str, GenerationRecord] = {}
        groups: dict[int, _Group] = {}
        for r in requests:
            rec = stored.get(r.key)
            if rec is not None and rec.generation.status == "ok":
                if self.resplit_reused:
                    rec = self._resplit(rec, r)
                out[r.key] = rec
                self.stats.generations_reused += 1
                if on_record is not None:
                    on_record(rec)
                continue
            # completions of one prompt go out as one call: requests that share their Sample object
            # (not merely its id: two stages may send different prompts under one sample id)
            groups.setdefault(id(r.sample), _Group(r.sample, [])).requests.append(r)
        self.stats.generations_total += len(requests)
        todo = list(groups.values())
        if not todo:
            return out
        if self.backend is None:
            raise ValueError(f"{len(todo)} requests are not stored and this executor has no backend to send them to")
        self.progress.add_total(self.label, sum(len(g.requests) for g in todo))
        if not self._started:
            await self.backend.start()
            self._started = True
            batch = max(1, getattr(self.backend, "batch_size", 1))
            if batch > 1:
                from tis.core.batching import MicroBatcher

                self._batcher = MicroBatcher(self._generate_batch, batch, concurrency=self.concurrency)
        in_flight = self.concurrency * (self._batcher.max_items if self._batcher else 1)
        queue: asyncio.Queue[_Group] = asyncio.Queue()
        for g in todo:
            queue.put_nowait(g)

        def deliver(records: list[GenerationRecord]) -> None:
            for rec in records:
                out[rec.key] = rec
                if on_record is not None and rec.generation.status == "ok":
                    on_record(rec)

        async def worker() -> None:
            while self._down is None:
                try:
                    group = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self._generate_group(group, deliver)

        workers = [asyncio.create_task(worker()) for _ in range(min(in_flight, len(todo)))]
        try:
            pending = set(workers)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if task.exception() is not None:
                        raise task.exception()
                if self._down is not None:
                    raise self._down
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self._finish_calls()  # every finished call is stored before run() returns or raises
        if self._deliver_error is not None:
            error, self._deliver_error = self._deliver_error, None
            raise error
        return out

    def _resplit(self, record: GenerationRecord, request: GenerationRequest) -> GenerationRecord:
        """A stored generation split again with this executor's `split` (a changed thought format
        needs no model call); stored again only when the split changed."""
        g = record.generation
        fresh = self.split(ModelOutput(text=g.raw, reasoning=g.reasoning_field, finish_reason=g.finish_reason,
                                       usage=g.usage))
        fields = ("thought", "answer", "split_source", "truncated")
        if all(getattr(fresh, f) == getattr(g, f) for f in fields):
            return record
        g = g.model_copy(update={f: getattr(fresh, f) for f in fields})
        record = record.model_copy(update={"generation": g})
        self.store.put_generation(record, stage=request.stage, parents=request.parents)
        return record

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()
        if self.backend is not None:
            await self.backend.close()

    # one sample ------------------------------------------------------------------------------
    async def _generate_batch(self, samples: list[Sample]) -> list[list[ModelOutput]]:
        self.stats.model_calls += 1
        call = asyncio.ensure_future(self.backend.generate(samples, self.params))
        self.first_call.set()
        return await call

    async def _call(self, sample: Sample) -> list[ModelOutput]:
        if self._batcher is not None:
            return await self._batcher.submit(sample)
        self.stats.model_calls += 1
        call = asyncio.ensure_future(self.backend.generate([sample], self.params))
        self.first_call.set()
        [outputs] = await call
        return outputs

    async def _generate_group(self, group: _Group,
                              deliver: Callable[[list[GenerationRecord]], None]) -> None:
        """Make one group's call (with retries); its records go to `deliver` once stored."""
        attempt = 0
        need = max(r.index for r in group.requests) + 1
        while True:
            t0 = time.perf_counter()
            try:
                outputs = await self._call(group.sample)
                if len(outputs) < need:
                    raise ModelError(f"the backend returned {len(outputs)} completions where {need} were asked for",
                                     retryable=True)
                self._connection_failures = 0
                # split, stored and handed on at the next turn of the event loop, together with the
                # other calls finished in this one: the worker sends its next request first
                self._finished.append((group, outputs, time.perf_counter() - t0, attempt + 1, deliver))
                if not self._finish_scheduled:
                    self._finish_scheduled = True
                    asyncio.get_running_loop().call_soon(self._finish_calls)
                return
            except FatalModelError:
                raise
            except ModelError as exc:
                if is_connection_failure(exc):
                    self._connection_failures += 1
                    if self.max_connection_failures and self._connection_failures >= self.max_connection_failures:
                        self._server_down(exc)
                        raise self._down from None
                else:
                    self._connection_failures = 0
                if self.retry.should_retry(exc, attempt):
                    delay = self.retry.delay(attempt)
                    attempt += 1
                    self.stats.retries += 1
                    log.warning("retry %d/%d for sample %s in %.1fs: %s", attempt, self.retry.max_retries,
                                group.sample.id, delay, exc)
                    await asyncio.sleep(delay)
                    if self._down is not None:
                        raise self._down from None
                    continue
                error = f"{exc} (after {attempt + 1} attempts)" if exc.retryable else str(exc)
            except Exception as exc:  # a backend bug must not lose the run: record it on the sample
                log.exception("unexpected error generating %s", group.sample.id)
                error = f"{type(exc).__name__}: {exc}"
            failed = Generation(raw="", status="failed", error=error, attempts=attempt + 1,
                                latency_s=time.perf_counter() - t0)
            deliver(self._record(group, [failed] * len(group.requests)))
            return

    def _finish_calls(self) -> None:
        """Split and store every call finished since the last turn (one transaction), then hand the
        records on (to judging); runs at the next turn of the event loop, never later."""
        self._finish_scheduled = False
        finished, self._finished = self._finished, []
        if not finished:
            return
        split = self.split
        for group, outputs, latency, attempts, deliver in finished:
            try:
                generations = []
                for r in group.requests:
                    generations.append(split(outputs[r.index]).model_copy(
                        update={"latency_s": latency, "attempts": attempts}))
            except Exception as exc:  # a split bug must not lose the run: record it on the sample
                log.exception("unexpected error generating %s", group.sample.id)
                failed = Generation(raw="", status="failed", error=f"{type(exc).__name__}: {exc}",
                                    attempts=attempts, latency_s=latency)
                generations = [failed] * len(group.requests)
            records = self._record(group, generations)
            try:
                deliver(records)
            except Exception as exc:  # the caller's on_record failed: run() raises it once the calls are stored
                self._deliver_error = self._deliver_error or exc
        self.store.flush()

    def _server_down(self, exc: ModelError) -> None:
        if self._down is None:
            self._down = ServerUnreachable(
                f"stopped: {self._connection_failures} model calls in a row could not reach the server ({exc}). "
                f"Everything finished so far is stored; start the server again and re-run the same command "
                f"to resume")

    def _record(self, group: _Group, generations: Sequence[Generation]) -> list[GenerationRecord]:
        records = []
        stats = self.stats
        for r, g in zip(group.requests, generations):
            record = GenerationRecord(key=r.key, sample_id=group.sample.id, sample_index=r.index, generation=g)
            self.store.put_generation(record, stage=r.stage, parents=r.parents)
            records.append(record)
            if g.status == "failed":
                stats.failed += 1
                stats.first_error = stats.first_error or f"sample {group.sample.id}: {g.error}"
                kind = (g.error or "error").split(":")[0][:60]
                stats.errors[kind] = stats.errors.get(kind, 0) + 1
            else:
                stats.generated += 1
                stats.truncated += g.truncated
            self.progress.advance(self.label)
        return records


# judging ------------------------------------------------------------------------------------
class JudgingExecutor:
    def __init__(self, store, judges: Sequence, *, stats: RunStats | None = None,
                 progress: Progress | None = None, label: str = "judge"):
        self.store = store
        self.judges = list(judges)
        self.stats = stats if stats is not None else RunStats()
        self.progress = progress or _NoProgress()
        self.label = label
        self._done: set[str] | None = None
        self._queue: asyncio.Queue | None = None
        self._workers: list[asyncio.Task] = []
        self._ready: dict[str, asyncio.Task] = {}
        self._load_called: asyncio.Event | None = None
        self._identities: dict[str, dict] = {}
        self._limits: dict[str, asyncio.Semaphore] = {}
        self.turn_budget_s = 0.002  # judging time per turn of the event loop (see _worker)
        self._error: Exception | None = None  # raised by join()
        self._turn = 0  # turns of the event loop seen while judging
        self._turn_spent = 0.0
        self._turn_reset_scheduled = False

    def start(self, *, load: bool = True) -> None:
        """Start the workers and (unless `load=False`) loading every judge in the background;
        returns at once. Judgements submitted before `load()` wait for it."""
        if self._queue is None:
            self._done = self.store.done_verdict_keys()
            self._queue = asyncio.Queue()
            self._load_called = asyncio.Event()
            self._limits = {j.id: asyncio.Semaphore(j.max_concurrency) for j in self.judges}
            count = max((j.max_concurrency for j in self.judges), default=1)
            self._workers = [asyncio.create_task(self._worker()) for _ in range(count)]
        if load:
            self.load()

    def load(self) -> None:
        """Start loading the judges (their `start()`) in the background, once."""
        self.start(load=False)
        if not self._load_called.is_set():
            self._ready = {j.id: asyncio.ensure_future(j.start()) for j in self.judges}
            self._load_called.set()

    def requests_for(self, record: GenerationRecord, sample: Sample, *, stage: str = "judge",
                     parents: tuple[str, ...] = ()) -> list[JudgeRequest]:
        from tis.judges.base import target_text
        from tis.pipeline.store import verdict_key

        out = []
        for judge in self.judges:
            identity = self._identities.get(judge.id)
            if identity is None:  # read once: a judge's identity is fixed when it is made
                identity = self._identities[judge.id] = judge.identity
            for target in judge.targets:
                text = target_text(record.generation, target)
                out.append(JudgeRequest(key=verdict_key(record.key, identity, target, text), judge=judge,
                                        sample=sample, record=record, target=target, text=text, stage=stage,
                                        parents=parents))
        return out

    def submit_generation(self, record: GenerationRecord, sample: Sample) -> None:
        """Queue every judge x target of a generation. Its requests are made by a worker, in the
        judging time of a later turn (their keys are hashes), not on the generation's path."""
        if record.generation.status != "ok":
            return
        if self._queue is None:
            self.start()
        assert self._queue is not None
        self._queue.put_nowait(_Judgeable(record, sample))

    def _submit_judgeable(self, item: "_Judgeable") -> None:
        for request in self.requests_for(item.record, item.sample):
            self.submit(request)

    def submit(self, request: JudgeRequest) -> None:
        if self._queue is None:
            self.start()
        assert self._done is not None and self._queue is not None
        if request.key in self._done:
            self.stats.verdicts_reused += 1
            return
        if not request.text.strip():  # nothing to judge is not the same as safe
            self._store(request, Verdict(judge=request.judge.id, target=request.target, status="not_applicable",
                                         rationale=f"empty {request.target}"))
            return
        self._done.add(request.key)  # submitted twice: judged once
        self.progress.add_total(self.label, 1)
        self._queue.put_nowait(request)

    async def join(self) -> None:
        self.load()
        assert self._queue is not None
        join = asyncio.ensure_future(self._queue.join())
        # a judge that fails to load must stop the run, not leave it waiting
        while not join.done():
            done, _ = await asyncio.wait([join, *self._ready.values()], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not join and task.exception() is not None:
                    join.cancel()
                    raise task.exception()
            self._ready = {k: t for k, t in self._ready.items() if not t.done()}
        if self._error is not None:
            raise self._error

    async def run(self, requests: Iterable[JudgeRequest]) -> dict[str, VerdictRecord]:
        requests = list(requests)
        for r in requests:
            self.submit(r)
        await self.join()
        return self.store.verdicts(r.key for r in requests)

    async def close(self) -> None:
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for task in self._ready.values():
            task.cancel()
        await asyncio.gather(*self._ready.values(), return_exceptions=True)
        for j in self.judges:
            await j.close()
        self._workers = []

    async def _worker(self) -> None:
        assert self._queue is not None
        while True:
            request: JudgeRequest | _Judgeable = await self._queue.get()
            if isinstance(request, _Judgeable):
                try:
                    while self._turn_spent >= self.turn_budget_s:
                        await asyncio.sleep(0)
                    t0 = time.perf_counter()
                    self._schedule_new_turn()
                    self._submit_judgeable(request)
                    self._turn_spent += time.perf_counter() - t0
                except Exception as exc:  # a bug making the requests stops the run (join raises it)
                    self._error = self._error or exc
                finally:
                    self._queue.task_done()
                continue
            judge = request.judge
            try:
                if not self._load_called.is_set():
                    await self._load_called.wait()
                ready = self._ready.get(judge.id)
                if ready is not None:
                    if not ready.done():
                        await asyncio.wait([ready])
                    if ready.cancelled() or ready.exception() is not None:
                        continue  # reported by join(); the judgement stays unstored
                # judges working on the CPU share each turn of the event loop with the model calls:
                # at most `turn_budget_s` of judging per turn, so a finished call's slot is refilled
                # without waiting for a backlog of judgements
                while self._turn_spent >= self.turn_budget_s:
                    await asyncio.sleep(0)
                async with self._limits[judge.id]:
                    t0, turn = time.perf_counter(), self._turn
                    self._schedule_new_turn()
                    try:
                        verdict = await judge.judge(request.sample, request.record.generation, request.target,
                                                    request.text)
                    except Exception as exc:  # counted as failed, never as safe; retried on re-run
                        log.warning("judge %s failed on sample %s (%s): %s", judge.id, request.sample.id,
                                    request.target, exc)
                        verdict = Verdict(judge=judge.id, target=request.target, status="failed",
                                          error=str(exc)[:500])
                    if self._turn == turn:  # judged within this turn: on the CPU (an awaited call is not)
                        self._turn_spent += time.perf_counter() - t0
                self._store(request, verdict)
                self.progress.advance(self.label)
            finally:
                self._queue.task_done()

    def _schedule_new_turn(self) -> None:
        if not self._turn_reset_scheduled:
            self._turn_reset_scheduled = True
            asyncio.get_running_loop().call_soon(self._new_turn)

    def _new_turn(self) -> None:
        self._turn += 1
        self._turn_spent = 0.0
        self._turn_reset_scheduled = False

    def _store(self, request: JudgeRequest, verdict: Verdict) -> None:
        rec = request.record
        self.store.put_verdict(VerdictRecord(key=request.key, generation_key=rec.key, sample_id=rec.sample_id,
                                             sample_index=rec.sample_index, verdict=verdict),
                               stage=request.stage, parents=request.parents)
        assert self._done is not None
        self._done.add(request.key)
        stats = self.stats
        stats.verdicts_new += 1
        stats.unparsed += verdict.status == "unparsed"
        stats.judge_failed += verdict.status == "failed"
        stats.not_applicable += verdict.status == "not_applicable"

"""The one micro-batcher: concurrent single calls gathered into batches for a batch-at-a-time callee.

Used for local models (a batch of prompts per forward pass), the offline judge's classifier and
batching LLM / guard judges. `await submit(item)` returns `fn([..., item, ...])[i]`.

- a batch holds up to `max_items`; the batcher waits `max_wait_s` (default: one event-loop turn)
  for callers arriving together before it sends a part-full batch;
- up to `concurrency` batches run at once;
- `fn` is an async function, or (with `in_thread=True`) a blocking one run in a worker thread so
  the event loop keeps serving other calls;
- a batch that raises is retried item by item (`split_on_error`), so one bad item does not fail
  its neighbours; each caller gets its own item's result or exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class MicroBatcher:
    def __init__(self, fn: Callable[[list[Any]], Any], max_items: int, *, max_wait_s: float = 0.0,
                 concurrency: int = 1, in_thread: bool = False, split_on_error: bool = True):
        self.fn = fn
        self.max_items = max(1, max_items)
        self.max_wait_s = max_wait_s
        self.concurrency = max(1, concurrency)
        self.in_thread = in_thread
        self.split_on_error = split_on_error
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._wake: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()
        self._executor: ThreadPoolExecutor | None = None

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop, self._wake = loop, asyncio.Event()
            self._slots = asyncio.Semaphore(self.concurrency)
            self._pending = [(i, f) for i, f in self._pending if f.get_loop() is loop]
            self._task = loop.create_task(self._run())
        future = loop.create_future()
        self._pending.append((item, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        assert self._wake is not None and self._slots is not None
        while True:
            await self._wake.wait()
            await self._slots.acquire()
            if len(self._pending) < self.max_items:
                # let callers arriving together share the batch
                await asyncio.sleep(self.max_wait_s)
            batch, self._pending = self._pending[: self.max_items], self._pending[self.max_items :]
            if not self._pending:
                self._wake.clear()
            batch = [(item, fut) for item, fut in batch if not fut.done()]
            if not batch:
                self._slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._batch(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _call(self, items: list[Any]) -> list[Any]:
        if not self.in_thread:
            return await self.fn(items)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="tis-batch")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.fn, items)

    async def _batch(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        try:
            try:
                results = await self._call([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"a batch of {len(batch)} gave {len(results)} results")
            except asyncio.CancelledError:
                for _, fut in batch:
                    fut.cancel()
                raise
            except Exception as exc:
                if len(batch) == 1 or not self.split_on_error:
                    for _, fut in batch:
                        _settle(fut, exc=exc)
                    return
                for item, fut in batch:
                    try:
                        _settle(fut, (await self._call([item]))[0])
                    except Exception as one:  # handed to that item's caller
                        _settle(fut, exc=one)
                return
            for (_, fut), result in zip(batch, results):
                _settle(fut, result)
        finally:
            assert self._slots is not None
            self._slots.release()

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._running) if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        for _, fut in self._pending:
            fut.cancel()
        self._pending = []
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _settle(future: asyncio.Future, result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():  # its caller was cancelled
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)

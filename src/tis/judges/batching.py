"""Gathers concurrent single calls into batches for a backend that runs a batch at a time (local models)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class MicroBatcher:
    """`await submit(item)` returns `fn([..., item, ...])[i]`; calls arriving together share one batch.

    A batch that raises is retried item by item, so one bad item does not fail its neighbours.
    """

    def __init__(self, fn: Callable[[list[Any]], Awaitable[list[Any]]], max_items: int):
        self.fn = fn
        self.max_items = max(1, max_items)
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let callers scheduled in the same turn join the first batch
        while self._pending:
            batch, self._pending = self._pending[: self.max_items], self._pending[self.max_items :]
            batch = [(item, fut) for item, fut in batch if not fut.done()]
            if not batch:
                continue
            try:
                results = await self.fn([item for item, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], exc=exc)
                    continue
                for item, fut in batch:
                    try:
                        _settle(fut, (await self.fn([item]))[0])
                    except Exception as one:  # handed to that item's caller
                        _settle(fut, exc=one)
                continue
            for (_, fut), result in zip(batch, results):
                _settle(fut, result)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for _, fut in self._pending:
            fut.cancel()
        self._pending = []


def _settle(future: asyncio.Future, result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():  # its caller was cancelled
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)

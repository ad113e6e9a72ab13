"""Calls to a model made from many concurrent requests, sent together: what arrives while
``max_in_flight`` calls are out waits and goes in the next one, so an idle caller sends each
item at once (no added latency) and a busy one pays one call's overhead for many items.

A call's failure fails every item it carried; a caller that stops waiting (timeout, client
gone) leaves its item to be computed and dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 32,
        max_in_flight: int = 2,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be >= 1")
        self._send = send
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight = 0
        self.calls = 0  # sent so far (for tests and metrics)

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._waiting and self._in_flight < self._max_in_flight:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            batch = [(item, f) for item, f in batch if not f.done()]  # callers that left
            if not batch:
                continue
            self._in_flight += 1
            self.calls += 1
            task = asyncio.create_task(self._run(batch))
            task.add_done_callback(_retrieve)

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._send([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for {len(batch)} items")
        except BaseException as exc:  # noqa: BLE001 - handed to every waiter
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._in_flight -= 1
            self._dispatch()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a finished call's exception as seen (its waiters have it)."""
    if not task.cancelled():
        task.exception()

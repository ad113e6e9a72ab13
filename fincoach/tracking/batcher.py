"""Group commit for behavioral events: one queue per ingress replica, written in batches.

``submit`` waits until its rows are committed (the API answers 202 only then, so an
acknowledged event survives a crash); ``record`` queues a row without waiting (the tracking
middleware: it must never slow a response) and those rows are flushed on ``close``, which the
app's lifespan calls on graceful shutdown.

A batch is written as soon as ``batch_size`` rows wait, or ``max_delay_s`` after its first row
arrived, whichever is first. Rows nobody waits for (the middleware's page views) may wait longer,
``tracking_delay_s``, and gather up to ``tracking_batch_size``: written one commit per request
they cost about as much CPU as a cached answer, and under load they doubled the write
transactions of a recommendation on SQLite; a caller's row joining such a batch brings its
write forward to ``max_delay_s`` after it came. One INSERT ... ON CONFLICT (event_id) DO
NOTHING RETURNING per batch and one commit, so a retried event is stored once and its caller
learns it was a duplicate. ``batch_size=1`` is commit-per-event (the benchmark's baseline).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.db.tables import BehavioralEvent
from fincoach.observability import metrics

logger = logging.getLogger("fincoach.events")

MIDDLEWARE_RETRIES = 3


@dataclass
class _Pending:
    row: dict[str, Any]
    done: asyncio.Future[bool] | None  # None: fire-and-forget (middleware)
    attempts: int = 0

    @property
    def source(self) -> str:
        return "tracking" if self.done is None else "api"


@dataclass
class BatcherStats:
    batches: int = 0
    rows: int = 0
    duplicates: int = 0
    dropped: int = 0  # fire-and-forget rows given up after retries or refused when full
    failures: int = 0
    sizes: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        mean = sum(self.sizes) / len(self.sizes) if self.sizes else 0.0
        return {
            "batches": self.batches,
            "rows": self.rows,
            "duplicates": self.duplicates,
            "dropped": self.dropped,
            "failures": self.failures,
            "mean_batch_size": round(mean, 2),
        }


class EventBatcher:
    """Queue of event rows (dicts of BehavioralEvent columns) written by one background task."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        batch_size: int = 10,
        max_delay_s: float = 0.005,
        tracking_delay_s: float | None = None,
        tracking_batch_size: int = 100,
        max_queue: int = 10_000,
    ) -> None:
        if batch_size < 1 or tracking_batch_size < 1:
            raise ValueError("batch sizes must be at least 1")
        self._engine = engine
        self._batch_size = batch_size
        self._max_delay = max_delay_s
        self._tracking_delay = max_delay_s if tracking_delay_s is None else tracking_delay_s
        self._tracking_batch_size = max(batch_size, tracking_batch_size)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = BatcherStats()
        dialect = engine.dialect.name
        self._insert = pg_insert if dialect == "postgresql" else sqlite_insert

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-batcher")

    async def submit(self, rows: Sequence[Mapping[str, Any]]) -> list[bool]:
        """Queue ``rows`` and wait for their commit; True per row that was stored, False for a
        duplicate ``event_id``. Raises if the write failed (nothing was acknowledged)."""
        if self._closing:
            raise RuntimeError("the event batcher is shutting down")
        self.start()
        loop = asyncio.get_running_loop()
        pending = [_Pending(dict(r), loop.create_future()) for r in rows]
        for p in pending:
            await self._queue.put(p)
        return [await p.done for p in pending if p.done is not None]

    def record(self, row: Mapping[str, Any]) -> bool:
        """Queue ``row`` without waiting; False (and counted, logged) when the queue is full."""
        if self._closing:
            self.stats.dropped += 1
            metrics.count_events_rejected("dropped")
            return False
        self.start()
        try:
            self._queue.put_nowait(_Pending(dict(row), None))
        except asyncio.QueueFull:
            self.stats.dropped += 1
            metrics.count_events_rejected("dropped")
            logger.warning(
                "event queue full: tracking event dropped (%d so far)", self.stats.dropped
            )
            return False
        return True

    async def close(self) -> None:
        """Write everything queued, then stop (graceful shutdown)."""
        self._closing = True
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _next_batch(self) -> list[_Pending]:
        loop = asyncio.get_running_loop()
        first = await self._queue.get()
        batch = [first]
        waited_for = first.done is not None
        deadline = loop.time() + (self._max_delay if waited_for else self._tracking_delay)
        limit = self._batch_size if waited_for else self._tracking_batch_size
        while len(batch) < limit:
            try:
                p = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    p = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            batch.append(p)
            if p.done is not None and not waited_for:
                # a caller waits for this row: no longer than it would in a batch of its own
                waited_for = True
                deadline = min(deadline, loop.time() + self._max_delay)
                limit = max(self._batch_size, len(batch))
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            try:
                await self._write_or_split(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write_or_split(self, batch: list[_Pending]) -> None:
        try:
            await self._write(batch)
            return
        except Exception as exc:  # noqa: BLE001 - the callers get the error; the loop lives
            if len(batch) > 1:
                # One bad row (say, of a user deleted meanwhile) must not fail the others.
                logger.warning(
                    "event batch of %d failed (%s): writing rows one by one", len(batch), exc
                )
                for p in batch:
                    await self._write_or_split([p])
                return
            self._fail(batch[0], exc)

    def _fail(self, p: _Pending, exc: Exception) -> None:
        self.stats.failures += 1
        logger.error("event %s not written: %s", p.row.get("event_id"), exc)
        if p.done is not None:
            metrics.count_events_rejected("write_failed")
            if not p.done.done():
                p.done.set_exception(exc)
            return
        if p.attempts + 1 < MIDDLEWARE_RETRIES and not self._closing:
            p.attempts += 1
            try:
                self._queue.put_nowait(p)
                return
            except asyncio.QueueFull:
                pass
        self.stats.dropped += 1
        metrics.count_events_rejected("write_failed")

    async def _write(self, batch: list[_Pending]) -> None:
        # One row per event_id: a retry inside the same batch is a duplicate of the first.
        first: dict[str, _Pending] = {}
        for p in batch:
            first.setdefault(p.row["event_id"], p)
        stmt = (
            self._insert(BehavioralEvent)
            .on_conflict_do_nothing(index_elements=[BehavioralEvent.event_id])
            .returning(BehavioralEvent.event_id)
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt, [p.row for p in first.values()])
            stored = set(result.scalars().all())
        self.stats.batches += 1
        self.stats.rows += len(stored)
        self.stats.duplicates += len(batch) - len(stored)
        self.stats.sizes.append(len(batch))
        if len(self.stats.sizes) > 1000:
            del self.stats.sizes[:500]
        accepted = {"api": 0, "tracking": 0}
        for p in batch:
            is_new = p is first[p.row["event_id"]] and p.row["event_id"] in stored
            accepted[p.source] += is_new
            if p.done is not None and not p.done.done():
                p.done.set_result(is_new)
        for source, n in accepted.items():
            metrics.count_events_accepted(source, n)
        metrics.count_events_rejected("duplicate", len(batch) - len(stored))

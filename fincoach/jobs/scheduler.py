"""Runs the background jobs when they are due, from inside the serving app.

Every ingress replica runs a ``JobScheduler``; the ``job_runs`` table decides which one runs a
due job: a replica claims it with one conditional UPDATE (due, and no live lease), so exactly
one wins, and its lease expires if it dies mid-run (the job is then run again: jobs are
idempotent). The table is also what ``GET /jobs`` and ``GET /health`` show: last run, its
result, next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from fincoach.db.queries import jobs as q
from fincoach.jobs.runner import JOBS, run_job
from fincoach.usecases.context import Context
from schemas.ops import JobStatus

logger = logging.getLogger("fincoach.jobs")
LEASE = timedelta(minutes=30)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"[:80]


async def ensure_rows(ctx: Context) -> None:
    """A row per job (first run scheduled), created once; existing rows are left alone."""
    now = datetime.now(UTC)
    async with ctx.sessions() as session:
        await q.add_missing_jobs(
            session,
            (
                (j.name, j.period_s, now + timedelta(seconds=j.first_run_after_s or j.period_s))
                for j in JOBS.values()
            ),
        )
        try:
            await session.commit()
        except IntegrityError:  # another replica made them at the same moment
            await session.rollback()


async def claim(ctx: Context, name: str, owner: str, *, force: bool = False) -> bool:
    """Take the job's lease if it is due (or ``force``) and nobody holds a live lease."""
    async with ctx.sessions() as session:
        taken = await q.take_lease(
            session, name, owner, now=datetime.now(UTC), lease=LEASE, force=force
        )
        await session.commit()
    return taken


async def finish(
    ctx: Context, name: str, owner: str, status: str, detail: dict[str, Any], seconds: float
) -> None:
    now = datetime.now(UTC)
    async with ctx.sessions() as session:
        await q.release_lease(
            session,
            name,
            owner,
            now=now,
            status=status,
            detail=detail,
            seconds=seconds,
            next_run_at=now + timedelta(seconds=JOBS[name].period_s),
        )
        await session.commit()


async def run_claimed(ctx: Context, name: str, owner: str) -> tuple[str, dict[str, Any], float]:
    """Run a job whose lease ``owner`` holds, and record the result."""
    status, detail, seconds = await run_job(ctx, name)
    await finish(ctx, name, owner, status, detail, seconds)
    return status, detail, seconds


async def run_now(ctx: Context, name: str, owner: str | None = None) -> dict[str, Any]:
    """Run ``name`` now (``fincoach jobs run``), recorded like a scheduled run. Refuses while
    another process holds the job's lease."""
    if name not in JOBS:
        raise KeyError(name)
    owner = owner or owner_id()
    await ensure_rows(ctx)
    if not await claim(ctx, name, owner, force=True):
        raise RuntimeError(f"job {name} is running elsewhere (its lease is held)")
    status, detail, seconds = await run_claimed(ctx, name, owner)
    return {"name": name, "status": status, "detail": detail, "seconds": round(seconds, 3)}


async def job_statuses(ctx: Context) -> list[JobStatus]:
    """Every job's row: last run, its result, next run, who holds the lease."""
    await ensure_rows(ctx)
    async with ctx.sessions() as session:
        rows = await q.job_rows(session)
    return [
        JobStatus(
            name=row.name,
            description=JOBS[row.name].description if row.name in JOBS else "",
            period_s=row.period_s,
            next_run_at=row.next_run_at,
            last_started_at=row.last_started_at,
            last_finished_at=row.last_finished_at,
            last_status=row.last_status,
            last_detail=row.last_detail,
            last_duration_s=row.last_duration_s,
            runs=row.runs,
            running_on=row.lease_owner,
        )
        for row in rows
    ]


class JobScheduler:
    """Checks every ``tick_s`` seconds for due jobs and runs those it claims, one at a time."""

    def __init__(self, ctx: Context, *, tick_s: float = 30.0) -> None:
        self._ctx = ctx
        self._tick = tick_s
        self._owner = owner_id()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="job-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def tick(self) -> list[str]:
        """Run every due job this replica can claim; the names run."""
        ran = []
        for name in JOBS:
            if await claim(self._ctx, name, self._owner):
                await run_claimed(self._ctx, name, self._owner)
                ran.append(name)
        return ran

    async def _loop(self) -> None:
        try:
            await ensure_rows(self._ctx)
        except Exception as exc:  # noqa: BLE001 - the DB may be down at start: retry later
            logger.warning("job table not ready: %s", exc)
        while True:
            await asyncio.sleep(self._tick)
            try:
                await ensure_rows(self._ctx)
                await self.tick()
            except Exception as exc:  # noqa: BLE001 - the scheduler must outlive a bad tick
                logger.error("job scheduler tick failed: %s", exc)

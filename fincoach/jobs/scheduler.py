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

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from fincoach.db.tables import JobRun
from fincoach.jobs.runner import JOBS, run_job

logger = logging.getLogger("fincoach.jobs")
LEASE = timedelta(minutes=30)
# A new system runs the cheap jobs soon and the heavy ones after a full period.
FIRST_RUN_AFTER = {"cache_cleanup": 60.0, "cache_warm": 300.0}


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"[:80]


async def ensure_rows(state: Any) -> None:
    """A row per job (first run scheduled), created once; existing rows are left alone."""
    now = datetime.now(UTC)
    async with state.sessions() as session:
        known = set((await session.scalars(select(JobRun.name))).all())
        for job in JOBS.values():
            if job.name in known:
                continue
            first = FIRST_RUN_AFTER.get(job.name, job.period_s)
            session.add(
                JobRun(
                    name=job.name, period_s=job.period_s, next_run_at=now + timedelta(seconds=first)
                )
            )
        try:
            await session.commit()
        except IntegrityError:  # another replica made them at the same moment
            await session.rollback()


async def claim(state: Any, name: str, owner: str, *, force: bool = False) -> bool:
    """Take the job's lease if it is due (or ``force``) and nobody holds a live lease."""
    now = datetime.now(UTC)
    stmt = (
        update(JobRun)
        .where(JobRun.name == name)
        .where((JobRun.lease_until.is_(None)) | (JobRun.lease_until < now))
        .values(
            lease_owner=owner, lease_until=now + LEASE, last_started_at=now, last_status="running"
        )
    )
    if not force:
        stmt = stmt.where(JobRun.next_run_at <= now)
    async with state.sessions() as session:
        result = await session.execute(stmt)
        await session.commit()
    return bool(result.rowcount)


async def finish(
    state: Any, name: str, owner: str, status: str, detail: dict[str, Any], seconds: float
) -> None:
    now = datetime.now(UTC)
    async with state.sessions() as session:
        await session.execute(
            update(JobRun)
            .where(JobRun.name == name, JobRun.lease_owner == owner)
            .values(
                lease_owner=None,
                lease_until=None,
                last_finished_at=now,
                last_status=status,
                last_detail=detail,
                last_duration_s=round(seconds, 3),
                runs=JobRun.runs + 1,
                next_run_at=now + timedelta(seconds=JOBS[name].period_s),
            )
        )
        await session.commit()


async def run_now(state: Any, name: str, owner: str | None = None) -> dict[str, Any]:
    """Run ``name`` now (``fincoach jobs run``), recorded like a scheduled run. Refuses while
    another process holds the job's lease."""
    if name not in JOBS:
        raise KeyError(name)
    owner = owner or owner_id()
    await ensure_rows(state)
    if not await claim(state, name, owner, force=True):
        raise RuntimeError(f"job {name} is running elsewhere (its lease is held)")
    status, detail, seconds = await run_job(state, name)
    await finish(state, name, owner, status, detail, seconds)
    return {"name": name, "status": status, "detail": detail, "seconds": round(seconds, 3)}


async def job_table(state: Any) -> list[JobRun]:
    async with state.sessions() as session:
        return list((await session.scalars(select(JobRun).order_by(JobRun.name))).all())


class JobScheduler:
    """Checks every ``tick_s`` seconds for due jobs and runs those it claims, one at a time."""

    def __init__(self, state: Any, *, tick_s: float = 30.0) -> None:
        self._state = state
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
            if await claim(self._state, name, self._owner):
                status, detail, seconds = await run_job(self._state, name)
                await finish(self._state, name, self._owner, status, detail, seconds)
                ran.append(name)
        return ran

    async def _loop(self) -> None:
        try:
            await ensure_rows(self._state)
        except Exception as exc:  # noqa: BLE001 - the DB may be down at start: retry later
            logger.warning("job table not ready: %s", exc)
        while True:
            await asyncio.sleep(self._tick)
            try:
                await ensure_rows(self._state)
                await self.tick()
            except Exception as exc:  # noqa: BLE001 - the scheduler must outlive a bad tick
                logger.error("job scheduler tick failed: %s", exc)

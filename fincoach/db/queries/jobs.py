"""The job_runs table: one row per background job, its lease and its last result. Functions
take ``session`` and never commit."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.tables import JobRun


async def job_rows(session: AsyncSession) -> list[JobRun]:
    return list((await session.scalars(select(JobRun).order_by(JobRun.name))).all())


async def add_missing_jobs(
    session: AsyncSession, jobs: Iterable[tuple[str, float, datetime]]
) -> None:
    """A row for each (name, period, first run) not in the table yet."""
    known = set((await session.scalars(select(JobRun.name))).all())
    for name, period_s, first_run_at in jobs:
        if name not in known:
            session.add(JobRun(name=name, period_s=period_s, next_run_at=first_run_at))


async def take_lease(
    session: AsyncSession, name: str, owner: str, *, now: datetime, lease: timedelta, force: bool
) -> bool:
    """Take the job's lease if it is due (or ``force``) and nobody holds a live lease: one
    conditional UPDATE, so of two callers exactly one wins."""
    stmt = (
        update(JobRun)
        .where(JobRun.name == name)
        .where((JobRun.lease_until.is_(None)) | (JobRun.lease_until < now))
        .values(
            lease_owner=owner, lease_until=now + lease, last_started_at=now, last_status="running"
        )
    )
    if not force:
        stmt = stmt.where(JobRun.next_run_at <= now)
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))


async def release_lease(
    session: AsyncSession,
    name: str,
    owner: str,
    *,
    now: datetime,
    status: str,
    detail: dict[str, Any],
    seconds: float,
    next_run_at: datetime,
) -> None:
    """Record the run's result and give the lease back (only the lease's owner can)."""
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
            next_run_at=next_run_at,
        )
    )

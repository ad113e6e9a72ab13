"""``GET /jobs``: the background jobs, their last run and result, and their next run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from fincoach.jobs.runner import JOBS
from fincoach.jobs.scheduler import ensure_rows, job_table

router = APIRouter(tags=["operations"])


class JobStatus(BaseModel):
    name: str
    description: str
    period_s: float
    next_run_at: datetime
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_status: str | None = Field(description="ok, failed, running, or null (never run)")
    last_detail: dict[str, Any] | None
    last_duration_s: float | None
    runs: int
    running_on: str | None = Field(description="Holder of the lease while it runs")


class JobsResponse(BaseModel):
    scheduler_enabled: bool
    jobs: list[JobStatus]


async def job_statuses(state: Any) -> list[JobStatus]:
    await ensure_rows(state)
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
        for row in await job_table(state)
    ]


@router.get("/jobs", response_model=JobsResponse)
async def read_jobs(request: Request) -> JobsResponse:
    """The background jobs (daily segments, weekly evaluation, hourly cache cleanup and
    warming): last run, its result, next run. `fincoach jobs run NAME` runs one now."""
    return JobsResponse(
        scheduler_enabled=request.app.state.settings.jobs_enabled,
        jobs=await job_statuses(request.app.state),
    )

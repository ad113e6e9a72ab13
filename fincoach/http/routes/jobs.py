"""``GET /jobs``: the background jobs, their last run and result, and their next run."""

from __future__ import annotations

from fastapi import APIRouter

from fincoach.http.deps import ContextDep
from fincoach.jobs.scheduler import job_statuses
from schemas.ops import JobsResponse

router = APIRouter(tags=["operations"])


@router.get("/jobs", response_model=JobsResponse)
async def read_jobs(ctx: ContextDep) -> JobsResponse:
    """The background jobs (daily segments, weekly evaluation, hourly cache cleanup and
    warming): last run, its result, next run. `fincoach jobs run NAME` runs one now."""
    return JobsResponse(scheduler_enabled=ctx.settings.jobs_enabled, jobs=await job_statuses(ctx))

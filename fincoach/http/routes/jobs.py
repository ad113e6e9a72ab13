"""``GET /jobs``: the background jobs, their last run and result, and their next run."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from fincoach.http.deps import ContextDep, require_ops
from fincoach.jobs.scheduler import job_statuses
from schemas.ops import JobsResponse
from schemas.problem import problem_responses

router = APIRouter(tags=["operations"])


@router.get(
    "/jobs",
    response_model=JobsResponse,
    dependencies=[Depends(require_ops)],
    responses=problem_responses(401),
)
async def read_jobs(ctx: ContextDep) -> JobsResponse:
    """The background jobs (daily segments, weekly evaluation, hourly cache cleanup and
    warming): last run, its result, next run. `fincoach jobs run NAME` runs one now."""
    return JobsResponse(scheduler_enabled=ctx.settings.jobs_enabled, jobs=await job_statuses(ctx))

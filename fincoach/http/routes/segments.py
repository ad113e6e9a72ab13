"""Segments (under ``/coaching``): the user's behavioral segment, its profile, and the user
beside the segment's other users (aggregates only)."""

from __future__ import annotations

from fastapi import APIRouter

from fincoach.http.deps import ContextDep, CurrentUser, SessionDep
from fincoach.usecases import segments
from schemas.problem import AUTHENTICATED, problem_responses
from schemas.segments import (
    RefreshSegmentResponse,
    SegmentComparisonResponse,
    SegmentInsightsResponse,
    SegmentResponse,
)

router = APIRouter(
    prefix="/coaching", tags=["coaching"], responses=problem_responses(*AUTHENTICATED)
)


@router.get("/user-segment", response_model=SegmentResponse, responses=problem_responses(503))
async def read_user_segment(
    ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> SegmentResponse:
    """The user's behavioral segment (assigned on first request, refreshed daily by the job)."""
    return await segments.user_segment(ctx, session, user.id)


@router.post(
    "/refresh-segment", response_model=RefreshSegmentResponse, responses=problem_responses(503)
)
async def refresh_segment(
    ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> RefreshSegmentResponse:
    """Recompute the segment from the latest behavior and store it."""
    return await segments.refresh(ctx, session, user.id)


@router.get(
    "/segment-insights", response_model=SegmentInsightsResponse, responses=problem_responses(503)
)
async def read_segment_insights(
    ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> SegmentInsightsResponse:
    """The segment's profile and where the user differs most from its centroid."""
    return await segments.insights(ctx, session, user.id)


@router.get(
    "/segment-comparison",
    response_model=SegmentComparisonResponse,
    responses=problem_responses(503),
)
async def read_segment_comparison(
    ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> SegmentComparisonResponse:
    """The user beside the average of the other users of their segment (aggregates only; a
    message and no averages while the segment has too few other users)."""
    return await segments.comparison(ctx, session, user.id)

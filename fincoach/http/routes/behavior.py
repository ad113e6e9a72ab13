"""App activity (under ``/coaching``): insights, the raw aggregate, and detected changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from fincoach.http.deps import CurrentUser, SessionDep
from fincoach.usecases import events
from schemas.behavior import BehavioralInsightsResponse
from schemas.original import BehaviorAggregate, BehaviorChangesResponse
from schemas.problem import AUTHENTICATED, problem_responses

router = APIRouter(
    prefix="/coaching", tags=["coaching"], responses=problem_responses(*AUTHENTICATED)
)
EventType = Annotated[str | None, Query(max_length=40, description="Only events of this type")]


@router.get("/behavioral-insights", response_model=BehavioralInsightsResponse)
async def read_behavioral_insights(
    user: CurrentUser, session: SessionDep
) -> BehavioralInsightsResponse:
    """Your last 30 days of app activity (summary, engagement 0-100, change detection) beside
    the spending behavior the models see, with plain-language insights."""
    return await events.behavioral_insights(session, user.id)


@router.get(
    "/behavioral-events", response_model=BehaviorAggregate, responses=problem_responses(422)
)
async def read_behavioral_events(
    user: CurrentUser,
    session: SessionDep,
    days: Annotated[int, Query(ge=1, le=365)] = 7,
    event_type: EventType = None,
) -> BehaviorAggregate:
    """Your events of the last ``days`` days by type and by interaction."""
    return await events.aggregate(session, user.id, days, event_type)


@router.get("/behavior-changes", response_model=BehaviorChangesResponse)
async def read_behavior_changes(user: CurrentUser, session: SessionDep) -> BehaviorChangesResponse:
    """Event types much more or less frequent this week than in the 23 days before, and new
    kinds of interaction."""
    changes = await events.behavior_changes(session, user.id)
    return BehaviorChangesResponse(
        user_id=str(user.id),
        behavior_changes=changes,
        change_count=len(changes),
        analysis_date=datetime.now(UTC).isoformat(),
    )

"""Savings goals CRUD, scoped to the authenticated user."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from fincoach.cache.use import ON_GOAL_CHANGE, invalidate
from fincoach.db.queries import goals as q
from fincoach.errors import VALIDATION_ERROR, CoachError
from fincoach.http.deps import CurrentUser, SessionDep
from schemas.goals import GoalCreateRequest, GoalResponse, GoalStatus, GoalUpdateRequest
from schemas.problem import AUTHENTICATED, problem_responses

router = APIRouter(
    prefix="/goals", tags=["goals"], responses=problem_responses(*AUTHENTICATED, 422)
)
GoalId = Annotated[int, Path(gt=0, le=2**31 - 1)]


class GoalDateInPast(CoachError):
    status = 422
    code = VALIDATION_ERROR
    title = "Invalid request"


async def _goal_changed(request: Request, user_id: int, goal_id: int) -> None:
    """A goal changed: its own predictions, and the recommendations that weigh goals."""
    await invalidate(request, user_id, ("goal",), goal=goal_id)
    await invalidate(request, user_id, ON_GOAL_CHANGE)


@router.get("", response_model=list[GoalResponse])
async def list_goals(
    user: CurrentUser, session: SessionDep, status: GoalStatus | None = Query(default=None)
) -> list[GoalResponse]:
    return [GoalResponse.model_validate(g) for g in await q.list_goals(session, user.id, status)]


@router.post("", status_code=201, response_model=GoalResponse)
async def create_goal(
    body: GoalCreateRequest, request: Request, user: CurrentUser, session: SessionDep
) -> GoalResponse:
    if body.target_date < datetime.now(UTC).date():
        raise GoalDateInPast("body.target_date: the target date lies in the past")
    goal = await q.create_goal(session, user.id, body.model_dump())
    await session.commit()
    await invalidate(request, user.id, ON_GOAL_CHANGE)
    return GoalResponse.model_validate(goal)


@router.get("/{goal_id}", response_model=GoalResponse, responses=problem_responses(404))
async def read_goal(goal_id: GoalId, user: CurrentUser, session: SessionDep) -> GoalResponse:
    return GoalResponse.model_validate(await q.get_goal(session, user.id, goal_id))


@router.patch("/{goal_id}", response_model=GoalResponse, responses=problem_responses(404))
async def update_goal(
    goal_id: GoalId,
    body: GoalUpdateRequest,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
) -> GoalResponse:
    goal = await q.update_goal(session, user.id, goal_id, body.model_dump(exclude_unset=True))
    await session.commit()
    await _goal_changed(request, user.id, goal_id)
    return GoalResponse.model_validate(goal)


@router.delete("/{goal_id}", status_code=204, responses=problem_responses(404))
async def delete_goal(
    goal_id: GoalId, request: Request, user: CurrentUser, session: SessionDep
) -> Response:
    await q.delete_goal(session, user.id, goal_id)
    await session.commit()
    await _goal_changed(request, user.id, goal_id)
    return Response(status_code=204)

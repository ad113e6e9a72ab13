"""Savings goals CRUD, scoped to the authenticated user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from fincoach.http.deps import ContextDep, CurrentUser, SessionDep
from fincoach.usecases import goals
from schemas.goals import GoalCreateRequest, GoalResponse, GoalStatus, GoalUpdateRequest
from schemas.problem import AUTHENTICATED, problem_responses

router = APIRouter(
    prefix="/goals", tags=["goals"], responses=problem_responses(*AUTHENTICATED, 422)
)
GoalId = Annotated[int, Path(gt=0, le=2**31 - 1)]


@router.get("", response_model=list[GoalResponse])
async def list_goals(
    user: CurrentUser, session: SessionDep, status: GoalStatus | None = Query(default=None)
) -> list[GoalResponse]:
    return [GoalResponse.model_validate(g) for g in await goals.list_all(session, user.id, status)]


@router.post("", status_code=201, response_model=GoalResponse)
async def create_goal(
    body: GoalCreateRequest, ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> GoalResponse:
    goal = await goals.add(ctx, session, user.id, body.model_dump())
    return GoalResponse.model_validate(goal)


@router.get("/{goal_id}", response_model=GoalResponse, responses=problem_responses(404))
async def read_goal(goal_id: GoalId, user: CurrentUser, session: SessionDep) -> GoalResponse:
    return GoalResponse.model_validate(await goals.get(session, user.id, goal_id))


@router.patch("/{goal_id}", response_model=GoalResponse, responses=problem_responses(404))
async def update_goal(
    goal_id: GoalId,
    body: GoalUpdateRequest,
    ctx: ContextDep,
    user: CurrentUser,
    session: SessionDep,
) -> GoalResponse:
    changes = body.model_dump(exclude_unset=True)
    return GoalResponse.model_validate(await goals.update(ctx, session, user.id, goal_id, changes))


@router.delete("/{goal_id}", status_code=204, responses=problem_responses(404))
async def delete_goal(
    goal_id: GoalId, ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> Response:
    await goals.delete(ctx, session, user.id, goal_id)
    return Response(status_code=204)

"""Predictions (under ``/coaching``): weekly spending per category, the probability of reaching
a goal, and the balance projected from both."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from fincoach.http.deps import ContextDep, CurrentUser, NoCache, SessionDep
from fincoach.usecases import predictions
from schemas.original import GoalAchievementProbability, GoalPredictionRequest
from schemas.predictions import (
    FinancialForecastResponse,
    GoalProbabilityResponse,
    SpendingPredictionResponse,
)
from schemas.problem import AUTHENTICATED, problem_responses

router = APIRouter(
    prefix="/coaching", tags=["coaching"], responses=problem_responses(*AUTHENTICATED)
)


@router.get(
    "/spending-prediction",
    response_model=SpendingPredictionResponse,
    responses=problem_responses(422),
)
async def read_spending_prediction(
    ctx: ContextDep,
    user: CurrentUser,
    session: SessionDep,
    no_cache: NoCache,
    weeks: Annotated[int, Query(ge=1, le=4, description="Weeks ahead (1-4)")] = 4,
) -> SpendingPredictionResponse:
    """Weekly spending per category for the next 1-4 weeks, p10/p50/p90.
    Served from the prediction cache while fresh (see `cached`, `generated_at`)."""
    return await predictions.spending(ctx, session, user.id, weeks, no_cache=no_cache)


@router.get(
    "/goal-probability/{goal_id}",
    response_model=GoalProbabilityResponse,
    responses=problem_responses(404, 422),
)
async def read_goal_probability(
    goal_id: Annotated[int, Path(gt=0, le=2**31 - 1)],
    ctx: ContextDep,
    user: CurrentUser,
    session: SessionDep,
    no_cache: NoCache,
) -> GoalProbabilityResponse:
    """Probability of reaching the goal by its date, the main risks, and the weekly saving that
    would lift it to 75%.
    Served from the prediction cache while fresh (see `cached`, `generated_at`)."""
    return await predictions.goal_probability(ctx, session, user.id, goal_id, no_cache=no_cache)


@router.post(
    "/goal-probability",
    response_model=GoalAchievementProbability,
    responses=problem_responses(422),
)
async def estimate_goal_probability(
    body: GoalPredictionRequest, ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> GoalAchievementProbability:
    """The probability of saving ``goal_amount`` within ``timeline_days``, for a goal that is
    not stored (the original API's form; stored goals: ``GET /coaching/goal-probability/{id}``)."""
    return await predictions.adhoc_goal_probability(
        ctx, session, user.id, body.goal_amount, body.timeline_days
    )


@router.get(
    "/financial-forecast",
    response_model=FinancialForecastResponse,
    responses=problem_responses(422),
)
async def read_financial_forecast(
    ctx: ContextDep,
    user: CurrentUser,
    session: SessionDep,
    days: Annotated[int, Query(ge=1, le=365, description="Days of the projection")] = 30,
) -> FinancialForecastResponse:
    """The balance projected 4 weeks ahead from the spending forecast and recent income, and
    ``days`` ahead at the first week's pace."""
    return await predictions.financial_forecast(ctx, session, user.id, days)

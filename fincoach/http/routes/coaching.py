"""Coaching: recommendations (legacy and enhanced), feedback, history, the bandit's strategies,
and the financial state and insights they are made from.

Each route parses, calls one use case (``fincoach.usecases``) and returns its answer. When a
model fails or times out the answer uses the documented fallback and says ``"fallback": true``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from fincoach.http.deps import ContextDep, CurrentUser, NoCache, SessionDep
from fincoach.usecases import feedback, financial_state, recommendations
from schemas.coaching import (
    EnhancedRecommendationResponse,
    FeedbackRequest,
    FeedbackResponse,
    HistoryResponse,
    RecommendationResponse,
    StrategiesResponse,
)
from schemas.original import FinancialStateResponse, InsightsResponse
from schemas.problem import AUTHENTICATED, problem_responses

router = APIRouter(
    prefix="/coaching", tags=["coaching"], responses=problem_responses(*AUTHENTICATED)
)


@router.get("/recommendation", response_model=RecommendationResponse)
async def read_recommendation(
    ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> RecommendationResponse:
    """The legacy recommendation (the original ``AIRecommendation``): CQL over the 17-dim state
    among the 5 legacy actions (ids 0-4), the rule-based coach as fallback."""
    return await recommendations.legacy(ctx, session, user.id)


@router.get("/enhanced-recommendation", response_model=EnhancedRecommendationResponse)
async def read_enhanced_recommendation(
    ctx: ContextDep, user: CurrentUser, session: SessionDep, no_cache: NoCache
) -> EnhancedRecommendationResponse:
    """Segment-aware recommendation; the strategy is chosen by the bandit.
    Served from the prediction cache while fresh (see `cached`, `generated_at`)."""
    return await recommendations.enhanced(ctx, session, user.id, no_cache=no_cache)


@router.post("/feedback", response_model=FeedbackResponse, responses=problem_responses(404, 422))
async def create_feedback(
    body: FeedbackRequest,
    request: Request,
    ctx: ContextDep,
    user: CurrentUser,
    session: SessionDep,
) -> FeedbackResponse:
    """Store the feedback (committed first), then teach the bandit. A repeated feedback for the
    same recommendation is answered with the stored one and teaches nothing twice."""
    session_id = getattr(request.state, "session_id", None)
    return await feedback.give(ctx, session, user.id, body, session_id)


@router.get("/history", response_model=HistoryResponse, responses=problem_responses(422))
async def read_history(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> HistoryResponse:
    """The user's recommendations, newest first, with their feedback."""
    return await recommendations.history(session, user.id, limit=limit, offset=offset)


@router.get("/strategies", response_model=StrategiesResponse)
async def read_strategies(ctx: ContextDep, user: CurrentUser) -> StrategiesResponse:
    """The bandit's statistics per segment (pulls, mean reward, posterior)."""
    return await recommendations.strategies(ctx)


@router.get("/financial-state", response_model=FinancialStateResponse)
async def read_financial_state(user: CurrentUser, session: SessionDep) -> FinancialStateResponse:
    """The last 7 days: balance, spending and income, savings rate, spending by category, and
    a 0-100 financial health score."""
    return await financial_state.financial_state(session, user.id)


@router.get("/insights", response_model=InsightsResponse)
async def read_insights(user: CurrentUser, session: SessionDep) -> InsightsResponse:
    """Tips from the last 7 days (daily pace, savings rate, one dominant category)."""
    return await financial_state.insights(session, user.id)

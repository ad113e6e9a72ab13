"""Coaching: recommendations (legacy and enhanced), feedback, segments and predictions.

Each route parses, calls one use case (``fincoach.usecases``) and returns its answer. When a
model fails or times out the answer uses the documented fallback and says ``"fallback": true``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from fincoach.http.deps import ContextDep, CurrentUser, NoCache, SessionDep
from fincoach.usecases import events, feedback, predictions, recommendations, segments
from schemas.behavior import BehavioralInsightsResponse
from schemas.coaching import (
    EnhancedRecommendationResponse,
    FeedbackRequest,
    FeedbackResponse,
    FinancialForecastResponse,
    GoalProbabilityResponse,
    HistoryItem,
    RecommendationResponse,
    SegmentComparisonResponse,
    SegmentInsightsResponse,
    SegmentResponse,
    SpendingPredictionResponse,
    StrategiesResponse,
)
from schemas.problem import AUTHENTICATED, problem_responses

router = APIRouter(
    prefix="/coaching", tags=["coaching"], responses=problem_responses(*AUTHENTICATED)
)


# --- segments ---------------------------------------------------------------------------------
@router.get("/user-segment", response_model=SegmentResponse, responses=problem_responses(503))
async def read_user_segment(
    ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> SegmentResponse:
    """The user's behavioral segment (assigned on first request, refreshed daily by the job)."""
    return await segments.user_segment(ctx, session, user.id)


@router.post("/refresh-segment", response_model=SegmentResponse, responses=problem_responses(503))
async def refresh_segment(
    ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> SegmentResponse:
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
    responses=problem_responses(409, 503),
)
async def read_segment_comparison(
    ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> SegmentComparisonResponse:
    """The user beside the average of the other users of their segment (aggregates only)."""
    return await segments.comparison(ctx, session, user.id)


# --- recommendations --------------------------------------------------------------------------
@router.get("/recommendation", response_model=RecommendationResponse)
async def read_recommendation(
    ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> RecommendationResponse:
    """The legacy recommendation: CQL over the 17-dim state, rule-based coach as fallback."""
    return await recommendations.legacy(ctx, session, user.id)


@router.get(
    "/enhanced-recommendation",
    response_model=EnhancedRecommendationResponse,
)
async def read_enhanced_recommendation(
    ctx: ContextDep, user: CurrentUser, session: SessionDep, no_cache: NoCache
) -> EnhancedRecommendationResponse:
    """Segment-aware recommendation; the strategy is chosen by the bandit.
    Served from the prediction cache while fresh (see `cached`, `generated_at`)."""
    return await recommendations.enhanced(ctx, session, user.id, no_cache=no_cache)


@router.post("/feedback", response_model=FeedbackResponse, responses=problem_responses(404, 422))
async def create_feedback(
    body: FeedbackRequest, ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> FeedbackResponse:
    """Store the feedback (committed first), then teach the bandit. A repeated feedback for the
    same recommendation is answered with the stored one and teaches nothing twice."""
    return await feedback.give(ctx, session, user.id, body)


@router.get("/history", response_model=list[HistoryItem], responses=problem_responses(422))
async def read_history(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[HistoryItem]:
    """The user's recommendations, newest first, with their feedback."""
    return await recommendations.history(session, user.id, limit=limit, offset=offset)


@router.get("/strategies", response_model=StrategiesResponse)
async def read_strategies(ctx: ContextDep, user: CurrentUser) -> StrategiesResponse:
    """The bandit's statistics per segment (pulls, mean reward, posterior)."""
    return await recommendations.strategies(ctx)


# --- predictions ------------------------------------------------------------------------------
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


@router.get("/financial-forecast", response_model=FinancialForecastResponse)
async def read_financial_forecast(
    ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> FinancialForecastResponse:
    """The balance projected 4 weeks ahead from the spending forecast and recent income."""
    return await predictions.financial_forecast(ctx, session, user.id)


@router.get("/behavioral-insights", response_model=BehavioralInsightsResponse)
async def read_behavioral_insights(
    user: CurrentUser, session: SessionDep
) -> BehavioralInsightsResponse:
    """Your last 30 days of app activity (summary, engagement 0-100, change detection) beside
    the spending behavior the models see, with plain-language insights."""
    return await events.behavioral_insights(session, user.id)

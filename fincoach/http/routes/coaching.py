"""Coaching: recommendations (legacy and enhanced), feedback, segments and predictions.

Each route reads the user's rows once, builds features with the same functions training used,
and calls the models through ``ModelClients``. When a model fails or times out the answer uses
the documented fallback and says ``"fallback": true``: the rule-based coach for recommendations,
a 4-week moving average for spending, no probability (null) for goals.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from actors.bandit_book import segment_key
from fincoach.cache.use import (
    ON_FEEDBACK,
    ON_SEGMENT_CHANGE,
    cached,
    cached_call,
    invalidate,
    no_cache_requested,
)
from fincoach.db.queries.features import load_snapshot
from fincoach.db.queries.goals import get_goal
from fincoach.db.queries.segments import upsert_segment
from fincoach.db.tables import RecommendationFeedback, RecommendationHistory, UserSegment
from fincoach.features.frames import UserSnapshot
from fincoach.features.goals import goal_features
from fincoach.features.state import (
    BEHAVIOR_FEATURE_NAMES,
    behavior_features,
    enhanced_state,
    legacy_state,
    weekly_matrix,
)
from fincoach.features.vocab import (
    ACTIONS,
    CATEGORIES,
    SEGMENT_NAMES,
    SPENDING_CATEGORIES,
    STRATEGIES,
)
from fincoach.http.deps import CurrentUser, SessionDep
from fincoach.observability import metrics
from fincoach.usecases.clients import ModelCallFailed, ModelClients
from fincoach.usecases.texts import action_text
from models.rules import rule_based_action
from schemas.behavior import BehavioralInsightsResponse
from schemas.coaching import (
    BalanceWeek,
    CategoryForecast,
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
    WeekForecast,
)
from schemas.problem import AUTHENTICATED, problem_responses

router = APIRouter(
    prefix="/coaching", tags=["coaching"], responses=problem_responses(*AUTHENTICATED)
)
DEFAULT_STRATEGY = "cql_greedy"
SOFTMAX_TEMPERATURE = 0.5
MIN_PEERS = 5
CAT = {c: i for i, c in enumerate(CATEGORIES)}
SPEND_COLS = np.array([CAT[c] for c in SPENDING_CATEGORIES])
_rng = np.random.default_rng()


def clients_of(request: Request) -> ModelClients:
    return request.app.state.models


def _count_fallback(request: Request | str, model: str) -> None:
    """Count an answer that used its fallback; the endpoint is the route template."""
    if isinstance(request, str):
        endpoint = request
    else:
        endpoint = getattr(request.scope.get("route"), "path", None) or request.url.path
    metrics.count_fallback(endpoint, model)


def _softmax(q: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = (q - q.max()) / temperature
    e = np.exp(z)
    return e / e.sum()


# --- segments ---------------------------------------------------------------------------------
async def _segment(
    request: Request,
    session: SessionDep,
    user_id: int,
    snapshot: UserSnapshot | None = None,
    *,
    refresh: bool = False,
) -> tuple[UserSegment | None, bool]:
    """The stored segment (computed and stored first if missing or asked; the user's rows are
    read only then, unless the caller has them already); (row or None, True) when the
    segmentation model is unavailable."""
    row = await session.scalar(select(UserSegment).where(UserSegment.user_id == user_id))
    if row is not None and not refresh:
        return row, False
    features = behavior_features(snapshot or await load_snapshot(session, user_id))
    try:
        assigned = await clients_of(request).assign_segment(features)
    except ModelCallFailed:
        _count_fallback(request, "segmentation")
        return row, True
    return await upsert_segment(session, user_id, assigned, features), False


def _segment_response(row: UserSegment, fallback: bool = False) -> SegmentResponse:
    return SegmentResponse(
        segment_id=row.segment_id,
        segment_name=row.segment_name,
        confidence=row.confidence,
        model_version=row.model_version,
        updated_at=row.updated_at,
        fallback=fallback,
    )


def _no_segment() -> Exception:
    from fincoach.errors import ModelUnavailable

    return ModelUnavailable("the segmentation model is unavailable and no segment is stored yet")


async def _required_segment(
    request: Request, session: SessionDep, user_id: int, snapshot: UserSnapshot | None = None
) -> tuple[UserSegment, bool]:
    """The segment (stored, or assigned and committed now), or 503 when there is none."""
    row, fallback = await _segment(request, session, user_id, snapshot)
    await session.commit()
    if row is None:
        raise _no_segment()
    return row, fallback


def behavior_dict(snapshot: UserSnapshot) -> dict[str, float]:
    """The user's behavioral features by name."""
    return dict(zip(BEHAVIOR_FEATURE_NAMES, map(float, behavior_features(snapshot)), strict=True))


@router.get("/user-segment", response_model=SegmentResponse, responses=problem_responses(503))
async def read_user_segment(
    request: Request, user: CurrentUser, session: SessionDep
) -> SegmentResponse:
    """The user's behavioral segment (assigned on first request, refreshed daily by the job)."""
    row, fallback = await _required_segment(request, session, user.id)
    return _segment_response(row, fallback)


@router.post("/refresh-segment", response_model=SegmentResponse, responses=problem_responses(503))
async def refresh_segment(
    request: Request, user: CurrentUser, session: SessionDep
) -> SegmentResponse:
    """Recompute the segment from the latest behavior and store it."""
    row, fallback = await _segment(request, session, user.id, refresh=True)
    if fallback:
        raise _no_segment()
    await session.commit()
    await invalidate(request, user.id, ON_SEGMENT_CHANGE)
    assert row is not None
    return _segment_response(row)


@router.get(
    "/segment-insights", response_model=SegmentInsightsResponse, responses=problem_responses(503)
)
async def read_segment_insights(
    request: Request, user: CurrentUser, session: SessionDep
) -> SegmentInsightsResponse:
    """The segment's profile and where the user differs most from its centroid."""
    snapshot = await load_snapshot(session, user.id)
    row, fallback = await _required_segment(request, session, user.id, snapshot)
    try:
        profiles = await clients_of(request).segment_characteristics()
    except ModelCallFailed as exc:
        raise _no_segment() from exc
    profile = profiles[row.segment_id]
    you = behavior_dict(snapshot)
    centroid = profile["centroid"]
    differences = sorted(
        (
            {
                "feature": k,
                "you": you[k],
                "segment": centroid[k],
                "difference": you[k] - centroid[k],
            }
            for k in BEHAVIOR_FEATURE_NAMES
        ),
        key=lambda d: -abs(d["difference"]) / (abs(d["segment"]) + 1e-6),
    )[:3]
    return SegmentInsightsResponse(
        segment=_segment_response(row, fallback),
        description=profile["description"],
        share_of_users=profile["share"],
        centroid=centroid,
        you=you,
        differences=differences,
    )


async def segment_peers_average(
    session: SessionDep, segment_id: int, user_id: int
) -> tuple[int, dict[str, float]] | None:
    """Average stored features of the segment's other users, only when there are at least
    MIN_PEERS of them (an aggregate of fewer could reveal one user's numbers)."""
    rows = (
        await session.scalars(
            select(UserSegment.features).where(
                UserSegment.segment_id == segment_id, UserSegment.user_id != user_id
            )
        )
    ).all()
    if len(rows) < MIN_PEERS:
        return None
    average = {
        k: float(np.mean([float(r.get(k, 0.0)) for r in rows])) for k in BEHAVIOR_FEATURE_NAMES
    }
    return len(rows), average


@router.get(
    "/segment-comparison",
    response_model=SegmentComparisonResponse,
    responses=problem_responses(409, 503),
)
async def read_segment_comparison(
    request: Request, user: CurrentUser, session: SessionDep
) -> SegmentComparisonResponse:
    """The user beside the average of the other users of their segment (aggregates only)."""
    from fincoach.errors import Conflict

    snapshot = await load_snapshot(session, user.id)
    row, fallback = await _required_segment(request, session, user.id, snapshot)
    peers = await segment_peers_average(session, row.segment_id, user.id)
    if peers is None:
        raise Conflict(f"fewer than {MIN_PEERS} other users in this segment: no comparison yet")
    you = behavior_dict(snapshot)
    return SegmentComparisonResponse(
        segment=_segment_response(row, fallback),
        peers=peers[0],
        you=you,
        segment_average=peers[1],
    )


# --- recommendations --------------------------------------------------------------------------
async def _record(
    session: SessionDep,
    user_id: int,
    state: np.ndarray,
    action: int,
    strategy: str,
    segment_id: int | None,
    model_version: str,
    confidence: float,
    fallback: bool,
) -> RecommendationHistory:
    row = RecommendationHistory(
        user_id=user_id,
        state_vector=[float(x) for x in state],
        action_id=action,
        action_name=ACTIONS[action],
        strategy=strategy,
        segment_id=segment_id,
        model_version=model_version,
        confidence=float(np.clip(confidence, 0.0, 1.0)),
        recommendation_text=action_text(action),
        fallback=fallback,
    )
    session.add(row)
    await session.flush()
    await session.commit()
    return row


def _recommendation_fields(row: RecommendationHistory) -> dict[str, Any]:
    """The legacy response fields, all read back from the recorded history row."""
    return {
        "id": row.id,
        "action_id": row.action_id,
        "action": row.action_name,
        "recommendation": row.recommendation_text,
        "confidence": row.confidence,
        "model_version": row.model_version,
        "fallback": row.fallback,
        "created_at": row.created_at,
    }


@router.get("/recommendation", response_model=RecommendationResponse)
async def read_recommendation(
    request: Request, user: CurrentUser, session: SessionDep
) -> RecommendationResponse:
    """The legacy recommendation: CQL over the 17-dim state, rule-based coach as fallback."""
    snapshot = await load_snapshot(session, user.id)
    state = legacy_state(snapshot)
    try:
        q, version = await clients_of(request).q_values(state, "legacy")
        action, confidence, fallback = int(q.argmax()), float(_softmax(q).max()), False
    except ModelCallFailed:
        _count_fallback(request, "cql_legacy")
        action, confidence, fallback, version = rule_based_action(state), 0.5, True, "rules"
    row = await _record(
        session,
        user.id,
        state,
        action,
        "cql_greedy" if not fallback else "rule_based",
        None,
        version,
        confidence,
        fallback,
    )
    return RecommendationResponse(**_recommendation_fields(row))


async def _segment_popular(session: SessionDep, segment_id: int | None) -> int | None:
    """The action with the best mean reward among this segment's feedback (at least 5)."""
    rows = (
        await session.execute(
            select(
                RecommendationHistory.action_id,
                func.avg(RecommendationFeedback.reward),
                func.count(),
            )
            .join(
                RecommendationFeedback,
                RecommendationFeedback.recommendation_id == RecommendationHistory.id,
            )
            .where(RecommendationHistory.segment_id == segment_id)
            .group_by(RecommendationHistory.action_id)
        )
    ).all()
    scored = [(float(avg), int(a)) for a, avg, n in rows if n >= 5 and 0 <= a < len(ACTIONS)]
    return max(scored)[1] if scored else None


@router.get("/enhanced-recommendation", response_model=EnhancedRecommendationResponse)
async def read_enhanced_recommendation(
    request: Request, user: CurrentUser, session: SessionDep
) -> EnhancedRecommendationResponse:
    """Segment-aware recommendation; the strategy is chosen by the bandit.
    Served from the prediction cache while fresh (see `cached`, `generated_at`)."""
    return await cached(
        request,
        user.id,
        "recommendation",
        EnhancedRecommendationResponse,
        lambda: _read_enhanced_recommendation(request, user, session),
        models=("cql_enhanced", "segmentation"),
        kind="enhanced",
    )


async def _read_enhanced_recommendation(
    request: Request, user: CurrentUser, session: SessionDep
) -> EnhancedRecommendationResponse:
    """Segment-aware recommendation; the strategy is chosen by the bandit."""
    clients = clients_of(request)
    snapshot = await load_snapshot(session, user.id)
    segment, _ = await _segment(request, session, user.id, snapshot)
    segment_id = segment.segment_id if segment is not None else None
    state = enhanced_state(snapshot, segment_id)

    async def q_values() -> tuple[np.ndarray, str] | None:
        try:
            return await clients.q_values(state, "enhanced")
        except ModelCallFailed:
            return None

    # Independent: the bandit's choice and the Q-values.
    chosen, q_result = await asyncio.gather(
        clients.bandit_select(segment_key(segment_id)), q_values()
    )
    strategy = chosen if chosen in STRATEGIES else DEFAULT_STRATEGY
    source: Literal["bandit", "default"] = "bandit" if chosen in STRATEGIES else "default"
    versions = {"segmentation": segment.model_version if segment is not None else None}
    fallback = q_result is None
    if source == "default":
        _count_fallback(request, "bandit")
    if fallback:
        _count_fallback(request, "cql_enhanced")
    probs = _softmax(q_result[0]) if q_result is not None else None
    if q_result is not None:
        versions["cql_enhanced"] = q_result[1]
    action: int | None = None
    if strategy == "rule_based" or fallback:
        action = rule_based_action(state)
    elif strategy == "cql_softmax":
        assert q_result is not None
        action = int(_rng.choice(len(ACTIONS), p=_softmax(q_result[0], SOFTMAX_TEMPERATURE)))
    elif strategy == "segment_popular":
        action = await _segment_popular(session, segment_id)
    elif strategy == "goal_focused":
        has_goal = any(g.status == "active" for g in snapshot.goals)
        action = ACTIONS.index("goal_focus" if has_goal else "savings_nudge")
    if action is None:  # cql_greedy, or segment_popular without enough feedback yet
        assert q_result is not None
        action = int(q_result[0].argmax())
    confidence = float(probs[action]) if probs is not None else 0.5
    row = await _record(
        session,
        user.id,
        state,
        action,
        strategy,
        segment_id,
        versions.get("cql_enhanced") or "rules",
        confidence,
        fallback,
    )
    return EnhancedRecommendationResponse(
        **_recommendation_fields(row),
        strategy=strategy,
        strategy_source=source,
        segment_id=segment_id,
        segment_name=SEGMENT_NAMES[segment_id] if segment_id is not None else None,
        model_versions={k: v for k, v in versions.items() if v},
    )


def _reward(body: FeedbackRequest) -> float:
    if body.feedback_type == "implemented":
        return 1.0
    if body.feedback_type == "dismissed":
        return 0.0
    return 1.0 if body.helpful else 0.0


@router.post("/feedback", response_model=FeedbackResponse, responses=problem_responses(404, 422))
async def create_feedback(
    body: FeedbackRequest, request: Request, user: CurrentUser, session: SessionDep
) -> FeedbackResponse:
    """Store the feedback (committed first), then teach the bandit. A repeated feedback for the
    same recommendation is answered with the stored one and teaches nothing twice."""
    from fincoach.errors import NotFound

    rec = await session.scalar(
        select(RecommendationHistory).where(
            RecommendationHistory.id == body.recommendation_id,
            RecommendationHistory.user_id == user.id,
        )
    )
    if rec is None:
        raise NotFound(f"Recommendation {body.recommendation_id} not found")
    existing = await session.scalar(
        select(RecommendationFeedback).where(RecommendationFeedback.recommendation_id == rec.id)
    )
    if existing is not None:
        return FeedbackResponse(
            id=existing.id,
            recommendation_id=rec.id,
            reward=existing.reward,
            duplicate=True,
            bandit_updated=False,
        )
    feedback = RecommendationFeedback(
        recommendation_id=rec.id,
        user_id=user.id,
        feedback_type=body.feedback_type or ("helpful" if body.helpful else "not_helpful"),
        helpful=body.helpful,
        reward=_reward(body),
        feedback_text=body.feedback_text,
    )
    session.add(feedback)
    try:
        await session.commit()
    except IntegrityError:  # a concurrent duplicate won the race
        await session.rollback()
        existing = await session.scalar(
            select(RecommendationFeedback).where(RecommendationFeedback.recommendation_id == rec.id)
        )
        assert existing is not None
        return FeedbackResponse(
            id=existing.id,
            recommendation_id=rec.id,
            reward=existing.reward,
            duplicate=True,
            bandit_updated=False,
        )
    await invalidate(request, user.id, ON_FEEDBACK)
    updated = False
    if rec.strategy in STRATEGIES:
        updated = await clients_of(request).bandit_update(
            feedback.id, rec.strategy, segment_key(rec.segment_id), feedback.reward
        )
    return FeedbackResponse(
        id=feedback.id,
        recommendation_id=rec.id,
        reward=feedback.reward,
        duplicate=False,
        bandit_updated=updated,
    )


@router.get("/history", response_model=list[HistoryItem], responses=problem_responses(422))
async def read_history(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[HistoryItem]:
    """The user's recommendations, newest first, with their feedback."""
    rows = (
        await session.execute(
            select(RecommendationHistory, RecommendationFeedback)
            .outerjoin(
                RecommendationFeedback,
                RecommendationFeedback.recommendation_id == RecommendationHistory.id,
            )
            .where(RecommendationHistory.user_id == user.id)
            .order_by(RecommendationHistory.created_at.desc(), RecommendationHistory.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return [
        HistoryItem(
            id=r.id,
            action_id=r.action_id,
            action=r.action_name,
            recommendation=r.recommendation_text,
            strategy=r.strategy,
            segment_id=r.segment_id,
            model_version=r.model_version,
            confidence=r.confidence,
            fallback=r.fallback,
            created_at=r.created_at,
            feedback=None
            if f is None
            else {
                "helpful": f.helpful,
                "feedback_type": f.feedback_type,
                "reward": f.reward,
                "created_at": f.created_at.isoformat(),
            },
        )
        for r, f in rows
    ]


@router.get("/strategies", response_model=StrategiesResponse)
async def read_strategies(request: Request, user: CurrentUser) -> StrategiesResponse:
    """The bandit's statistics per segment (pulls, mean reward, posterior)."""
    stats = await clients_of(request).bandit_stats()
    if stats is None:
        return StrategiesResponse(available=False, algorithm=None, segments={})
    return StrategiesResponse(
        available=True, algorithm=stats["algorithm"], segments=stats["contexts"]
    )


# --- predictions ------------------------------------------------------------------------------
def spend_history(snapshot: UserSnapshot) -> np.ndarray:
    """Weekly spend per spending category, from the first week with any transaction."""
    weekly = weekly_matrix(snapshot, 52)
    active = np.nonzero(weekly.any(axis=1))[0]
    start = int(active[0]) if active.size else weekly.shape[0]
    return weekly[start:, SPEND_COLS]


def moving_average_forecast(history: np.ndarray, weeks: int) -> np.ndarray:
    """The fallback: the last 4 weeks' mean, with a +-50% band."""
    mean = history[-4:].mean(axis=0) if history.size else np.zeros(len(SPENDING_CATEGORIES))
    band = np.stack([0.5 * mean, mean, 1.5 * mean], axis=-1)
    return np.repeat(band[None], weeks, axis=0)


@router.get(
    "/spending-prediction",
    response_model=SpendingPredictionResponse,
    responses=problem_responses(422),
)
async def read_spending_prediction(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    weeks: Annotated[int, Query(ge=1, le=4, description="Weeks ahead (1-4)")] = 4,
) -> SpendingPredictionResponse:
    """Weekly spending per category for the next 1-4 weeks, p10/p50/p90.
    Served from the prediction cache while fresh (see `cached`, `generated_at`)."""
    return await spending_prediction(
        request.app.state, session, user.id, weeks, no_cache=no_cache_requested(request)
    )


async def spending_prediction(
    state: Any, session: SessionDep, user_id: int, weeks: int, *, no_cache: bool = False
) -> SpendingPredictionResponse:
    """The spending forecast through the prediction cache (the route, and the warming job)."""
    return await cached_call(
        state,
        user_id,
        "spending",
        SpendingPredictionResponse,
        lambda: _compute_spending_prediction(state.models, session, user_id, weeks),
        models=("forecast", "segmentation"),
        no_cache=no_cache,
        weeks=weeks,
    )


async def _compute_spending_prediction(
    clients: ModelClients, session: SessionDep, user_id: int, weeks: int
) -> SpendingPredictionResponse:
    snapshot = await load_snapshot(session, user_id)
    segment = await session.scalar(select(UserSegment).where(UserSegment.user_id == user_id))
    history = spend_history(snapshot)
    now = datetime.now(UTC)
    try:
        quantiles, version = await clients.forecast(
            history, segment.segment_id if segment else None, weeks, now.isocalendar().week
        )
        fallback, method = False, "quantile gradient boosting"
    except ModelCallFailed:
        _count_fallback("/coaching/spending-prediction", "forecast")
        quantiles, version = moving_average_forecast(history, weeks), None
        fallback, method = True, "4-week moving average (fallback)"
    return SpendingPredictionResponse(
        weeks=[
            WeekForecast(
                week_start=now + timedelta(weeks=w),
                categories=[
                    CategoryForecast(
                        category=c,
                        p10=round(float(q[0]), 2),
                        p50=round(float(q[1]), 2),
                        p90=round(float(q[2]), 2),
                    )
                    for c, q in zip(SPENDING_CATEGORIES, quantiles[w], strict=True)
                ],
                total_p50=round(float(quantiles[w, :, 1].sum()), 2),
            )
            for w in range(weeks)
        ],
        model_version=version,
        fallback=fallback,
        method=method,
    )


@router.get(
    "/goal-probability/{goal_id}",
    response_model=GoalProbabilityResponse,
    responses=problem_responses(404, 422),
)
async def read_goal_probability(
    goal_id: Annotated[int, Path(gt=0, le=2**31 - 1)],
    request: Request,
    user: CurrentUser,
    session: SessionDep,
) -> GoalProbabilityResponse:
    """Probability of reaching the goal by its date, the main risks, and the weekly saving that
    would lift it to 75%.
    Served from the prediction cache while fresh (see `cached`, `generated_at`)."""
    return await cached(
        request,
        user.id,
        "goal",
        GoalProbabilityResponse,
        lambda: _read_goal_probability(goal_id, request, user, session),
        models=("goal_probability",),
        goal=goal_id,
    )


async def _read_goal_probability(
    goal_id: Annotated[int, Path(gt=0, le=2**31 - 1)],
    request: Request,
    user: CurrentUser,
    session: SessionDep,
) -> GoalProbabilityResponse:
    """Probability of reaching the goal by its date, the main risks, and the weekly saving that
    would lift it to 75%."""
    goal = await get_goal(session, user.id, goal_id)
    snapshot = await load_snapshot(session, user.id)
    weekly = weekly_matrix(snapshot, 52)
    active = np.nonzero(weekly.any(axis=1))[0]
    weekly = weekly[int(active[0]) :] if active.size else weekly[:0]
    now = datetime.now(UTC)
    inputs: dict[str, Any] = {
        "target_amount": float(goal.target_amount),
        "current_amount": min(float(goal.current_amount), float(goal.target_amount)),
        "weeks_left": max((goal.target_date - now.date()).days / 7.0, 0.0),
        "weeks_elapsed": max((now - goal.created_at).days / 7.0, 0.0),
        "weekly_savings": weekly[:, CAT["savings"]],
        "weekly_income": weekly[:, CAT["income"]],
        "n_goals": max(1, sum(1 for g in snapshot.goals if g.status == "active")),
        "monthly_income": snapshot.profile.monthly_income or None,
    }
    try:
        result = await clients_of(request).goal(goal_features(**inputs), inputs)
    except ModelCallFailed:
        _count_fallback(request, "goal_probability")
        return GoalProbabilityResponse(
            goal_id=goal.id,
            probability=None,
            risk_factors=[],
            weekly_saving_for_75=None,
            model_version=None,
            fallback=True,
        )
    return GoalProbabilityResponse(
        goal_id=goal.id,
        probability=result["probability"],
        risk_factors=result["risk_factors"],
        weekly_saving_for_75=result.get("weekly_saving_for_75"),
        model_version=result.get("model_version"),
        fallback=False,
    )


@router.get("/financial-forecast", response_model=FinancialForecastResponse)
async def read_financial_forecast(
    request: Request, user: CurrentUser, session: SessionDep
) -> FinancialForecastResponse:
    """The balance projected 4 weeks ahead from the spending forecast and recent income."""
    snapshot = await load_snapshot(session, user.id)
    state = enhanced_state(snapshot)
    weekly = weekly_matrix(snapshot, 4)
    income = float(weekly[:, CAT["income"]].mean())
    savings = float(weekly[:, CAT["savings"]].mean())
    history = spend_history(snapshot)
    try:
        quantiles, _ = await clients_of(request).forecast(
            history, None, 4, datetime.now(UTC).isocalendar().week
        )
        fallback = False
    except ModelCallFailed:
        _count_fallback(request, "forecast")
        quantiles, fallback = moving_average_forecast(history, 4), True
    balance = float(state[0])
    weeks = []
    for w in range(4):
        spend = quantiles[w].sum(axis=0)  # p10, p50, p90 totals
        balance += income - savings - float(spend[1])
        weeks.append(
            BalanceWeek(
                week=w + 1,
                spending_p50=round(float(spend[1]), 2),
                spending_p90=round(float(spend[2]), 2),
                balance_p50=round(balance, 2),
            )
        )
    return FinancialForecastResponse(
        current_balance=round(float(state[0]), 2),
        weekly_income=round(income, 2),
        weeks=weeks,
        fallback=fallback,
    )


def _insights(activity: Any, behavior: dict[str, float]) -> list[str]:
    out: list[str] = []
    change = activity.behavior_change
    if change.significant:
        ratio = f"{change.rate_ratio:.1f}x" if change.rate_ratio else "far more"
        out.append(
            f"Your app activity this week is {ratio} the usual rate ({change.direction})."
            if change.direction == "increase"
            else "Your app activity dropped this week compared with the weeks before."
        )
    if behavior.get("impulse_buying_score", 0.0) > 0.5:
        out.append("Many small unplanned purchases: a 24-hour rule could help.")
    if behavior.get("savings_rate", 0.0) >= 0.2:
        out.append("You save at least a fifth of your income: keep it up.")
    elif behavior.get("savings_rate", 0.0) <= 0.02:
        out.append("Almost nothing is being saved: start with a small automatic transfer.")
    if activity.engagement_score < 20:
        out.append("You rarely check in: a weekly review takes five minutes.")
    return out


@router.get("/behavioral-insights", response_model=BehavioralInsightsResponse)
async def read_behavioral_insights(
    user: CurrentUser, session: SessionDep
) -> BehavioralInsightsResponse:
    """Your last 30 days of app activity (summary, engagement 0-100, change detection) beside
    the spending behavior the models see, with plain-language insights."""
    from fincoach.http.routes.events import summarize_events

    activity = await summarize_events(session, user.id)
    behavior = behavior_dict(await load_snapshot(session, user.id))
    return BehavioralInsightsResponse(
        activity=activity,
        spending_behavior={k: round(v, 4) for k, v in behavior.items()},
        insights=_insights(activity, behavior),
    )

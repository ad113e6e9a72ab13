"""Recommendations: the legacy one (CQL over the 17-dim state) and the enhanced one (segment
aware, its strategy chosen by the bandit), each recorded before it is answered; the history and
the bandit's statistics. When the CQL model fails the rule-based coach answers (``fallback``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal, cast

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from actors.bandit_book import segment_key
from fincoach.db.queries import recommendations as q
from fincoach.db.queries.features import load_snapshot
from fincoach.db.tables import RecommendationFeedback, RecommendationHistory
from fincoach.features.state import ENHANCED_FEATURE_NAMES, enhanced_state, legacy_state
from fincoach.features.vocab import ACTIONS, LEGACY_ACTION_COUNT, SEGMENT_NAMES, STRATEGIES
from fincoach.observability import metrics
from fincoach.usecases import financial_state, segments
from fincoach.usecases.clients import ModelCallFailed
from fincoach.usecases.context import Context
from fincoach.usecases.texts import action_text
from models.names import BANDIT, CQL_ENHANCED, CQL_LEGACY, SEGMENTATION
from models.rules import legacy_rule_action, rule_based_action
from schemas.coaching import (
    EnhancedRecommendationResponse,
    FeedbackStatus,
    HistoryItem,
    HistoryResponse,
    RecommendationResponse,
    StrategiesResponse,
)
from schemas.original import RecommendationStrategy

DEFAULT_STRATEGY = "cql_greedy"
SOFTMAX_TEMPERATURE = 0.5
MIN_FEEDBACK_FOR_POPULAR = 5
_rng = np.random.default_rng()


def softmax(q: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = (q - q.max()) / temperature
    e = np.exp(z)
    return e / e.sum()


async def _record(
    session: AsyncSession,
    user_id: int,
    state: np.ndarray,
    action: int,
    *,
    strategy: str,
    segment_id: int | None,
    model_version: str,
    confidence: float,
    fallback: bool,
) -> RecommendationHistory:
    """Store the recommendation (flushed, so it has its id); the caller commits before
    answering, so a recommendation is answered only once it is durable."""
    row = await q.add_recommendation(
        session,
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
    return row


def _fields(row: RecommendationHistory, state: np.ndarray) -> dict[str, Any]:
    """The response fields (the original ``AIRecommendation``'s and ours), read back from the
    recorded history row."""
    return {
        "id": row.id,
        "action_id": row.action_id,
        "action_type": row.action_name,
        "action": row.action_name,
        "recommendation": row.recommendation_text,
        "recommendation_text": row.recommendation_text,
        "confidence": row.confidence,
        "confidence_score": row.confidence,
        "state_summary": financial_state.from_state(state).model_dump(),
        "model_version": row.model_version,
        "fallback": row.fallback,
        "created_at": row.created_at,
        "generated_at": row.created_at,
    }


def legacy_choice(q_values: np.ndarray) -> tuple[int, float]:
    """The best of the legacy actions (ids 0-4) and its probability under a softmax over them:
    the original API's confidence scale (0-1), whatever else the network was trained on."""
    legacy_q = q_values[:LEGACY_ACTION_COUNT]
    probs = softmax(legacy_q)
    action = int(probs.argmax())
    return action, float(probs[action])


async def legacy(ctx: Context, session: AsyncSession, user_id: int) -> RecommendationResponse:
    """The legacy recommendation: CQL over the 17-dim state among the 5 legacy actions, the
    rule-based coach (with the original's fixed confidences) as fallback."""
    state = legacy_state(await load_snapshot(session, user_id))
    try:
        q_values, version = await ctx.models.q_values(state, "legacy")
        (action, confidence), fallback = legacy_choice(q_values), False
    except ModelCallFailed:
        metrics.count_fallback(CQL_LEGACY)
        (action, confidence), fallback, version = legacy_rule_action(state), True, "rules"
    row = await _record(
        session,
        user_id,
        state,
        action,
        strategy="rule_based" if fallback else "cql_greedy",
        segment_id=None,
        model_version=version,
        confidence=confidence,
        fallback=fallback,
    )
    await session.commit()
    return RecommendationResponse(**_fields(row, state))


async def _segment_popular(session: AsyncSession, segment_id: int | None) -> int | None:
    """The action with the best mean reward among this segment's feedback (enough of it)."""
    scored = [
        (avg, action)
        for action, avg, n in await q.action_rewards(session, segment_id)
        if n >= MIN_FEEDBACK_FOR_POPULAR and 0 <= action < len(ACTIONS)
    ]
    return max(scored)[1] if scored else None


async def enhanced(
    ctx: Context, session: AsyncSession, user_id: int, *, no_cache: bool = False
) -> EnhancedRecommendationResponse:
    """Segment-aware recommendation; the strategy is chosen by the bandit. Served from the
    prediction cache while fresh."""
    return await ctx.predictions.get_or_compute(
        user_id,
        "recommendation",
        EnhancedRecommendationResponse,
        lambda: _enhanced(ctx, session, user_id),
        models=(CQL_ENHANCED, SEGMENTATION),
        no_cache=no_cache,
        session=session,
        kind="enhanced",
    )


async def _enhanced(
    ctx: Context, session: AsyncSession, user_id: int
) -> EnhancedRecommendationResponse:
    snapshot = await load_snapshot(session, user_id)
    segment, _ = await segments.current(ctx, session, user_id, snapshot)
    segment_id = segment.segment_id if segment is not None else None
    state = enhanced_state(snapshot, segment_id)

    async def q_values() -> tuple[np.ndarray, str] | None:
        try:
            return await ctx.models.q_values(state, "enhanced")
        except ModelCallFailed:
            return None

    # Independent: the bandit's choice and the Q-values.
    chosen, q_result = await asyncio.gather(
        ctx.models.bandit_select(segment_key(segment_id)), q_values()
    )
    strategy = chosen if chosen in STRATEGIES else DEFAULT_STRATEGY
    source: Literal["bandit", "default"] = "bandit" if chosen in STRATEGIES else "default"
    versions = {SEGMENTATION: segment.model_version if segment is not None else None}
    if source == "default":
        metrics.count_fallback(BANDIT)
    if q_result is None:
        metrics.count_fallback(CQL_ENHANCED)
    else:
        versions[CQL_ENHANCED] = q_result[1]
    action: int | None = None
    if strategy == "rule_based" or q_result is None:
        action = rule_based_action(state)
    elif strategy == "cql_softmax":
        action = int(_rng.choice(len(ACTIONS), p=softmax(q_result[0], SOFTMAX_TEMPERATURE)))
    elif strategy == "segment_popular":
        action = await _segment_popular(session, segment_id)
    elif strategy == "goal_focused":
        has_goal = any(g.status == "active" for g in snapshot.goals)
        action = ACTIONS.index("goal_focus" if has_goal else "savings_nudge")
    if action is None:  # cql_greedy, or segment_popular without enough feedback yet
        assert q_result is not None
        action = int(q_result[0].argmax())
    confidence = float(softmax(q_result[0])[action]) if q_result is not None else 0.5
    row = await _record(
        session,
        user_id,
        state,
        action,
        strategy=strategy,
        segment_id=segment_id,
        model_version=versions.get(CQL_ENHANCED) or "rules",
        confidence=confidence,
        fallback=q_result is None,
    )
    return EnhancedRecommendationResponse(
        **_fields(row, state),
        segment_context=None if segment is None else segments.segment_info(segment),
        strategy_used=await _strategy_used(ctx, strategy, segment_id),
        behavioral_triggers=_triggers(state),
        personalization_score=None if q_result is None else round(confidence, 4),
        strategy=strategy,
        strategy_source=source,
        segment_id=segment_id,
        segment_name=SEGMENT_NAMES[segment_id] if segment_id is not None else None,
        model_versions={k: v for k, v in versions.items() if v},
    )


async def _strategy_used(
    ctx: Context, strategy: str, segment_id: int | None
) -> RecommendationStrategy:
    """The bandit's arm that chose (its statistics in this segment, when the bandit answers)."""
    stats = await ctx.models.bandit_stats()
    arm: dict[str, float] = {}
    if stats is not None:
        arm = stats.get("contexts", {}).get(segment_key(segment_id), {}).get(strategy, {})
    return RecommendationStrategy(
        strategy_id=STRATEGIES.index(strategy) if strategy in STRATEGIES else -1,
        strategy_name=strategy,
        parameters={},
        performance_metrics={
            k: float(v) for k, v in arm.items() if isinstance(v, int | float) and k != "pulls"
        },
        selection_count=int(arm.get("pulls", 0)),
        last_updated=datetime.now(UTC),
    )


_TRIGGERS = {
    "impulse_buying_score": 0.5,
    "financial_stress_indicator": 0.3,
    "debt_indicator": 0.3,
}


def _triggers(state: np.ndarray) -> list[str]:
    """The behavioral features of the enhanced state past their alert level."""
    named = dict(zip(ENHANCED_FEATURE_NAMES, state.tolist(), strict=False))
    out = [name for name, level in _TRIGGERS.items() if named.get(name, 0.0) > level]
    if named.get("spending_velocity", 1.0) > 1.2:
        out.append("spending_velocity")
    return out


async def history(
    session: AsyncSession, user_id: int, *, limit: int, offset: int
) -> HistoryResponse:
    """A page of the user's recommendations, newest first, with their feedback."""
    found = await q.history(session, user_id, limit=limit, offset=offset)
    return HistoryResponse(
        recommendations=[_history_item(r, f) for r, f in found],
        total=await q.count_recommendations(session, user_id),
        page=offset // limit + 1,
        limit=limit,
    )


def _history_item(r: RecommendationHistory, f: RecommendationFeedback | None) -> HistoryItem:
    return HistoryItem(
        id=str(r.id),
        recommendation_text=r.recommendation_text,
        action_type=r.action_name,
        confidence_score=r.confidence,
        created_at=r.created_at.isoformat(),
        feedback_status=cast(FeedbackStatus, "pending" if f is None else f.feedback_type),
        action_id=r.action_id,
        action=r.action_name,
        recommendation=r.recommendation_text,
        strategy=r.strategy,
        segment_id=r.segment_id,
        model_version=r.model_version,
        confidence=r.confidence,
        fallback=r.fallback,
        feedback=None
        if f is None
        else {
            "helpful": f.helpful,
            "feedback_type": f.feedback_type,
            "reward": f.reward,
            "created_at": f.created_at.isoformat(),
        },
    )


async def strategies(ctx: Context) -> StrategiesResponse:
    """The bandit's statistics per segment (pulls, mean reward, posterior), from the bandit."""
    stats = await ctx.models.bandit_stats(fresh=True)
    if stats is None:
        return StrategiesResponse(available=False, algorithm=None, segments={})
    return StrategiesResponse(
        available=True, algorithm=stats["algorithm"], segments=stats["contexts"]
    )

"""Feedback on a recommendation: stored (committed) first, then taught to the bandit, once."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from actors.bandit_book import segment_key
from fincoach.cache.predictions import ON_FEEDBACK
from fincoach.db.queries import recommendations as q
from fincoach.db.tables import RecommendationFeedback
from fincoach.errors import NotFound
from fincoach.features.vocab import STRATEGIES
from fincoach.usecases.context import Context
from schemas.coaching import FeedbackRequest, FeedbackResponse


def reward_of(feedback_type: str | None, helpful: bool) -> float:
    """1 for implemented or helpful, 0 for dismissed or not helpful."""
    if feedback_type == "implemented":
        return 1.0
    if feedback_type == "dismissed":
        return 0.0
    return 1.0 if helpful else 0.0


def _duplicate(existing: RecommendationFeedback) -> FeedbackResponse:
    return FeedbackResponse(
        id=existing.id,
        recommendation_id=existing.recommendation_id,
        reward=existing.reward,
        duplicate=True,
        bandit_updated=False,
    )


async def give(
    ctx: Context, session: AsyncSession, user_id: int, body: FeedbackRequest
) -> FeedbackResponse:
    """Store the feedback, then teach the bandit. A repeated feedback for the same
    recommendation is answered with the stored one and teaches nothing twice."""
    rec = await q.get_recommendation(session, user_id, body.recommendation_id)
    if rec is None:
        raise NotFound(f"Recommendation {body.recommendation_id} not found")
    rec_id, strategy, segment_id = rec.id, rec.strategy, rec.segment_id
    existing = await q.get_feedback(session, rec_id)
    if existing is not None:
        return _duplicate(existing)
    feedback = await q.add_feedback(
        session,
        recommendation_id=rec_id,
        user_id=user_id,
        feedback_type=body.feedback_type or ("helpful" if body.helpful else "not_helpful"),
        helpful=body.helpful,
        reward=reward_of(body.feedback_type, body.helpful),
        feedback_text=body.feedback_text,
    )
    try:
        await session.commit()
    except IntegrityError:  # a concurrent duplicate won the race
        await session.rollback()
        existing = await q.get_feedback(session, rec_id)
        assert existing is not None
        return _duplicate(existing)
    await ctx.predictions.invalidate(user_id, ON_FEEDBACK)
    updated = False
    if strategy in STRATEGIES:
        updated = await ctx.models.bandit_update(
            feedback.id, strategy, segment_key(segment_id), feedback.reward
        )
    return FeedbackResponse(
        id=feedback.id,
        recommendation_id=rec_id,
        reward=feedback.reward,
        duplicate=False,
        bandit_updated=updated,
    )

"""Feedback on a recommendation: stored (committed) first, then taught to the bandit, once.

Ids this backend issues are numbers. The original FinCoach app accepted feedback for ids it
had never stored (its "legacy" recommendations) and answered it as submitted; such an id (not
a number) is recorded here as a recommendation-interaction event, teaches nothing, and is
answered the same way. A number that is not one of the user's recommendations is a 404."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from actors.bandit_book import segment_key
from fincoach.cache.predictions import ON_FEEDBACK
from fincoach.db.queries import recommendations as q
from fincoach.db.tables import RecommendationFeedback
from fincoach.errors import NotFound
from fincoach.features.vocab import STRATEGIES
from fincoach.usecases import events, quotas
from fincoach.usecases.context import Context
from schemas.coaching import FeedbackRequest, FeedbackResponse

SUBMITTED = "Feedback submitted successfully"
MAX_ID = 2**63 - 1


def reward_of(feedback_type: str | None, helpful: bool) -> float:
    """1 for implemented or helpful, 0 for dismissed or not helpful."""
    if feedback_type == "implemented":
        return 1.0
    if feedback_type == "dismissed":
        return 0.0
    return 1.0 if helpful else 0.0


def _answer(row: RecommendationFeedback, *, duplicate: bool, updated: bool) -> FeedbackResponse:
    return FeedbackResponse(
        message=SUBMITTED,
        feedback_id=str(row.recommendation_id),
        id=row.id,
        recommendation_id=row.recommendation_id,
        reward=row.reward,
        duplicate=duplicate,
        bandit_updated=updated,
    )


def issued_id(recommendation_id: str) -> int | None:
    """The recommendation id as this backend issues them (a positive number), else None."""
    if recommendation_id.isascii() and recommendation_id.isdigit():
        value = int(recommendation_id)
        if 0 < value <= MAX_ID:
            return value
    return None


async def give(
    ctx: Context,
    session: AsyncSession,
    user_id: int,
    body: FeedbackRequest,
    session_id: str | None = None,
) -> FeedbackResponse:
    """Store the feedback, then teach the bandit. A repeated feedback for the same
    recommendation is answered with the stored one and teaches nothing twice."""
    rec_id = issued_id(str(body.recommendation_id))
    if rec_id is None:
        return await _legacy(ctx, session, user_id, body, session_id)
    rec = await q.get_recommendation(session, user_id, rec_id)
    if rec is None:
        raise NotFound(f"Recommendation {body.recommendation_id} not found")
    strategy, segment_id = rec.strategy, rec.segment_id
    existing = await q.get_feedback(session, rec_id)
    if existing is not None:
        return _answer(existing, duplicate=True, updated=False)
    teaches = strategy in STRATEGIES and await quotas.teaches_bandit(
        session, ctx.settings, user_id, segment_id
    )
    feedback = await q.add_feedback(
        session,
        recommendation_id=rec_id,
        user_id=user_id,
        feedback_type=body.feedback_type or ("helpful" if body.helpful else "not_helpful"),
        helpful=body.helpful,
        reward=reward_of(body.feedback_type, body.helpful),
        feedback_text=body.feedback_text,
        teaches=teaches,
    )
    try:
        await session.commit()
    except IntegrityError:  # a concurrent duplicate won the race
        await session.rollback()
        existing = await q.get_feedback(session, rec_id)
        assert existing is not None
        return _answer(existing, duplicate=True, updated=False)
    await ctx.predictions.invalidate(user_id, ON_FEEDBACK)
    updated = False
    if teaches:
        updated = await ctx.models.bandit_update(
            feedback.id, strategy, segment_key(segment_id), feedback.reward
        )
    return _answer(feedback, duplicate=False, updated=updated)


async def _legacy(
    ctx: Context,
    session: AsyncSession,
    user_id: int,
    body: FeedbackRequest,
    session_id: str | None,
) -> FeedbackResponse:
    await events.record_interaction(
        ctx,
        user_id,
        "recommendation_interaction",
        {
            "interaction": "legacy_feedback",
            "recommendation_id": str(body.recommendation_id),
            "interaction_type": "helpful" if body.helpful else "not_helpful",
            "feedback_text": body.feedback_text,
        },
        session_id,
        session,
    )
    return FeedbackResponse(
        message=SUBMITTED,
        feedback_id=str(body.recommendation_id),
        id=None,
        recommendation_id=None,
        reward=reward_of(body.feedback_type, body.helpful),
        duplicate=False,
        bandit_updated=False,
    )

"""Recommendations and their feedback. Functions take ``session`` and never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.tables import RecommendationFeedback, RecommendationHistory


async def add_recommendation(session: AsyncSession, **values: Any) -> RecommendationHistory:
    row = RecommendationHistory(**values)
    session.add(row)
    await session.flush()
    return row


async def get_recommendation(
    session: AsyncSession, user_id: int, recommendation_id: int
) -> RecommendationHistory | None:
    """The user's recommendation with this id (another user's is None, as a missing one)."""
    return await session.scalar(
        select(RecommendationHistory).where(
            RecommendationHistory.id == recommendation_id,
            RecommendationHistory.user_id == user_id,
        )
    )


async def get_feedback(
    session: AsyncSession, recommendation_id: int
) -> RecommendationFeedback | None:
    return await session.scalar(
        select(RecommendationFeedback).where(
            RecommendationFeedback.recommendation_id == recommendation_id
        )
    )


async def add_feedback(session: AsyncSession, **values: Any) -> RecommendationFeedback:
    row = RecommendationFeedback(**values)
    session.add(row)
    return row


async def history(
    session: AsyncSession, user_id: int, *, limit: int, offset: int
) -> list[tuple[RecommendationHistory, RecommendationFeedback | None]]:
    """The user's recommendations, newest first, each with its feedback (or None)."""
    rows = await session.execute(
        select(RecommendationHistory, RecommendationFeedback)
        .outerjoin(
            RecommendationFeedback,
            RecommendationFeedback.recommendation_id == RecommendationHistory.id,
        )
        .where(RecommendationHistory.user_id == user_id)
        .order_by(RecommendationHistory.created_at.desc(), RecommendationHistory.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [(r, f) for r, f in rows.all()]


async def action_rewards(
    session: AsyncSession, segment_id: int | None
) -> list[tuple[int, float, int]]:
    """(action id, mean reward, feedback count) per action among this segment's feedback."""
    rows = await session.execute(
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
    return [(int(a), float(avg), int(n)) for a, avg, n in rows.all()]


async def strategy_rewards_since(
    session: AsyncSession, since: datetime
) -> list[tuple[str, int, float]]:
    """(strategy, feedback count, mean reward) of the feedback given since ``since``."""
    rows = await session.execute(
        select(
            RecommendationHistory.strategy,
            func.count(),
            func.avg(RecommendationFeedback.reward),
        )
        .join(
            RecommendationFeedback,
            RecommendationFeedback.recommendation_id == RecommendationHistory.id,
        )
        .where(RecommendationFeedback.created_at >= since)
        .group_by(RecommendationHistory.strategy)
    )
    return [(str(s), int(n), float(r or 0.0)) for s, n, r in rows.all()]


async def bandit_counts(session: AsyncSession) -> list[tuple[str, int | None, int, float, int]]:
    """(strategy, segment id, pulls, reward sum, highest feedback id) per strategy and segment,
    of the feedbacks that teach (within each user's cap): what the bandit's statistics are
    rebuilt from."""
    rows = await session.execute(
        select(
            RecommendationHistory.strategy,
            RecommendationHistory.segment_id,
            func.count(),
            func.sum(RecommendationFeedback.reward),
            func.max(RecommendationFeedback.id),
        )
        .join(
            RecommendationHistory,
            RecommendationHistory.id == RecommendationFeedback.recommendation_id,
        )
        .where(RecommendationFeedback.teaches.is_(True))
        .group_by(RecommendationHistory.strategy, RecommendationHistory.segment_id)
    )
    return [
        (str(s), None if g is None else int(g), int(n), float(r or 0.0), int(m or 0))
        for s, g, n, r, m in rows.all()
    ]


async def count_recommendations(session: AsyncSession, user_id: int) -> int:
    total = await session.scalar(
        select(func.count())
        .select_from(RecommendationHistory)
        .where(RecommendationHistory.user_id == user_id)
    )
    return int(total or 0)

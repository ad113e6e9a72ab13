"""Counts behind per-user quotas and the bandit's per-user teaching cap. Functions take
``session`` and never commit."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.tables import (
    EventDay,
    Goal,
    RecommendationFeedback,
    RecommendationHistory,
    Transaction,
)


async def goal_count(session: AsyncSession, user_id: int) -> int:
    n = await session.scalar(select(func.count()).select_from(Goal).where(Goal.user_id == user_id))
    return int(n or 0)


async def events_on(session: AsyncSession, user_id: int, day: date) -> int:
    """The user's events stamped on this UTC day (from the feature store's day counts)."""
    n = await session.scalar(
        select(func.coalesce(func.sum(EventDay.n), 0)).where(
            EventDay.user_id == user_id, EventDay.day == day
        )
    )
    return int(n or 0)


async def transactions_created_since(session: AsyncSession, user_id: int, since: datetime) -> int:
    n = await session.scalar(
        select(func.count())
        .select_from(Transaction)
        .where(Transaction.user_id == user_id, Transaction.created_at >= since)
    )
    return int(n or 0)


async def teaching_feedbacks_since(
    session: AsyncSession, user_id: int, segment_id: int | None, since: datetime
) -> int:
    """The user's feedbacks since ``since`` that taught the bandit in this segment (any
    strategy)."""
    segment = (
        RecommendationHistory.segment_id.is_(None)
        if segment_id is None
        else RecommendationHistory.segment_id == segment_id
    )
    n = await session.scalar(
        select(func.count())
        .select_from(RecommendationFeedback)
        .join(
            RecommendationHistory,
            RecommendationHistory.id == RecommendationFeedback.recommendation_id,
        )
        .where(
            RecommendationFeedback.user_id == user_id,
            RecommendationFeedback.teaches.is_(True),
            RecommendationFeedback.created_at >= since,
            segment,
        )
    )
    return int(n or 0)

"""Segment rows (user_segments has one row per user). Functions take ``session`` and never
commit: the caller owns the transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.tables import UserSegment, Wallet
from fincoach.features.state import BEHAVIOR_FEATURE_NAMES

# Built once: it runs on every recommendation.
_SEGMENT = select(UserSegment).where(UserSegment.user_id == bindparam("user_id"))


async def get_segment(session: AsyncSession, user_id: int) -> UserSegment | None:
    """The user's stored segment, or None when none was assigned yet."""
    return await session.scalar(_SEGMENT, {"user_id": user_id})


async def upsert_segment(
    session: AsyncSession, user_id: int, assigned: dict[str, Any], features: np.ndarray
) -> UserSegment:
    """Insert or update the user's segment row; the caller commits."""
    values = {
        "segment_id": int(assigned["segment_id"]),
        "segment_name": assigned["segment_name"],
        "confidence": float(assigned["confidence"]),
        "features": dict(zip(BEHAVIOR_FEATURE_NAMES, map(float, features), strict=True)),
        "model_version": assigned.get("model_version"),
    }
    row = await get_segment(session, user_id)
    if row is None:
        row = UserSegment(user_id=user_id, **values)
        session.add(row)
        try:
            async with session.begin_nested():
                await session.flush()
            return row
        except IntegrityError:  # another request stored it first: update that row instead
            row = await get_segment(session, user_id)
            assert row is not None
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = datetime.now(UTC)
    await session.flush()
    return row


async def peer_features(
    session: AsyncSession, segment_id: int, exclude_user: int
) -> list[dict[str, Any]]:
    """The stored behavioral features of the segment's users other than ``exclude_user``."""
    rows = await session.scalars(
        select(UserSegment.features).where(
            UserSegment.segment_id == segment_id, UserSegment.user_id != exclude_user
        )
    )
    return list(rows.all())


async def peer_balances(session: AsyncSession, segment_id: int, exclude_user: int) -> list[float]:
    """The wallet balances of the segment's users other than ``exclude_user``."""
    rows = await session.scalars(
        select(Wallet.balance)
        .join(UserSegment, UserSegment.user_id == Wallet.user_id)
        .where(UserSegment.segment_id == segment_id, UserSegment.user_id != exclude_user)
    )
    return [float(b) for b in rows.all()]


async def segment_mix(session: AsyncSession) -> list[tuple[int, int, float]]:
    """(segment id, users, mean confidence) per segment."""
    rows = await session.execute(
        select(UserSegment.segment_id, func.count(), func.avg(UserSegment.confidence)).group_by(
            UserSegment.segment_id
        )
    )
    return [(int(s), int(n), float(c)) for s, n, c in rows.all()]

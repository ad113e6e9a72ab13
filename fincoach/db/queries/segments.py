"""Storing segment assignments (user_segments has one row per user)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.tables import UserSegment
from fincoach.features.state import BEHAVIOR_FEATURE_NAMES


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
    row = await session.scalar(select(UserSegment).where(UserSegment.user_id == user_id))
    if row is None:
        row = UserSegment(user_id=user_id, **values)
        session.add(row)
        try:
            async with session.begin_nested():
                await session.flush()
            return row
        except IntegrityError:  # another request stored it first: update that row instead
            row = await session.scalar(select(UserSegment).where(UserSegment.user_id == user_id))
            assert row is not None
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = datetime.now(UTC)
    await session.flush()
    return row

"""Segment rows (user_segments has one row per user). Functions take ``session`` and never
commit: the caller owns the transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.tables import UserSegment
from fincoach.features.state import BEHAVIOR_FEATURE_NAMES

# Built once: it runs on every recommendation.
_SEGMENT = select(UserSegment).where(UserSegment.user_id == bindparam("user_id"))


async def get_segment(session: AsyncSession, user_id: int) -> UserSegment | None:
    """The user's stored segment, or None when none was assigned yet."""
    return await session.scalar(_SEGMENT, {"user_id": user_id})


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(UserSegment)
    if dialect == "sqlite":
        return sqlite.insert(UserSegment)
    raise ValueError(f"no upsert for database dialect {dialect!r}")


async def upsert_segment(
    session: AsyncSession, user_id: int, assigned: dict[str, Any], features: np.ndarray
) -> UserSegment:
    """Insert or update the user's segment row in one statement (INSERT ... ON CONFLICT (user_id)
    DO UPDATE), so parallel first assignments of one user never collide; the caller commits."""
    now = datetime.now(UTC)
    values = {
        "segment_id": int(assigned["segment_id"]),
        "segment_name": assigned["segment_name"],
        "confidence": float(assigned["confidence"]),
        "features": dict(zip(BEHAVIOR_FEATURE_NAMES, map(float, features), strict=True)),
        "model_version": assigned.get("model_version"),
        "updated_at": now,
    }
    stmt = _insert(session).values(user_id=user_id, created_at=now, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[UserSegment.user_id],
            set_={name: stmt.excluded[name] for name in values},
        )
    )
    # The row as stored, replacing any copy this session read before.
    row = await session.scalar(
        _SEGMENT.execution_options(populate_existing=True), {"user_id": user_id}
    )
    assert row is not None
    return row


async def segment_mix(session: AsyncSession) -> list[tuple[int, int, float]]:
    """(segment id, users, mean confidence) per segment."""
    rows = await session.execute(
        select(UserSegment.segment_id, func.count(), func.avg(UserSegment.confidence)).group_by(
            UserSegment.segment_id
        )
    )
    return [(int(s), int(n), float(c)) for s, n, c in rows.all()]

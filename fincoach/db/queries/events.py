"""Reading a user's behavioral events for analysis (timestamps as epoch seconds, as in
``db.queries.features``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.queries.features import epoch_seconds
from fincoach.db.tables import BehavioralEvent
from fincoach.features.frames import EVENT_CODES, EventFrame


async def load_event_window(
    session: AsyncSession, user_id: int, *, days: int = 30, as_of: datetime | None = None
) -> tuple[EventFrame, np.ndarray, np.datetime64]:
    """The user's events in ``[as_of - days, as_of)``, their session ids (aligned, None where
    missing) and ``as_of`` as ``datetime64[s]``."""
    as_of = as_of or datetime.now(UTC)
    rows = (
        await session.execute(
            select(
                epoch_seconds(BehavioralEvent.timestamp),
                BehavioralEvent.event_type,
                BehavioralEvent.session_id,
            )
            .where(
                BehavioralEvent.user_id == user_id,
                BehavioralEvent.timestamp >= as_of - timedelta(days=days),
                BehavioralEvent.timestamp < as_of,
            )
            .order_by(BehavioralEvent.timestamp, BehavioralEvent.id)
        )
    ).all()
    end = np.datetime64(as_of.astimezone(UTC).replace(tzinfo=None), "s")
    if not rows:
        return EventFrame.empty(), np.array([], dtype=object), end
    at, types, sessions = zip(*rows, strict=True)
    frame = EventFrame(
        np.array(at, dtype="int64").astype("datetime64[s]"),
        np.array([EVENT_CODES.get(t, 0) for t in types], dtype=int),
    )
    return frame, np.array(sessions, dtype=object), end


async def events_since(
    session: AsyncSession, user_id: int, since: datetime
) -> list[tuple[datetime, str, dict[str, Any]]]:
    """(timestamp, event type, event data) of the user's events since ``since``."""
    rows = await session.execute(
        select(
            BehavioralEvent.timestamp, BehavioralEvent.event_type, BehavioralEvent.event_data
        ).where(BehavioralEvent.user_id == user_id, BehavioralEvent.timestamp >= since)
    )
    return [(at, str(t), d if isinstance(d, dict) else {}) for at, t, d in rows.all()]

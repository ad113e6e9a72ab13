"""Behavioral events: recorded through the group-commit writer (scrubbed of personal data, once
per client id), summarized over 30 days, and read beside the spending behavior as insights."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.queries.events import load_event_window
from fincoach.db.queries.features import load_snapshot
from fincoach.tracking.analysis import (
    behavior_summary,
    detect_behavior_change,
    engagement_components,
    engagement_score_100,
)
from fincoach.tracking.privacy import scrub
from fincoach.usecases.context import Context
from fincoach.usecases.segments import behavior_dict
from schemas.behavior import BehavioralInsightsResponse, EventSummaryResponse
from schemas.events import EventRequest

SUMMARY_DAYS = 30


def stored_event_id(user_id: int, client_id: str) -> str:
    """Event ids are unique per user: the stored key is ``<user>:<client id>``, so one user's
    ids can neither collide with nor reveal another's."""
    return f"{user_id}:{client_id}"


def event_row(
    user_id: int, event: EventRequest, session_id: str | None
) -> tuple[str, dict[str, Any]]:
    """(the client's event id, the row to store), personal data scrubbed. ``session_id``: the
    event's own, else the request's."""
    client_id = event.event_id or uuid.uuid4().hex
    row = {
        "event_id": stored_event_id(user_id, client_id),
        "user_id": user_id,
        "event_type": event.event_type,
        "event_data": scrub(event.event_data),
        "session_id": event.session_id or session_id,
        "timestamp": (event.timestamp or datetime.now(UTC)).astimezone(UTC),
    }
    return client_id, row


async def record(
    ctx: Context, user_id: int, events: Sequence[EventRequest], session_id: str | None
) -> list[tuple[str, bool]]:
    """Write the events (all or none) and wait for their commit: (client id, stored?) for each,
    stored False for an id this user sent before."""
    pairs = [event_row(user_id, e, session_id) for e in events]
    stored = await ctx.events.submit([row for _, row in pairs])
    return [(client_id, s) for (client_id, _), s in zip(pairs, stored, strict=True)]


def page_view_row(
    user_id: int, route: str, method: str | None, status: int, session_id: str
) -> dict[str, Any]:
    """The page_view event of one authenticated API request: the route template, never ids."""
    return {
        "event_id": stored_event_id(user_id, f"pv-{uuid.uuid4().hex}"),
        "user_id": user_id,
        "event_type": "page_view",
        "event_data": {"route": route, "method": method, "status": status},
        "session_id": session_id,
        "timestamp": datetime.now(UTC),
    }


async def summary(session: AsyncSession, user_id: int) -> EventSummaryResponse:
    """The last 30 days of the user's events: counts, sessions, engagement (0-100), and whether
    the activity of the last 7 days differs from the 23 before."""
    events, session_ids, as_of = await load_event_window(session, user_id, days=SUMMARY_DAYS)
    activity = behavior_summary(events, as_of, days=SUMMARY_DAYS, session_ids=session_ids)
    change = detect_behavior_change(events, as_of)
    return EventSummaryResponse.model_validate(
        {
            "summary": dataclasses.asdict(activity),
            "engagement_score": round(engagement_score_100(activity), 1),
            "engagement_components": {
                k: round(v, 4) for k, v in engagement_components(activity).items()
            },
            "behavior_change": dataclasses.asdict(change),
        }
    )


def _insights(activity: EventSummaryResponse, behavior: dict[str, float]) -> list[str]:
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


async def behavioral_insights(session: AsyncSession, user_id: int) -> BehavioralInsightsResponse:
    """The last 30 days of app activity beside the spending behavior the models see, with
    plain-language insights."""
    activity = await summary(session, user_id)
    behavior = behavior_dict(await load_snapshot(session, user_id))
    return BehavioralInsightsResponse(
        activity=activity,
        spending_behavior={k: round(v, 4) for k, v in behavior.items()},
        insights=_insights(activity, behavior),
    )

"""Behavioral events: recorded through the group-commit writer (scrubbed of personal data, once
per client id), summarized over 30 days, and read beside the spending behavior as insights."""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.queries.events import events_since, load_event_window
from fincoach.db.queries.features import load_snapshot
from fincoach.db.queries.segments import get_segment
from fincoach.tracking.analysis import (
    behavior_summary,
    detect_behavior_change,
    engagement_components,
    engagement_score_100,
)
from fincoach.tracking.privacy import scrub
from fincoach.usecases import quotas
from fincoach.usecases.context import Context
from fincoach.usecases.offload import run_cpu
from fincoach.usecases.segments import behavior_dict
from schemas.behavior import BehavioralInsightsResponse, EventSummaryResponse
from schemas.events import EventRequest
from schemas.original import BehaviorAggregate

# The original FinCoach engagement weights (0-1: the weighted share of valuable events).
ENGAGEMENT_WEIGHTS = {
    "page_view": 1.0,
    "recommendation_interaction": 3.0,
    "purchase": 5.0,
    "goal_modification": 4.0,
}

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


def _event_rows(
    user_id: int, events: Sequence[EventRequest], session_id: str | None
) -> list[tuple[str, dict[str, Any]]]:
    return [event_row(user_id, e, session_id) for e in events]


async def _check_quota(
    ctx: Context, session: AsyncSession | None, user_id: int, adding: int
) -> None:
    """The user's event quota, read on the request's session when there is one: a second
    connection per request could exhaust the pool under a burst (each request waiting for
    one while holding one). A transaction the check opens is ended at once, so that no
    connection is held while the batch commits."""
    if session is None:
        async with ctx.sessions() as own:
            await quotas.check_events(own, ctx.settings, user_id, adding)
        return
    opened = not session.in_transaction()
    try:
        await quotas.check_events(session, ctx.settings, user_id, adding)
    finally:
        if opened:
            await session.rollback()


async def record(
    ctx: Context,
    user_id: int,
    events: Sequence[EventRequest],
    session_id: str | None,
    session: AsyncSession | None = None,
) -> list[tuple[str, bool]]:
    """Write the events (all or none) and wait for their commit: (client id, stored?) for each,
    stored False for an id this user sent before. ``session``: the request's, for the quota
    check."""
    await _check_quota(ctx, session, user_id, len(events))
    # Scrubbing is linear but not free (up to 8 KB per event, 500 events a batch): off the
    # event loop, with the other CPU-heavy work.
    pairs = await run_cpu(ctx.settings, _event_rows, user_id, events, session_id)
    stored = await ctx.events.submit([row for _, row in pairs])
    return [(client_id, s) for (client_id, _), s in zip(pairs, stored, strict=True)]


async def record_interaction(
    ctx: Context,
    user_id: int,
    event_type: str,
    data: dict[str, Any],
    session_id: str | None,
    session: AsyncSession | None = None,
) -> None:
    """An interaction the original API tracks (a transaction viewed, a recommendation's legacy
    feedback) as a behavioral event, committed before the answer."""
    event = EventRequest.model_validate({"event_type": event_type, "event_data": data})
    await record(ctx, user_id, [event], session_id, session)


def _interaction(data: dict[str, Any]) -> str:
    return str(data.get("interaction_type") or data.get("interaction") or "unknown")[:60]


def _aggregate(
    user_id: int, days: int, found: list[tuple[datetime, str, dict[str, Any]]]
) -> BehaviorAggregate:
    counts = Counter(t for _, t, _ in found)
    patterns: dict[str, Counter[str]] = {}
    for _, event_type, data in found:
        patterns.setdefault(event_type, Counter())[_interaction(data)] += 1
    total = sum(counts.values())
    weighted = sum(n * ENGAGEMENT_WEIGHTS.get(t, 1.0) for t, n in counts.items())
    top = max(ENGAGEMENT_WEIGHTS.values())
    return BehaviorAggregate(
        user_id=str(user_id),
        period_days=days,
        total_events=total,
        event_counts=dict(counts),
        interaction_patterns={t: dict(c) for t, c in patterns.items()},
        behavior_diversity=len(counts),
        engagement_score=round(min(1.0, weighted / (total * top)), 3) if total else 0.0,
        generated_at=datetime.now(UTC).isoformat(),
    )


async def aggregate(
    session: AsyncSession, user_id: int, days: int, event_type: str | None = None
) -> BehaviorAggregate:
    """The original API's behavior aggregate: events of the last ``days`` days (of one type if
    given) by type and by interaction, their diversity and a 0-1 engagement score."""
    found = await events_since(session, user_id, datetime.now(UTC) - timedelta(days=days))
    if event_type is not None:
        found = [e for e in found if e[1] == event_type]
    return _aggregate(user_id, days, found)


CHANGE_RECENT_DAYS = 7
CHANGE_BASELINE_DAYS = 23


async def behavior_changes(session: AsyncSession, user_id: int) -> list[dict[str, Any]]:
    """Event types whose count of the last 7 days is over twice or under half their weekly rate
    of the 23 days before, and interaction kinds that are new this week."""
    now = datetime.now(UTC)
    split = now - timedelta(days=CHANGE_RECENT_DAYS)
    found = await events_since(session, user_id, split - timedelta(days=CHANGE_BASELINE_DAYS))
    recent = [e for e in found if e[0] >= split]
    before = [e for e in found if e[0] < split]
    recent_counts, before_counts = (
        Counter(t for _, t, _ in recent),
        Counter(t for _, t, _ in before),
    )
    changes: list[dict[str, Any]] = []
    for event_type in sorted(before_counts):
        weekly = before_counts[event_type] / (CHANGE_BASELINE_DAYS / CHANGE_RECENT_DAYS)
        ratio = recent_counts.get(event_type, 0) / weekly
        if ratio > 2.0 or ratio < 0.5:
            up = ratio > 2.0
            changes.append(
                {
                    "type": "increased_activity" if up else "decreased_activity",
                    "event_type": event_type,
                    "change_ratio": round(ratio, 3),
                    "description": f"Significant {'increase' if up else 'decrease'} in "
                    f"{event_type} activity",
                }
            )
    seen = {(t, _interaction(d)) for _, t, d in before}
    for pattern in sorted({(t, _interaction(d)) for _, t, d in recent} - seen):
        changes.append(
            {
                "type": "new_behavior_pattern",
                "pattern": f"{pattern[0]}:{pattern[1]}",
                "description": f"New behavior pattern detected: {pattern[0]} {pattern[1]}",
            }
        )
    return changes


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
    segment = await get_segment(session, user_id)
    return BehavioralInsightsResponse(
        activity=activity,
        spending_behavior={k: round(v, 4) for k, v in behavior.items()},
        insights=_insights(activity, behavior),
        user_id=str(user_id),
        behavior_data=await aggregate(session, user_id, SUMMARY_DAYS),
        behavior_changes=await behavior_changes(session, user_id),
        segment_info=None
        if segment is None
        else {
            "segment_id": segment.segment_id,
            "segment_name": segment.segment_name,
            "confidence": segment.confidence,
            "updated_at": segment.updated_at.isoformat(),
        },
        summary_generated_at=datetime.now(UTC).isoformat(),
    )

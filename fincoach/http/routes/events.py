"""Behavioral events: ``POST /events``, ``POST /events/batch`` and ``GET /events/summary``.

Every event is validated (schemas/events.py), scrubbed of personal data (tracking/privacy.py)
and handed to the replica's group-commit batcher; the answer is 202 only once the batch that
holds it is committed, so an acknowledged event is never lost. A retried ``event_id`` is stored
once (the answer says ``stored: false``).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from fincoach.db.queries.events import load_event_window
from fincoach.http.deps import CurrentUser, SessionDep
from fincoach.tracking.analysis import (
    behavior_summary,
    detect_behavior_change,
    engagement_components,
    engagement_score_100,
)
from fincoach.tracking.batcher import EventBatcher
from fincoach.tracking.privacy import scrub
from schemas.behavior import EventSummaryResponse
from schemas.events import EventAccepted, EventBatchAccepted, EventBatchRequest, EventRequest
from schemas.problem import AUTHENTICATED, problem_responses

router = APIRouter(prefix="/events", tags=["events"], responses=problem_responses(*AUTHENTICATED))

SUMMARY_DAYS = 30


def stored_event_id(user_id: int, client_id: str) -> str:
    """Event ids are unique per user: the stored key is ``<user>:<client id>``, so one user's
    ids can neither collide with nor reveal another's."""
    return f"{user_id}:{client_id}"


def event_row(
    user_id: int,
    *,
    event_type: str,
    event_id: str | None,
    timestamp: datetime | None,
    session_id: str | None,
    event_data: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    """(the client's event id, the row to store), personal data scrubbed."""
    client_id = event_id or uuid.uuid4().hex
    row = {
        "event_id": stored_event_id(user_id, client_id),
        "user_id": user_id,
        "event_type": event_type,
        "event_data": scrub(event_data),
        "session_id": session_id,
        "timestamp": (timestamp or datetime.now(UTC)).astimezone(UTC),
    }
    return client_id, row


def batcher_of(request: Request) -> EventBatcher:
    return request.app.state.events


def _session_of(request: Request, body_session: str | None) -> str | None:
    return body_session or getattr(request.state, "session_id", None)


def _row_for(request: Request, user_id: int, event: EventRequest) -> tuple[str, dict[str, Any]]:
    return event_row(
        user_id,
        event_type=event.event_type,
        event_id=event.event_id,
        timestamp=event.timestamp,
        session_id=_session_of(request, event.session_id),
        event_data=event.event_data,
    )


@router.post(
    "",
    status_code=202,
    response_model=EventAccepted,
    responses=problem_responses(422, 503),
)
async def post_event(body: EventRequest, request: Request, user: CurrentUser) -> EventAccepted:
    """Record one event; 202 once it is committed."""
    client_id, row = _row_for(request, user.id, body)
    (stored,) = await batcher_of(request).submit([row])
    return EventAccepted(event_id=client_id, stored=stored)


@router.post(
    "/batch",
    status_code=202,
    response_model=EventBatchAccepted,
    responses=problem_responses(422, 503),
)
async def post_event_batch(
    body: EventBatchRequest, request: Request, user: CurrentUser
) -> EventBatchAccepted:
    """Record up to 500 events at once; all are validated first (one bad event rejects the
    batch with a 422 naming it), then 202 once all are committed."""
    pairs = [_row_for(request, user.id, e) for e in body.events]
    stored = await batcher_of(request).submit([row for _, row in pairs])
    return EventBatchAccepted(
        accepted=sum(stored),
        duplicates=len(stored) - sum(stored),
        event_ids=[client_id for client_id, _ in pairs],
    )


async def summarize_events(session: Any, user_id: int) -> EventSummaryResponse:
    events, session_ids, as_of = await load_event_window(session, user_id, days=SUMMARY_DAYS)
    summary = behavior_summary(events, as_of, days=SUMMARY_DAYS, session_ids=session_ids)
    change = detect_behavior_change(events, as_of)
    return EventSummaryResponse.model_validate(
        {
            "summary": dataclasses.asdict(summary),
            "engagement_score": round(engagement_score_100(summary), 1),
            "engagement_components": {
                k: round(v, 4) for k, v in engagement_components(summary).items()
            },
            "behavior_change": dataclasses.asdict(change),
        }
    )


@router.get("/summary", response_model=EventSummaryResponse)
async def read_event_summary(user: CurrentUser, session: SessionDep) -> EventSummaryResponse:
    """The last 30 days of your events: counts, sessions, engagement (0-100), and whether your
    activity of the last 7 days differs from the 23 before (exact conditional binomial test)."""
    return await summarize_events(session, user.id)

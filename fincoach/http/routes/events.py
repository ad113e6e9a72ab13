"""Behavioral events: ``POST /events``, ``POST /events/batch`` and ``GET /events/summary``.

Every event is validated (schemas/events.py), scrubbed of personal data (tracking/privacy.py)
and handed to the replica's group-commit batcher; the answer is 202 only once the batch that
holds it is committed, so an acknowledged event is never lost. A retried ``event_id`` is stored
once (the answer says ``stored: false``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from fincoach.http.deps import ContextDep, CurrentUser, SessionDep
from fincoach.usecases import events
from schemas.behavior import EventSummaryResponse
from schemas.events import EventAccepted, EventBatchAccepted, EventBatchRequest, EventRequest
from schemas.problem import AUTHENTICATED, problem_responses

router = APIRouter(prefix="/events", tags=["events"], responses=problem_responses(*AUTHENTICATED))


def _session_of(request: Request) -> str | None:
    """The session id the tracking middleware found (or made) for this request."""
    return getattr(request.state, "session_id", None)


@router.post(
    "",
    status_code=202,
    response_model=EventAccepted,
    responses=problem_responses(422, 503),
)
async def post_event(
    body: EventRequest, request: Request, ctx: ContextDep, user: CurrentUser, session: SessionDep
) -> EventAccepted:
    """Record one event; 202 once it is committed."""
    ((client_id, stored),) = await events.record(
        ctx, user.id, [body], _session_of(request), session
    )
    return EventAccepted(event_id=client_id, stored=stored)


@router.post(
    "/batch",
    status_code=202,
    response_model=EventBatchAccepted,
    responses=problem_responses(422, 503),
)
async def post_event_batch(
    body: EventBatchRequest,
    request: Request,
    ctx: ContextDep,
    user: CurrentUser,
    session: SessionDep,
) -> EventBatchAccepted:
    """Record up to 500 events at once; all are validated first (one bad event rejects the
    batch with a 422 naming it), then 202 once all are committed."""
    recorded = await events.record(ctx, user.id, body.events, _session_of(request), session)
    accepted = sum(stored for _, stored in recorded)
    return EventBatchAccepted(
        accepted=accepted,
        duplicates=len(recorded) - accepted,
        event_ids=[client_id for client_id, _ in recorded],
    )


@router.get("/summary", response_model=EventSummaryResponse)
async def read_event_summary(user: CurrentUser, session: SessionDep) -> EventSummaryResponse:
    """The last 30 days of your events: counts, sessions, engagement (0-100), and whether your
    activity of the last 7 days differs from the 23 before (exact conditional binomial test)."""
    return await events.summary(session, user.id)

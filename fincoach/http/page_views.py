"""Tracking middleware: a ``page_view`` event for each authenticated API request.

It records the route template (``/goals/{goal_id}``), never raw ids or query values, plus the
method and status; not for health, docs, metrics or the events API itself. The session id comes
from the ``X-Session-ID`` header or the ``fincoach_session`` cookie, and is created (and sent
back in both) when missing. The event is queued after the response has been sent, without
waiting for the database, so tracking never slows or fails a response; queued events are
written by the group-commit batcher and flushed on graceful shutdown.
"""

from __future__ import annotations

import logging
import re
import uuid
from http.cookies import SimpleCookie

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fincoach.usecases.events import page_view_row

logger = logging.getLogger("fincoach.events")

SESSION_HEADER = "x-session-id"
SESSION_COOKIE = "fincoach_session"
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
UNTRACKED_PREFIXES = ("/health", "/docs", "/redoc", "/openapi.json", "/metrics", "/events")


def _incoming_session(scope: Scope) -> str | None:
    headers = dict(scope.get("headers") or [])
    value = headers.get(SESSION_HEADER.encode(), b"").decode("latin-1").strip()
    if not value:
        cookie = headers.get(b"cookie", b"").decode("latin-1")
        if cookie:
            try:
                morsel = SimpleCookie(cookie).get(SESSION_COOKIE)
            except Exception:  # noqa: BLE001 - a malformed cookie header is just no session
                morsel = None
            value = morsel.value if morsel is not None else ""
    return value if value and _SESSION_ID.match(value) else None


class EventTrackingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNTRACKED_PREFIXES):
            await self.app(scope, receive, send)
            return
        session_id = _incoming_session(scope)
        created = session_id is None
        if session_id is None:
            session_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["session_id"] = session_id
        status = {"code": 0}

        async def send_with_session(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                if created and state.get("user_id") is not None:
                    headers = list(message.get("headers", []))
                    headers.append((b"x-session-id", session_id.encode()))
                    headers.append(
                        (
                            b"set-cookie",
                            f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; "
                            "SameSite=Lax".encode(),
                        )
                    )
                    message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_session)
        finally:
            self._track(scope, state, session_id, status["code"])

    @staticmethod
    def _track(scope: Scope, state: dict, session_id: str, status: int) -> None:
        user_id = state.get("user_id")
        route = scope.get("route")
        template = getattr(route, "path", None)
        ctx = getattr(getattr(scope.get("app"), "state", None), "ctx", None)
        if user_id is None or template is None or ctx is None:
            return
        try:
            ctx.events.record(
                page_view_row(user_id, template, scope.get("method"), status, session_id)
            )
        except Exception as exc:  # noqa: BLE001 - tracking must never fail a response
            logger.warning("page_view not tracked: %s", exc)

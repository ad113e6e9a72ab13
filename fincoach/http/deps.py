"""FastAPI dependencies: settings, the use cases' context, one DB session per request, the
authenticated user."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.config import Settings
from fincoach.db.engine import run_to_completion
from fincoach.db.tables import User
from fincoach.errors import InvalidToken, NotAuthenticated
from fincoach.http.ratelimit import enforce_user_limit
from fincoach.observability import metrics
from fincoach.usecases import accounts
from fincoach.usecases.context import Context
from fincoach.usecases.passwords import decode_access_token

logger = logging.getLogger("fincoach.api")
_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_context(request: Request) -> Context:
    return request.app.state.ctx


async def track_endpoint(request: Request) -> None:
    """Name the route template being served, for the fallback counter of the use cases (async:
    a sync dependency would set it in a worker thread's context, not the request's)."""
    route = request.scope.get("route")
    metrics.ENDPOINT.set(getattr(route, "path", None) or request.url.path)


async def no_cache_requested(request: Request) -> bool:
    """``Cache-Control: no-cache``: skip the prediction cache's lookup."""
    return "no-cache" in request.headers.get("cache-control", "").lower()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # Write use cases commit explicitly before answering, so a 2xx always means "durable";
    # anything left uncommitted is rolled back when the session closes.
    session: AsyncSession = request.app.state.ctx.sessions()
    try:
        yield session
    finally:
        try:
            await run_to_completion(session.close())
        except SQLAlchemyError as exc:
            # The close usually runs after the answer went out; a connection the database
            # dropped meanwhile (a restart) fails its rollback. Nothing is lost (whatever was to
            # last was committed before the answer), and the pool discards the connection. An
            # error the route raised still propagates.
            logger.warning(
                "closing a session failed (%s): connection discarded", type(exc).__name__
            )


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ContextDep = Annotated[Context, Depends(get_context)]
NoCache = Annotated[bool, Depends(no_cache_requested)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


def is_ops(request: Request) -> bool:
    """Whether the caller sent the operations token (FINCOACH_OPS_TOKEN), if one is set."""
    expected = request.app.state.settings.ops_token.get_secret_value()
    if not expected:
        return False
    sent = request.headers.get("x-ops-token", "")
    if not sent:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        sent = value.strip() if scheme.lower() == "bearer" else ""
    return hmac.compare_digest(sent.encode(), expected.encode())


async def require_ops(request: Request) -> None:
    """Dependency of operations endpoints: the operations token, else 401."""
    if not is_ops(request):
        raise NotAuthenticated("This endpoint needs the operations token (X-Ops-Token)")


async def get_current_user(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    token: Annotated[str | None, Depends(_bearer)],
) -> User:
    if not token:
        raise NotAuthenticated()
    claims = decode_access_token(token, settings)
    # Limited once the token is verified, before the database is asked about the user.
    enforce_user_limit(request, claims.user_id)
    user = await accounts.active_user(session, claims, ctx.users)
    if user is None:
        raise InvalidToken("Token does not belong to an active user")
    request.state.user_id = user.id  # for the tracking middleware
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]

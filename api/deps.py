"""FastAPI dependencies: settings, one DB session per request, the authenticated user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from api.ratelimit import enforce_user_limit
from api.security import decode_access_token
from config import Settings
from db.queries.users import get_user
from db.tables import User
from errors import InvalidToken, NotAuthenticated

_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # Write routes commit explicitly before answering, so a 2xx always means "durable";
    # anything left uncommitted is rolled back when the session closes.
    async with request.app.state.sessions() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_current_user(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(_bearer)],
) -> User:
    if not token:
        raise NotAuthenticated()
    user_id = decode_access_token(token, settings)
    # Limited once the token is verified, before the database is asked about the user.
    enforce_user_limit(request, user_id)
    user = await get_user(session, user_id)
    if user is None or not user.is_active:
        raise InvalidToken("Token does not belong to an active user")
    request.state.user_id = user.id  # for the tracking middleware
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]

"""Accounts: registration, password login, tokens, the profile, and deleting an account with
everything it owns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fincoach.config import Settings
from fincoach.db.queries import users as q
from fincoach.db.tables import User, UserProfile
from fincoach.features.vocab import PREDICTION_TYPES
from fincoach.usecases.active_users import ActiveUsers
from fincoach.usecases.context import Context
from fincoach.usecases.offload import run_cpu
from fincoach.usecases.passwords import (
    TokenClaims,
    create_access_token,
    dummy_hash,
    hash_password,
    verify_password,
)

# The most users one background run looks at.
MAX_ACTIVE = 2000
# Token issue times are whole seconds, and replicas' clocks differ a little.
TOKEN_CLOCK_SLACK_S = 30.0
# A new account's wallet starts here, as in the original FinCoach app.
OPENING_BALANCE = 1000.0


async def register(
    session: AsyncSession,
    settings: Settings,
    *,
    email: str,
    password: str,
    names: tuple[str, str],
    date_of_birth: date | None = None,
) -> User:
    """A new user with a profile and a wallet of OPENING_BALANCE, committed; a taken e-mail is
    EmailTaken."""
    user = await q.create_user(
        session,
        email=email,
        hashed_password=await run_cpu(settings, hash_password, password, settings),
        names=names,
        date_of_birth=date_of_birth,
        opening_balance=OPENING_BALANCE,
    )
    await session.commit()
    return user


async def authenticate(
    session: AsyncSession, settings: Settings, email: str, password: str
) -> User | None:
    """The active user with this e-mail and password, else None. An unknown e-mail costs the
    same hashing time as a wrong password, so answers do not tell which accounts exist."""
    # No account's e-mail holds NUL (and PostgreSQL cannot even compare one): unknown.
    user = None if "\x00" in email else await q.get_user_by_email(session, email)
    stored = user.hashed_password if user is not None else None
    ok = await run_cpu(settings, _verify, password, stored, settings)
    if not ok or user is None or not user.is_active:
        return None
    return user


def _verify(password: str, stored: str | None, settings: Settings) -> bool:
    # The dummy hash is made on first use, which costs a hash too: in the thread as well.
    return verify_password(password, stored or dummy_hash(settings), settings)


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int  # seconds
    user: User


def token_for(user: User, settings: Settings) -> IssuedToken:
    """A bearer token for the user: the token, its lifetime, and the user it names."""
    return IssuedToken(
        access_token=create_access_token(user.id, settings),
        expires_in=settings.token_ttl_minutes * 60,
        user=user,
    )


async def active_user(
    session: AsyncSession, claims: TokenClaims, recent: ActiveUsers | None = None
) -> User | None:
    """The user a verified token names, if it is active and the token was issued to it: a token
    older than the account (issued to a deleted account whose id a database reused) names
    nobody. ``recent`` answers for users found active a moment ago (see ``ActiveUsers``)."""
    user = recent.get(claims.user_id) if recent is not None else None
    if user is None:
        user = await q.get_user(session, claims.user_id)
        if user is None or not user.is_active:
            return None
        if recent is not None:
            session.expunge(user)
            recent.put(user)
    if claims.issued_at < user.created_at.timestamp() - TOKEN_CLOCK_SLACK_S:
        return None
    return user


async def profile(session: AsyncSession, user_id: int) -> UserProfile:
    """The user's profile (made, and committed, when missing)."""
    row = await q.get_profile(session, user_id)
    await session.commit()
    return row


async def update_profile(
    session: AsyncSession, user_id: int, changes: dict[str, Any]
) -> UserProfile:
    row = await q.update_profile(session, user_id, changes)
    await session.commit()
    return row


async def delete_account(ctx: Context, session: AsyncSession, user_id: int) -> None:
    """Delete the user and everything they own, in one transaction, then their cached
    predictions (a Redis cache keeps them apart from the database)."""
    await q.delete_user(session, user_id)
    await session.commit()
    ctx.users.forget(user_id)
    await ctx.predictions.invalidate(user_id, PREDICTION_TYPES)


async def recently_active(
    sessions: async_sessionmaker[AsyncSession], within: timedelta
) -> list[int]:
    """Users with a transaction or an event in the last ``within`` (at most MAX_ACTIVE)."""
    async with sessions() as session:
        return await q.active_user_ids(session, datetime.now(UTC) - within, limit=MAX_ACTIVE)

"""Accounts: registration, password login, the profile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fincoach.config import Settings
from fincoach.db.queries import users as q
from fincoach.db.tables import User, UserProfile
from fincoach.usecases.passwords import dummy_hash, hash_password, verify_password

# The most users one background run looks at.
MAX_ACTIVE = 2000


async def register(
    session: AsyncSession, settings: Settings, *, email: str, password: str, full_name: str | None
) -> User:
    """A new user with an empty profile, committed; a taken e-mail is a Conflict."""
    user = await q.create_user(
        session,
        email=email,
        hashed_password=hash_password(password, settings),
        full_name=full_name,
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
    hashed = user.hashed_password if user is not None else dummy_hash(settings)
    if not verify_password(password, hashed, settings) or user is None or not user.is_active:
        return None
    return user


async def active_user(session: AsyncSession, user_id: int) -> User | None:
    """The user a verified token names, if it still exists and is active."""
    user = await q.get_user(session, user_id)
    return user if user is not None and user.is_active else None


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


async def recently_active(
    sessions: async_sessionmaker[AsyncSession], within: timedelta
) -> list[int]:
    """Users with a transaction or an event in the last ``within`` (at most MAX_ACTIVE)."""
    async with sessions() as session:
        return await q.active_user_ids(session, datetime.now(UTC) - within, limit=MAX_ACTIVE)

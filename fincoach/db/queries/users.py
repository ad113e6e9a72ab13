"""User and profile queries. Functions take ``session`` and never commit: the caller owns the
transaction."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import delete as sa_delete
from sqlalchemy import select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.tables import BehavioralEvent, Transaction, User, UserProfile, Wallet
from fincoach.errors import EmailTaken


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.lower()))


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    hashed_password: str,
    names: tuple[str, str],
    date_of_birth: date | None = None,
    opening_balance: float = 0.0,
) -> User:
    """A user with a profile and a wallet holding ``opening_balance``; a taken e-mail is
    EmailTaken."""
    first_name, last_name = names
    user = User(
        email=email.lower(),
        hashed_password=hashed_password,
        first_name=first_name,
        last_name=last_name,
        date_of_birth=date_of_birth,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise EmailTaken("User with this email already exists") from exc
    session.add(UserProfile(user_id=user.id, opening_balance=opening_balance))
    session.add(Wallet(user_id=user.id, balance=opening_balance))
    await session.flush()
    return user


async def delete_user(session: AsyncSession, user_id: int) -> None:
    """The user and everything they own (profile, wallet, transactions, goals, events,
    recommendations, segment, cache): the foreign keys cascade."""
    await session.execute(sa_delete(User).where(User.id == user_id))


async def get_profile(session: AsyncSession, user_id: int) -> UserProfile:
    profile = await session.scalar(select(UserProfile).where(UserProfile.user_id == user_id))
    if profile is None:  # users made before profiles existed, or by hand
        profile = UserProfile(user_id=user_id)
        session.add(profile)
        await session.flush()
    return profile


async def update_profile(
    session: AsyncSession, user_id: int, changes: dict[str, Any]
) -> UserProfile:
    profile = await get_profile(session, user_id)
    for key, value in changes.items():
        setattr(profile, key, value)
    await session.flush()
    await session.refresh(profile)
    return profile


async def active_user_ids(session: AsyncSession, since: datetime, *, limit: int) -> list[int]:
    """Users with a transaction or an event since ``since``, in id order, at most ``limit``."""
    q = union(
        select(Transaction.user_id).where(Transaction.occurred_at >= since),
        select(BehavioralEvent.user_id).where(BehavioralEvent.timestamp >= since),
    ).subquery()
    ids = await session.scalars(select(q.c.user_id).distinct().order_by(q.c.user_id).limit(limit))
    return [int(i) for i in ids.all()]


async def all_user_ids(session: AsyncSession) -> list[int]:
    return [int(i) for i in (await session.scalars(select(User.id).order_by(User.id))).all()]

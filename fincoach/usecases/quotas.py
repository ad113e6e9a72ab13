"""Per-user quotas: what one account may create (goals in all, transactions and events a day).
A request past a quota is refused whole with a 429 that says which quota and when it frees,
or, for goals, a 422 (deleting one frees a place). Limits come from the settings; 0 turns one
off. Counts are read before the write; a user's goal and transaction writes take a per-user
lock in each process from the check to the commit, so parallel requests pass a quota by at most
one per ingress replica (events, written by the group commit, by at most the batches in
flight)."""

from __future__ import annotations

import asyncio
import weakref
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.config import Settings
from fincoach.db.queries import quotas as q
from fincoach.errors import VALIDATION_ERROR, CoachError, RateLimited

DAY = timedelta(days=1)


class TooManyGoals(CoachError):
    status = 422
    code = VALIDATION_ERROR
    title = "Invalid request"


_LOCKS: weakref.WeakValueDictionary[tuple[str, int], asyncio.Lock] = weakref.WeakValueDictionary()


def user_lock(kind: str, user_id: int) -> asyncio.Lock:
    """The process's lock for one user's writes of ``kind`` (held from the check to the
    commit)."""
    lock = _LOCKS.get((kind, user_id))
    if lock is None:
        lock = _LOCKS[(kind, user_id)] = asyncio.Lock()
    return lock


def _seconds_to_midnight(now: datetime) -> int:
    tomorrow = (now + DAY).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()))


async def check_goal(session: AsyncSession, settings: Settings, user_id: int) -> None:
    limit = settings.quota_goals_per_user
    if limit and await q.goal_count(session, user_id) >= limit:
        raise TooManyGoals(f"body: at most {limit} goals per user; delete one to add another")


async def check_events(
    session: AsyncSession, settings: Settings, user_id: int, adding: int
) -> None:
    limit = settings.quota_events_per_day
    if not limit:
        return
    now = datetime.now(UTC)
    if await q.events_on(session, user_id, now.date()) + adding > limit:
        raise RateLimited(
            f"Event quota reached: at most {limit} events per user per UTC day",
            retry_after=_seconds_to_midnight(now),
        )


async def check_transaction(session: AsyncSession, settings: Settings, user_id: int) -> None:
    limit = settings.quota_transactions_per_day
    if not limit:
        return
    now = datetime.now(UTC)
    if await q.transactions_created_since(session, user_id, now - DAY) >= limit:
        raise RateLimited(
            f"Transaction quota reached: at most {limit} new transactions per user in 24 hours",
            retry_after=3600,
        )


async def teaches_bandit(
    session: AsyncSession,
    settings: Settings,
    user_id: int,
    segment_id: int | None,
) -> bool:
    """Whether a new feedback of this user may teach the shared bandit: at most
    ``bandit_feedback_per_user_per_day`` in a segment in 24 hours (all strategies together),
    so that one account cannot steer a whole segment's estimates."""
    cap = settings.bandit_feedback_per_user_per_day
    if not cap:
        return True
    since = datetime.now(UTC) - DAY
    taught = await q.teaching_feedbacks_since(session, user_id, segment_id, since)
    return taught < cap

"""The group-commit batcher on a real database: batching, idempotency, flush on close,
and one bad row failing only itself."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.db.tables import BehavioralEvent, User
from fincoach.tracking.batcher import EventBatcher


async def _user(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(
            insert(User)
            .values(email=f"b-{uuid.uuid4().hex[:8]}@example.com", hashed_password="x")
            .returning(User.id)
        )
        return int(result.scalar_one())


def _row(user_id: int, event_id: str | None = None) -> dict:
    return {
        "event_id": event_id or f"{user_id}:{uuid.uuid4().hex}",
        "user_id": user_id,
        "event_type": "search",
        "event_data": {"q": "coffee"},
        "session_id": "s1",
        "timestamp": datetime.now(UTC),
    }


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(BehavioralEvent)) or 0)


async def test_concurrent_submits_share_commits(clean_engine: AsyncEngine) -> None:
    uid = await _user(clean_engine)
    batcher = EventBatcher(clean_engine, batch_size=10, max_delay_s=0.05)
    results = await asyncio.gather(*(batcher.submit([_row(uid)]) for _ in range(25)))
    await batcher.close()
    assert [r for (r,) in results] == [True] * 25
    assert await _count(clean_engine) == 25
    assert batcher.stats.rows == 25 and batcher.stats.batches <= 5


async def test_batch_size_one_commits_each_event(clean_engine: AsyncEngine) -> None:
    uid = await _user(clean_engine)
    batcher = EventBatcher(clean_engine, batch_size=1)
    await asyncio.gather(*(batcher.submit([_row(uid)]) for _ in range(6)))
    await batcher.close()
    assert batcher.stats.batches == 6 and await _count(clean_engine) == 6


async def test_a_retried_event_is_stored_once(clean_engine: AsyncEngine) -> None:
    uid = await _user(clean_engine)
    batcher = EventBatcher(clean_engine, batch_size=10, max_delay_s=0.05)
    same = f"{uid}:retry-1"
    # Twice in one batch, then once more later.
    assert await batcher.submit([_row(uid, same), _row(uid, same)]) == [True, False]
    assert await batcher.submit([_row(uid, same)]) == [False]
    await batcher.close()
    assert await _count(clean_engine) == 1
    assert batcher.stats.duplicates == 2


async def test_fire_and_forget_rows_are_flushed_on_close(clean_engine: AsyncEngine) -> None:
    uid = await _user(clean_engine)
    batcher = EventBatcher(clean_engine, batch_size=10, max_delay_s=1.0)
    for _ in range(23):
        assert batcher.record(_row(uid))
    await batcher.close()
    assert await _count(clean_engine) == 23
    assert not batcher.record(_row(uid)), "a closed batcher refuses (and counts) new rows"
    assert batcher.stats.dropped == 1


async def test_one_bad_row_fails_alone(clean_engine: AsyncEngine) -> None:
    uid = await _user(clean_engine)
    batcher = EventBatcher(clean_engine, batch_size=10, max_delay_s=0.05)
    good = batcher.submit([_row(uid)])
    bad = batcher.submit([_row(10**9)])  # no such user: the foreign key refuses it
    results = await asyncio.gather(good, bad, return_exceptions=True)
    await batcher.close()
    assert results[0] == [True]
    assert isinstance(results[1], Exception)
    assert await _count(clean_engine) == 1


async def test_page_views_wait_to_share_a_commit(clean_engine: AsyncEngine) -> None:
    """Rows nobody waits for gather for up to tracking_delay_s: 20 page views 5 ms apart are
    one commit, not 20 (nor 4, as with the 5 ms delay of rows a caller waits for)."""
    uid = await _user(clean_engine)
    batcher = EventBatcher(clean_engine, max_delay_s=0.005, tracking_delay_s=0.5)
    for _ in range(20):
        assert batcher.record(_row(uid))
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.6)
    assert await _count(clean_engine) == 20
    assert batcher.stats.batches == 1
    await batcher.close()


async def test_a_caller_does_not_wait_for_lingering_page_views(clean_engine: AsyncEngine) -> None:
    uid = await _user(clean_engine)
    batcher = EventBatcher(clean_engine, max_delay_s=0.01, tracking_delay_s=5.0)
    assert batcher.record(_row(uid))
    await asyncio.sleep(0.05)  # the page view's batch is open, lingering
    started = asyncio.get_running_loop().time()
    assert await batcher.submit([_row(uid)]) == [True]
    assert asyncio.get_running_loop().time() - started < 1.0  # not the 5 s page views may wait
    assert await _count(clean_engine) == 2 and batcher.stats.batches == 1
    await batcher.close()


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        EventBatcher(None, batch_size=0)  # type: ignore[arg-type]

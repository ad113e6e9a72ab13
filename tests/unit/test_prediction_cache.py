"""The prediction cache: the same contract on SQLite, PostgreSQL and Redis (hits, expiry by the
injected clock, default TTLs, invalidation by type and key prefix, upserts), plus keys and the
backend factory.

Redis runs when FINCOACH_TEST_REDIS_URL is set (CI sets it). Each test uses its own key prefix
and deletes only the keys under it: the Redis server is shared, so nothing is flushed.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from fincoach.cache import (
    CachedPrediction,
    CacheTtls,
    PredictionCache,
    RedisPredictionCache,
    SqlPredictionCache,
    key_prefix,
    make_cache,
    make_key,
)
from fincoach.cache.base import MAX_KEY_LENGTH, MAX_PREFIX_LENGTH
from fincoach.db.tables import PredictionCache as PredictionCacheRow
from fincoach.db.tables import User
from fincoach.features.vocab import PREDICTION_TYPES

REDIS_URL = os.environ.get("FINCOACH_TEST_REDIS_URL", "")
IN_CI = os.environ.get("CI", "").lower() == "true"
REDIS_SKIP_REASON = (
    "Redis cache tests skipped: set FINCOACH_TEST_REDIS_URL=redis://127.0.0.1:6379/15 to run them"
)
RUN_PREFIX = f"fincoach-test-{uuid.uuid4().hex[:12]}"
DEFAULT_TTLS = {"spending": 86400, "goal": 21600, "segment": 86400, "recommendation": 3600}
START = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


class FakeClock:
    """An injectable clock that moves only when told to."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def goal_key(goal_id: int, model: str = "v3", weeks: int = 4) -> str:
    return make_key(goal=goal_id, model=model, weeks=weeks)


# --- the contract, run once per backend ----------------------------------------------------


class _CacheContract:
    """Tests every backend must pass; subclasses provide the `cache` and `users` fixtures."""

    async def test_get_misses_an_empty_cache(
        self, cache: PredictionCache, users: list[int]
    ) -> None:
        assert await cache.get(users[0], "goal", goal_key(17)) is None

    async def test_get_returns_what_put_stored(
        self, cache: PredictionCache, users: list[int]
    ) -> None:
        data = {"probability": 0.73, "weeks": [1, 2, 3], "label": "on track ✓", "extra": None}
        stored = await cache.put(users[0], "goal", goal_key(17), data)
        hit = await cache.get(users[0], "goal", goal_key(17))
        assert hit == CachedPrediction(data=data, created_at=START, expires_at=stored.expires_at)
        assert hit.created_at.tzinfo is not None

    async def test_get_misses_once_the_ttl_has_passed(
        self, cache: PredictionCache, users: list[int], clock: FakeClock
    ) -> None:
        await cache.put(users[0], "recommendation", make_key(model="v1"), {"action": 3})
        clock.advance(3600 - 0.001)
        assert await cache.get(users[0], "recommendation", make_key(model="v1")) is not None
        clock.advance(0.001)
        assert await cache.get(users[0], "recommendation", make_key(model="v1")) is None

    @pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
    async def test_put_uses_the_default_ttl_of_each_type(
        self, cache: PredictionCache, users: list[int], clock: FakeClock, prediction_type: str
    ) -> None:
        ttl = DEFAULT_TTLS[prediction_type]
        entry = await cache.put(users[0], prediction_type, make_key(model="v1"), {"x": 1})
        assert entry.expires_at - entry.created_at == timedelta(seconds=ttl)
        clock.advance(ttl - 1)
        assert await cache.get(users[0], prediction_type, make_key(model="v1")) is not None
        clock.advance(1)
        assert await cache.get(users[0], prediction_type, make_key(model="v1")) is None

    async def test_put_with_ttl_s_overrides_the_default(
        self, cache: PredictionCache, users: list[int], clock: FakeClock
    ) -> None:
        entry = await cache.put(users[0], "segment", make_key(model="v1"), {"s": 2}, ttl_s=60)
        assert entry.expires_at == START + timedelta(seconds=60)
        clock.advance(60)
        assert await cache.get(users[0], "segment", make_key(model="v1")) is None

    async def test_put_overwrites_the_entry_under_the_same_key(
        self, cache: PredictionCache, users: list[int], clock: FakeClock
    ) -> None:
        key = goal_key(17)
        await cache.put(users[0], "goal", key, {"probability": 0.2}, ttl_s=60)
        clock.advance(30)
        second = await cache.put(users[0], "goal", key, {"probability": 0.9})
        hit = await cache.get(users[0], "goal", key)
        assert hit == second
        assert hit.data == {"probability": 0.9}
        assert hit.created_at == START + timedelta(seconds=30)
        clock.advance(60)  # past the first entry's expiry, well inside the second's
        assert await cache.get(users[0], "goal", key) == second

    async def test_concurrent_puts_of_one_key_leave_one_entry(
        self, cache: PredictionCache, users: list[int]
    ) -> None:
        key = make_key(model="v1", weeks=4)
        await asyncio.gather(*(cache.put(users[0], "spending", key, {"n": n}) for n in range(5)))
        hit = await cache.get(users[0], "spending", key)
        assert hit is not None and hit.data["n"] in range(5)
        assert await cache.invalidate(users[0], ["spending"]) == 1

    async def test_a_new_model_version_misses_the_old_entry(
        self, cache: PredictionCache, users: list[int]
    ) -> None:
        await cache.put(users[0], "goal", goal_key(17, model="v3"), {"p": 0.5})
        assert await cache.get(users[0], "goal", goal_key(17, model="v4")) is None
        assert await cache.get(users[0], "goal", goal_key(17, model="v3")) is not None

    async def test_entries_are_per_user_and_type(
        self, cache: PredictionCache, users: list[int]
    ) -> None:
        key = make_key(model="v1")
        await cache.put(users[0], "spending", key, {"who": "a"})
        assert await cache.get(users[1], "spending", key) is None
        assert await cache.get(users[0], "segment", key) is None

    async def test_invalidate_drops_the_given_types_of_that_user_only(
        self, cache: PredictionCache, users: list[int]
    ) -> None:
        a, b = users
        keys = {t: make_key(model="v1", n=i) for i, t in enumerate(PREDICTION_TYPES)}
        for user in (a, b):
            for prediction_type, key in keys.items():
                await cache.put(user, prediction_type, key, {"user": user})
        await cache.put(a, "goal", goal_key(18), {"user": a})

        dropped = await cache.invalidate(a, ["spending", "goal", "recommendation"])

        assert dropped == 4
        for prediction_type, key in keys.items():
            kept = await cache.get(a, prediction_type, key)
            assert (kept is not None) == (prediction_type == "segment"), prediction_type
            assert await cache.get(b, prediction_type, key) is not None, prediction_type
        assert await cache.get(a, "goal", goal_key(18)) is None
        assert await cache.invalidate(a, ["spending", "goal", "recommendation"]) == 0

    async def test_invalidate_with_a_key_prefix_drops_only_that_goal(
        self, cache: PredictionCache, users: list[int]
    ) -> None:
        a, b = users
        mine = [goal_key(17, weeks=4), goal_key(17, weeks=8), goal_key(17, model="v2")]
        others = [goal_key(1), goal_key(170), goal_key(171, weeks=8)]
        for key in mine + others:
            await cache.put(a, "goal", key, {"k": key})
        await cache.put(b, "goal", goal_key(17), {"k": "b"})
        await cache.put(a, "spending", goal_key(17), {"k": "spending"})

        assert key_prefix(goal=17) == "goal=17:"
        assert await cache.invalidate(a, ["goal"], key_prefix=key_prefix(goal=17)) == 3

        for key in mine:
            assert await cache.get(a, "goal", key) is None, key
        for key in others:
            assert await cache.get(a, "goal", key) is not None, key
        assert await cache.get(b, "goal", goal_key(17)) is not None
        assert await cache.get(a, "spending", goal_key(17)) is not None

    async def test_invalidate_prefix_is_exact_about_case_and_wildcards(
        self, cache: PredictionCache, users: list[int]
    ) -> None:
        await cache.put(users[0], "goal", make_key(model="V3", goal=1), {})
        await cache.put(users[0], "goal", make_key(model="v_x", goal=1), {})
        # LIKE would match both keys with the last prefix on SQLite (case-insensitive, "_").
        assert await cache.invalidate(users[0], ["goal"], key_prefix="model=v3:") == 0
        assert await cache.invalidate(users[0], ["goal"], key_prefix="model=v%") == 0
        assert await cache.invalidate(users[0], ["goal"], key_prefix="model=v_") == 1

    async def test_invalidate_of_no_types_drops_nothing(
        self, cache: PredictionCache, users: list[int]
    ) -> None:
        await cache.put(users[0], "goal", goal_key(17), {})
        assert await cache.invalidate(users[0], []) == 0
        assert await cache.get(users[0], "goal", goal_key(17)) is not None

    async def test_cleanup_expired_keeps_live_entries(
        self, cache: PredictionCache, users: list[int], clock: FakeClock
    ) -> None:
        await cache.put(users[0], "recommendation", make_key(model="v1"), {"old": True})
        await cache.put(users[0], "segment", make_key(model="v1"), {"live": True})
        clock.advance(2 * 3600)
        assert await cache.cleanup_expired() >= 0
        assert await cache.get(users[0], "segment", make_key(model="v1")) is not None

    async def test_a_long_key_is_hashed_and_still_invalidated_by_prefix(
        self, cache: PredictionCache, users: list[int]
    ) -> None:
        key = make_key(goal=17, model="v3", categories="x" * 300)
        assert len(key) == MAX_KEY_LENGTH
        await cache.put(users[0], "goal", key, {"long": True})
        assert (await cache.get(users[0], "goal", key)) is not None
        assert await cache.invalidate(users[0], ["goal"], key_prefix=key_prefix(goal=17)) == 1

    @pytest.mark.parametrize("operation", ["get", "put", "invalidate"])
    async def test_an_unknown_prediction_type_raises_value_error(
        self, cache: PredictionCache, users: list[int], operation: str
    ) -> None:
        with pytest.raises(ValueError, match="unknown prediction_type 'forecast'"):
            if operation == "get":
                await cache.get(users[0], "forecast", "k=1")
            elif operation == "put":
                await cache.put(users[0], "forecast", "k=1", {})
            else:
                await cache.invalidate(users[0], ["goal", "forecast"])

    async def test_bad_arguments_raise_before_touching_the_backend(
        self, cache: PredictionCache, users: list[int]
    ) -> None:
        with pytest.raises(ValueError, match="ttl_s"):
            await cache.put(users[0], "goal", "k=1", {}, ttl_s=0)
        with pytest.raises(ValueError, match="ttl_s"):
            await cache.put(users[0], "goal", "k=1", {}, ttl_s=float("nan"))
        with pytest.raises(ValueError, match="cache key"):
            await cache.put(users[0], "goal", "k" * (MAX_KEY_LENGTH + 1), {})
        with pytest.raises(ValueError, match="cache key"):
            await cache.get(users[0], "goal", "")
        with pytest.raises(TypeError, match="not a string"):
            await cache.invalidate(users[0], "goal")
        with pytest.raises(ValueError, match="key_prefix"):
            await cache.invalidate(users[0], ["goal"], key_prefix="g" * (MAX_PREFIX_LENGTH + 1))


# --- SQL: SQLite and PostgreSQL through the session's migrated databases --------------------


class TestSqlPredictionCache(_CacheContract):
    @pytest.fixture
    async def users(self, clean_engine: AsyncEngine) -> list[int]:
        rows = [{"email": f"cache-{i}@example.com", "hashed_password": "x"} for i in range(2)]
        async with clean_engine.begin() as conn:
            result = await conn.execute(insert(User).returning(User.id), rows)
            return sorted(result.scalars())

    @pytest.fixture
    async def cache(
        self, clean_engine: AsyncEngine, clock: FakeClock
    ) -> AsyncIterator[SqlPredictionCache]:
        async with SqlPredictionCache(clean_engine, CacheTtls(), clock=clock) as cache:
            yield cache

    async def test_cleanup_expired_deletes_only_expired_rows(
        self,
        cache: SqlPredictionCache,
        users: list[int],
        clock: FakeClock,
        clean_engine: AsyncEngine,
    ) -> None:
        for user in users:
            await cache.put(user, "recommendation", make_key(model="v1"), {})  # 1 h
            await cache.put(user, "goal", goal_key(17), {})  # 6 h
            await cache.put(user, "segment", make_key(model="v1"), {})  # 24 h
        clock.advance(6 * 3600)  # the goal entries expire exactly now

        assert await cache.cleanup_expired() == 4
        assert await cache.cleanup_expired() == 0
        async with clean_engine.connect() as conn:
            left = await conn.scalars(select(PredictionCacheRow.prediction_type))
            assert sorted(left) == ["segment", "segment"]

    async def test_cleanup_expired_at_an_explicit_time(
        self, cache: SqlPredictionCache, users: list[int]
    ) -> None:
        await cache.put(users[0], "recommendation", make_key(model="v1"), {})
        assert await cache.cleanup_expired(START + timedelta(minutes=59)) == 0
        assert await cache.cleanup_expired(START + timedelta(hours=1)) == 1
        with pytest.raises(ValueError, match="timezone-aware"):
            await cache.cleanup_expired(datetime(2030, 1, 1))

    async def test_an_upsert_keeps_one_row(
        self, cache: SqlPredictionCache, users: list[int], clean_engine: AsyncEngine
    ) -> None:
        for n in range(3):
            await cache.put(users[0], "goal", goal_key(17), {"n": n})
        async with clean_engine.connect() as conn:
            rows = (await conn.execute(select(PredictionCacheRow.prediction_data))).all()
        assert [r[0] for r in rows] == [{"n": 2}]


# --- Redis ----------------------------------------------------------------------------------


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards (never FLUSHDB)."""
    if not REDIS_URL:
        if IN_CI:
            pytest.fail("CI=true but FINCOACH_TEST_REDIS_URL is not set", pytrace=False)
        pytest.skip(REDIS_SKIP_REASON)
    prefix = f"{RUN_PREFIX}:{uuid.uuid4().hex[:8]}:pc"
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server ends here
        await client.aclose()
        pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc}", pytrace=False)
    yield prefix
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


class TestRedisPredictionCache(_CacheContract):
    @pytest.fixture
    def users(self) -> list[int]:
        return [101, 102]

    @pytest.fixture(params=["redis"])
    async def cache(
        self, redis_prefix: str, clock: FakeClock
    ) -> AsyncIterator[RedisPredictionCache]:
        async with RedisPredictionCache(
            REDIS_URL, CacheTtls(), clock=clock, prefix=redis_prefix
        ) as cache:
            yield cache

    @pytest.fixture
    async def client(self, redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
        client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        yield client
        await client.aclose()

    async def test_entries_and_their_index_carry_redis_expiries(
        self, cache: RedisPredictionCache, users: list[int], client: aioredis.Redis
    ) -> None:
        await cache.put(users[0], "goal", goal_key(17), {}, ttl_s=60)
        await cache.put(users[0], "goal", goal_key(18), {}, ttl_s=600)
        await cache.put(users[0], "goal", goal_key(19), {}, ttl_s=30)
        entry_ttl = await client.pttl(cache.entry_key(users[0], "goal", goal_key(17)))
        assert 0 < entry_ttl <= 60_000
        # The index lives as long as its longest-lived entry, and a shorter put doesn't shorten it.
        index_ttl = await client.pttl(cache.index_key(users[0], "goal"))
        assert 60_000 < index_ttl <= 600_000
        assert await client.smembers(cache.index_key(users[0], "goal")) == {
            goal_key(17),
            goal_key(18),
            goal_key(19),
        }

    async def test_invalidate_removes_entries_and_their_index_members(
        self, cache: RedisPredictionCache, users: list[int], client: aioredis.Redis
    ) -> None:
        await cache.put(users[0], "goal", goal_key(17), {})
        await cache.put(users[0], "goal", goal_key(18), {})
        assert await cache.invalidate(users[0], ["goal"], key_prefix="goal=17:") == 1
        assert await client.smembers(cache.index_key(users[0], "goal")) == {goal_key(18)}
        assert await cache.invalidate(users[0], ["goal"]) == 1
        assert await client.exists(cache.index_key(users[0], "goal")) == 0

    async def test_invalidate_counts_only_entries_redis_still_had(
        self, cache: RedisPredictionCache, users: list[int], client: aioredis.Redis
    ) -> None:
        await cache.put(users[0], "goal", goal_key(17), {})
        await cache.put(users[0], "goal", goal_key(18), {})
        await client.delete(cache.entry_key(users[0], "goal", goal_key(17)))  # as if expired
        assert await cache.invalidate(users[0], ["goal"]) == 1
        assert await client.exists(cache.index_key(users[0], "goal")) == 0

    async def test_cleanup_expired_returns_zero(
        self, cache: RedisPredictionCache, users: list[int], clock: FakeClock
    ) -> None:
        await cache.put(users[0], "recommendation", make_key(model="v1"), {})
        clock.advance(7200)
        assert await cache.cleanup_expired() == 0


# --- keys, TTLs and the factory (no backend) ----------------------------------------------


def test_make_key_keeps_the_given_order() -> None:
    assert make_key(goal=17, model="v3", weeks=4) == "goal=17:model=v3:weeks=4"
    assert make_key(model="v3", goal=17) == "model=v3:goal=17"
    assert make_key(goal=17, model="v3") == make_key(goal=17, model="v3")


def test_make_key_escapes_separators_in_values() -> None:
    key = make_key(goal="1:x", at="2026-03-01T12:00", tag="a=b#c%d")
    assert key == "goal=1%3Ax:at=2026-03-01T12%3A00:tag=a%3Db%23c%25d"
    assert not key.startswith(key_prefix(goal=1))


def test_make_key_hashes_the_tail_of_a_long_key() -> None:
    long = make_key(goal=17, model="v3", categories="x" * 300)
    other = make_key(goal=17, model="v3", categories="x" * 299 + "y")
    assert len(long) == len(other) == MAX_KEY_LENGTH
    assert long != other
    assert long.startswith("goal=17:model=v3:categories=xxx")
    assert long[MAX_PREFIX_LENGTH] == "#"
    assert long == make_key(goal=17, model="v3", categories="x" * 300)


def test_make_key_rejects_no_parts_and_bad_names() -> None:
    with pytest.raises(ValueError, match="at least one part"):
        make_key()
    with pytest.raises(ValueError, match="not an identifier"):
        make_key(**{"a:b": 1})
    with pytest.raises(ValueError, match="at most"):
        key_prefix(note="n" * MAX_PREFIX_LENGTH)


def test_cache_ttls_defaults_in_seconds() -> None:
    ttls = CacheTtls()
    assert {t: ttls.ttl_for(t) for t in PREDICTION_TYPES} == DEFAULT_TTLS
    assert CacheTtls(goal=60).ttl_for("goal") == 60
    with pytest.raises(ValueError, match="unknown prediction_type"):
        ttls.ttl_for("forecast")
    with pytest.raises(ValueError):
        CacheTtls(goal=0)


@pytest.fixture
async def idle_engine() -> AsyncIterator[AsyncEngine]:
    """An engine that is never connected: the factory only needs its dialect."""
    engine = create_async_engine("sqlite+aiosqlite://")
    yield engine
    await engine.dispose()


@pytest.mark.parametrize("url", [None, "", "db", "sql", " SQL "])
async def test_make_cache_picks_sql(url: str | None, idle_engine: AsyncEngine) -> None:
    cache = make_cache(url, idle_engine, CacheTtls())
    assert isinstance(cache, SqlPredictionCache)
    await cache.close()


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/15", "rediss://:pw@cache.example:6380/0"])
async def test_make_cache_picks_redis(url: str, idle_engine: AsyncEngine) -> None:
    cache = make_cache(url, idle_engine, CacheTtls(goal=5))
    assert isinstance(cache, RedisPredictionCache)
    assert cache.ttls.goal == 5
    await cache.close()


@pytest.mark.parametrize(
    "url",
    ["memcached://:hunter2@host:11211", "postgresql://u:hunter2@h/db"],
    ids=["memcached-url", "database-url"],  # a bare "postgresql" id would count as a DB test
)
def test_make_cache_rejects_other_urls(url: str, idle_engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="unsupported cache URL") as info:
        make_cache(url, idle_engine, CacheTtls())
    assert "hunter2" not in str(info.value)


def test_make_cache_rejects_a_bare_word(idle_engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="unsupported cache URL \\('redis'\\)"):
        make_cache("redis", idle_engine, CacheTtls())

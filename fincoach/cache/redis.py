"""The prediction cache in Redis (7.0 or later: it uses PEXPIRE NX/GT).

Layout, for prefix ``fincoach:pc``, user 17 and type goal:

- ``fincoach:pc:{17}:goal:<cache key>``: the entry, a JSON string with data, created_at and
  expires_at, set with a PX expiry, so Redis drops it by itself;
- ``fincoach:pc:{17}:goal``: a set of the cache keys stored for that user and type (the index).

Invalidation reads the index, not the keyspace. KEYS blocks the server while it walks every key,
and SCAN MATCH still walks the whole keyspace on every call (a shared Redis may hold millions of
keys), may repeat keys, and needs glob escaping; the index costs one SADD per put and makes an
invalidation touch only that user's entries. It stays exact under concurrency: a put adds entry
and member in one MULTI, and an invalidation deletes entries and removes exactly the members it
read in one MULTI, so no entry is ever left out of its index. Members of entries that expired
linger until the set itself expires; each put extends the set's expiry to cover its entry.
The ``{17}`` hash tag keeps a user's keys in one Redis Cluster slot, so the MULTIs stay legal.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from fincoach.cache.base import CachedPrediction, CacheTtls, Clock, PredictionCache, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


class RedisPredictionCache(PredictionCache):
    """Entries as Redis strings with their own expiry, plus one index set per user and type."""

    def __init__(
        self,
        url: str,
        ttls: CacheTtls,
        clock: Clock = utcnow,
        prefix: str = "fincoach:pc",
        *,
        timeout_s: float = 2.0,
    ) -> None:
        super().__init__(ttls, clock)
        if not prefix:
            raise ValueError("the Redis key prefix must not be empty")
        self._prefix = prefix
        # Connects lazily, on the event loop of the first command.
        self._redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )

    async def close(self) -> None:
        await self._redis.aclose()

    def index_key(self, user_id: int, prediction_type: str) -> str:
        """The Redis set listing the user's cache keys of that type."""
        return f"{self._prefix}:{{{int(user_id)}}}:{prediction_type}"

    def entry_key(self, user_id: int, prediction_type: str, key: str) -> str:
        """The Redis key of one entry."""
        return f"{self.index_key(user_id, prediction_type)}:{key}"

    async def _fetch(self, user_id: int, prediction_type: str, key: str) -> CachedPrediction | None:
        raw = await self._redis.get(self.entry_key(user_id, prediction_type, key))
        if raw is None:
            return None
        value = json.loads(raw)
        return CachedPrediction(
            data=value["data"],
            created_at=datetime.fromisoformat(value["created_at"]),
            expires_at=datetime.fromisoformat(value["expires_at"]),
        )

    async def _store(
        self,
        user_id: int,
        prediction_type: str,
        key: str,
        entry: CachedPrediction,
        session: AsyncSession | None,
    ) -> None:
        value = json.dumps(
            {
                "data": entry.data,
                "created_at": entry.created_at.isoformat(),
                "expires_at": entry.expires_at.isoformat(),
            },
            separators=(",", ":"),
        )
        ttl_ms = max(1, math.ceil((entry.expires_at - entry.created_at).total_seconds() * 1000))
        index = self.index_key(user_id, prediction_type)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self.entry_key(user_id, prediction_type, key), value, px=ttl_ms)
            pipe.sadd(index, key)
            # The index must outlive every entry it lists: set an expiry on a new set, and
            # lengthen (never shorten) the expiry of an existing one.
            pipe.pexpire(index, ttl_ms, nx=True)
            pipe.pexpire(index, ttl_ms, gt=True)
            await pipe.execute()

    async def _delete(
        self, user_id: int, prediction_types: list[str], key_prefix: str | None
    ) -> int:
        indexes = [self.index_key(user_id, t) for t in prediction_types]
        async with self._redis.pipeline(transaction=False) as pipe:
            for index in indexes:
                pipe.smembers(index)
            members: list[set[str]] = await pipe.execute()
        doomed: dict[str, list[str]] = {}
        for index, stored in zip(indexes, members, strict=True):
            chosen = [k for k in stored if key_prefix is None or k.startswith(key_prefix)]
            if chosen:
                doomed[index] = chosen
        if not doomed:
            return 0
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(*(f"{index}:{k}" for index, keys in doomed.items() for k in keys))
            for index, keys in doomed.items():
                pipe.srem(index, *keys)
            results: list[Any] = await pipe.execute()
        # DEL counts only entries that still existed (not ones Redis already expired).
        return int(results[0])

    async def _delete_expired(self, now: datetime) -> int:
        """Redis expires entries by itself; there is nothing to sweep."""
        return 0

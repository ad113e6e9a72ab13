"""The prediction cache in the prediction_cache table (SQLite or PostgreSQL).

Each operation is one statement on its own short connection, committed at once, so the cache
never holds open a caller's transaction; the one exception is a write given the caller's session
(``put(..., session=)``): it joins that transaction, so a request that writes and caches commits
once. Expired rows stay until `cleanup_expired` deletes them; reads ignore them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from fincoach.cache.base import CachedPrediction, CacheTtls, Clock, PredictionCache, utcnow
from fincoach.db.tables import PredictionCache as PredictionCacheRow

_table = cast(Table, PredictionCacheRow.__table__)
_UPSERT_DIALECTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_STORED_COLUMNS = (
    "user_id",
    "prediction_type",
    "cache_key",
    "prediction_data",
    "created_at",
    "expires_at",
)


class SqlPredictionCache(PredictionCache):
    """Entries as prediction_cache rows; upserts on (user_id, prediction_type, cache_key).

    Rows reference users.id, so storing for an unknown user raises IntegrityError.
    """

    def __init__(self, engine: AsyncEngine, ttls: CacheTtls, clock: Clock = utcnow) -> None:
        super().__init__(ttls, clock)
        if engine.dialect.name not in _UPSERT_DIALECTS:
            raise ValueError(f"no upsert for database dialect {engine.dialect.name!r}")
        self._engine = engine
        # Built once (every uncached answer writes one).
        insert = _UPSERT_DIALECTS[engine.dialect.name]
        stmt: Any = insert(_table).values(
            {c: bindparam(c, type_=_table.c[c].type) for c in _STORED_COLUMNS}
        )
        self._upsert = stmt.on_conflict_do_update(
            index_elements=[_table.c.user_id, _table.c.prediction_type, _table.c.cache_key],
            set_={
                "prediction_data": stmt.excluded.prediction_data,
                "created_at": stmt.excluded.created_at,
                "expires_at": stmt.excluded.expires_at,
            },
        )

    async def close(self) -> None:
        """Nothing to release: the engine belongs to the caller, who disposes of it."""

    async def _fetch(self, user_id: int, prediction_type: str, key: str) -> CachedPrediction | None:
        query = select(_table.c.prediction_data, _table.c.created_at, _table.c.expires_at).where(
            _table.c.user_id == user_id,
            _table.c.prediction_type == prediction_type,
            _table.c.cache_key == key,
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            return None
        return CachedPrediction(data=row[0], created_at=row[1], expires_at=row[2])

    async def _store(
        self,
        user_id: int,
        prediction_type: str,
        key: str,
        entry: CachedPrediction,
        session: AsyncSession | None,
    ) -> None:
        params = {
            "user_id": user_id,
            "prediction_type": prediction_type,
            "cache_key": key,
            "prediction_data": entry.data,
            "created_at": entry.created_at,
            "expires_at": entry.expires_at,
        }
        if session is None:
            async with self._engine.begin() as conn:
                await conn.execute(self._upsert, params)
            return
        if self._engine.dialect.name == "postgresql":
            # A failed statement aborts a PostgreSQL transaction: a savepoint keeps the
            # caller's writes. (SQLite undoes only the failed statement.)
            async with session.begin_nested():
                await session.execute(self._upsert, params)
        else:
            await session.execute(self._upsert, params)

    async def _delete(
        self, user_id: int, prediction_types: list[str], key_prefix: str | None
    ) -> int:
        stmt = delete(_table).where(
            _table.c.user_id == user_id, _table.c.prediction_type.in_(prediction_types)
        )
        if key_prefix is not None:
            # substr, not LIKE: LIKE is case-insensitive on SQLite and treats "_" as a wildcard.
            stmt = stmt.where(func.substr(_table.c.cache_key, 1, len(key_prefix)) == key_prefix)
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount

    async def _delete_expired(self, now: datetime) -> int:
        stmt = delete(_table).where(_table.c.expires_at <= now)
        async with self._engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount

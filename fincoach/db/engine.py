"""Engine and session factories. Create them inside the process that uses them (asyncpg pools
belong to the event loop that made them), never at import time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the one writer;
    # busy_timeout turns "database is locked" into a short wait under concurrent writers.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    _common_pragmas(cursor)


def _sqlite_pragmas_no_fk(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # For migrations: batch mode rebuilds a table by dropping it, and with foreign keys on,
    # dropping a parent table deletes every child row through ON DELETE CASCADE.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=OFF")
    _common_pragmas(cursor)


def _common_pragmas(cursor: Any) -> None:
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(
    url: str, *, pool_size: int = 5, echo: bool = False, foreign_keys: bool = True
) -> AsyncEngine:
    """An async engine for ``url`` with the pragmas/pool settings this app relies on
    (``foreign_keys=False``: SQLite without foreign-key enforcement, for migrations only)."""
    kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **kwargs)
        pragmas = _sqlite_pragmas if foreign_keys else _sqlite_pragmas_no_fk
        event.listen(engine.sync_engine, "connect", pragmas)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """One per process; one session per request or unit of work."""
    return async_sessionmaker(engine, expire_on_commit=False)

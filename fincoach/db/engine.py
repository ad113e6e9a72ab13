"""Engine and session factories. Create them inside the process that uses them (asyncpg pools
belong to the event loop that made them), never at import time."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

T = TypeVar("T")


class ClosingConnection(sqlite3.Connection):
    """A SQLite connection that closes its cursors before it rolls back or closes.

    A request cancelled between a statement's first step and its cursor's close (a client
    hanging up during an ``INSERT ... RETURNING``) leaves that cursor alive, kept by the
    cancellation's traceback until the garbage collector breaks the cycle. SQLAlchemy then
    invalidates the connection, and sqlite3's close of a connection with an unfinished
    statement only makes it a zombie (sqlite3_close_v2): its write transaction, and the
    database's write lock, stay until that statement is finalized. Every later write waited
    out busy_timeout and failed. Closing the cursors first resets their statements, so the
    rollback and the close always end the transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cursors: weakref.WeakSet[sqlite3.Cursor] = weakref.WeakSet()

    def cursor(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:  # type: ignore[override]
        cursor = super().cursor(*args, **kwargs)
        self._cursors.add(cursor)
        return cursor

    def _close_cursors(self) -> None:
        for cursor in list(self._cursors):
            with contextlib.suppress(sqlite3.Error):
                cursor.close()

    def rollback(self) -> None:
        self._close_cursors()
        super().rollback()

    def close(self) -> None:
        self._close_cursors()
        with contextlib.suppress(sqlite3.Error):
            super().rollback()
        super().close()


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
        engine = create_async_engine(url, connect_args={"factory": ClosingConnection}, **kwargs)
        pragmas = _sqlite_pragmas if foreign_keys else _sqlite_pragmas_no_fk
        event.listen(engine.sync_engine, "connect", pragmas)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """One per process; one session per request or unit of work."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def run_to_completion(cleanup: Coroutine[Any, Any, T]) -> T:
    """Run ``cleanup`` (a session's close: its rollback and the connection's return to the
    pool) in a task of its own and wait for it even when the caller is cancelled meanwhile;
    the cancellation is raised once it is done. A close abandoned halfway (a client hanging up
    while its request's session closes) would leave the transaction open on a connection
    nobody returns."""
    task = asyncio.ensure_future(cleanup)
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.done():
                raise
            cancelled = exc
            continue
        if cancelled is not None:
            raise cancelled
        return result

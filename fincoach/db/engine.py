"""Engine and session factories. Create them inside the process that uses them (asyncpg pools
belong to the event loop that made them), never at import time."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
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


WRITE_GATE_TIMEOUT_S = 10.0  # as busy_timeout: past it a writer goes on to SQLite's own wait
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")  # the statements pysqlite BEGINs before


class WriterGate:
    """First come, first served among the writers of one SQLite file, from the first write of a
    transaction to its end.

    SQLite has one write lock per database; a writer that finds it taken waits in the busy
    handler, which sleeps and tries again with growing sleeps (up to 100 ms). With 30
    connections of two processes waiting, each free moment goes to whoever polls then, not to
    who came first: measured at 32 concurrent recommendations, the lock was held 1-3 ms per
    transaction, but the first INSERT waited up to 7 s for it (p99 3-5 s).

    Behind this gate the writers of one process queue in arrival order, and the one at the head
    takes a lock on a file beside the database (``<database>-writer``, ``flock``) before it
    writes: the writers at the heads of two processes wait in the kernel, which wakes the one
    waiting as the other unlocks, instead of polling. SQLite's own lock still guards the data;
    the gate only decides who asks for it next.

    A writer that has waited ``WRITE_GATE_TIMEOUT_S`` goes on without the gate (to SQLite's busy
    handler, as before): a unit of work that writes on two connections at once cannot deadlock
    on it, it only loses its place."""

    def __init__(self, lock_path: str | None = None) -> None:
        self._mutex = threading.Lock()
        self._holder: int | None = None
        self._queue: collections.deque[tuple[int, threading.Event]] = collections.deque()
        self._lock_path = lock_path
        self._fd: int | None = None
        self._file_locked = False

    def acquire(self, owner: int, timeout: float = WRITE_GATE_TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout
        with self._mutex:
            if self._holder is None:
                self._holder = owner
                ticket = None
            else:
                ticket = (owner, threading.Event())
                self._queue.append(ticket)
        if ticket is not None and not ticket[1].wait(timeout):
            with self._mutex:
                if self._holder != owner:  # not handed over just as the wait ended
                    self._queue.remove(ticket)
                    return False
        self._file_locked = self._lock_file(deadline)
        return True

    def release(self, owner: int) -> None:
        with self._mutex:
            if self._holder != owner:
                return
            if self._file_locked and self._fd is not None:
                self._file_locked = False
                with contextlib.suppress(OSError):
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
            if self._queue:
                self._holder, event = self._queue.popleft()
                event.set()
            else:
                self._holder = None

    def _lock_file(self, deadline: float) -> bool:
        """The lock beside the database, for the holder; False (go on without it) when it
        cannot be had: no file, or not by the deadline."""
        if self._lock_path is None:
            return False
        try:
            if self._fd is None:
                self._fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fd: int = self._fd
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        except OSError:
            return False
        # Taken by another process: wait in the kernel, on a thread of its own so that the wait
        # can end at the deadline (flock has no timeout).
        got, state = threading.Event(), {"abandoned": False}
        guard = threading.Lock()

        def wait_for_it() -> None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
                with guard:
                    if not state["abandoned"]:
                        got.set()
                        return
                fcntl.flock(fd, fcntl.LOCK_UN)

        threading.Thread(target=wait_for_it, name="sqlite-writer-lock", daemon=True).start()
        if got.wait(max(0.0, deadline - time.monotonic())):
            return True
        with guard:
            state["abandoned"] = not got.is_set()
            return got.is_set()


_GATES: dict[str, WriterGate] = {}
_GATES_MUTEX = threading.Lock()


def writer_gate(database: str) -> WriterGate | None:
    """The gate of one database file in this process (None for an in-memory database)."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    key = os.path.realpath(database.removeprefix("file:").split("?", 1)[0])
    with _GATES_MUTEX:
        if key not in _GATES:
            _GATES[key] = WriterGate(key + "-writer")
        return _GATES[key]


class GatedCursor(sqlite3.Cursor):
    """A cursor whose connection takes the process's writer gate before the first write of a
    transaction (where pysqlite issues its implicit BEGIN)."""

    def execute(self, sql: str, parameters: Any = (), /) -> GatedCursor:
        return self._gated(super().execute, sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> GatedCursor:
        return self._gated(super().executemany, sql, seq_of_parameters)

    def _gated(self, run: Callable[[str, Any], Any], sql: str, argument: Any) -> GatedCursor:
        connection = self.connection if isinstance(self.connection, ClosingConnection) else None
        if connection is not None:
            connection._enter_write(sql)
        try:
            run(sql, argument)
        finally:
            if connection is not None:
                connection._after_statement()
        return self


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

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._cursors: weakref.WeakSet[sqlite3.Cursor] = weakref.WeakSet()
        self._gate = writer_gate(os.fsdecode(database))
        self._gate_finalizer: weakref.finalize[Any, Any] | None = None

    def cursor(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:  # type: ignore[override]
        if not args and "factory" not in kwargs:
            kwargs["factory"] = GatedCursor
        cursor = super().cursor(*args, **kwargs)
        self._cursors.add(cursor)
        return cursor

    # sqlite3's own shortcuts run the statement in C, past the gated cursor's methods
    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> sqlite3.Cursor:
        return self.cursor().executemany(sql, seq_of_parameters)

    def _enter_write(self, sql: str) -> None:
        if self._gate is None or self._holds_gate() or self.in_transaction:
            return
        if sql.lstrip()[:7].upper().startswith(_WRITES):
            owner = id(self)
            if self._gate.acquire(owner):
                # a connection dropped without a close still lets the next writer in
                self._gate_finalizer = weakref.finalize(self, self._gate.release, owner)

    def _after_statement(self) -> None:
        # autocommit, or a failed first write: no transaction is left to end later
        if self._holds_gate() and not self.in_transaction:
            self._leave_write()

    def _holds_gate(self) -> bool:
        # the finalizer exists exactly while this connection holds the gate
        return self._gate_finalizer is not None

    def _leave_write(self) -> None:
        if self._gate_finalizer is not None and self._gate is not None:
            self._gate_finalizer.detach()
            self._gate_finalizer = None
            self._gate.release(id(self))

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self._leave_write()

    def _close_cursors(self) -> None:
        for cursor in list(self._cursors):
            with contextlib.suppress(sqlite3.Error):
                cursor.close()

    def rollback(self) -> None:
        self._close_cursors()
        try:
            super().rollback()
        finally:
            if not self.in_transaction:
                self._leave_write()

    def close(self) -> None:
        self._close_cursors()
        with contextlib.suppress(sqlite3.Error):
            super().rollback()
        try:
            super().close()
        finally:
            self._leave_write()


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

"""A unit of work cancelled in the middle of a write (a client hanging up, a Serve timeout, a
replica stopping) leaves no transaction or lock behind, on both databases; and the pieces that
make it so (SQLite cursors closed before a close, a session's close run to completion)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.db.engine import ClosingConnection, make_engine, make_sessionmaker, run_to_completion
from tests.conftest import write_lock_free

# Writes that keep their statement busy long enough to be cancelled halfway: the row is
# inserted (the write lock taken) and RETURNING holds the statement open until it is read.
SLOW_INSERT = {
    "sqlite": (
        "INSERT INTO cancel_probe (x) SELECT x FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
        "SELECT x + 1 FROM c WHERE x < 3000000) SELECT max(x) AS x FROM c) RETURNING x"
    ),
    "postgresql": "INSERT INTO cancel_probe (x) SELECT 1 FROM pg_sleep(1.5) RETURNING x",
}


@pytest.fixture
async def probe_table(engine: AsyncEngine) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS cancel_probe"))
        await conn.execute(text("CREATE TABLE cancel_probe (x INTEGER)"))
    yield
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS cancel_probe"))


@pytest.mark.usefixtures("probe_table")
async def test_a_write_cancelled_halfway_leaves_no_transaction_or_lock(database_url: str) -> None:
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)

    async def unit_of_work() -> None:
        async with sessions() as session:
            await session.execute(text(SLOW_INSERT[backend]))
            await session.commit()

    try:
        for _ in range(3):
            task = asyncio.create_task(unit_of_work())
            await asyncio.sleep(0.3)  # inside the insert
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await write_lock_free(database_url, within_s=5.0), (
                "a cancelled write left its transaction (and the write lock) open"
            )
        # The pool still serves, and nothing of the cancelled writes was committed.
        async with sessions() as session:
            assert await session.scalar(text("SELECT count(*) FROM cancel_probe")) == 0
            await session.execute(text("INSERT INTO cancel_probe (x) VALUES (7)"))
            await session.commit()
        assert await write_lock_free(database_url, within_s=1.0)
    finally:
        await engine.dispose()


def test_closing_a_sqlite_connection_with_an_unfinished_statement_ends_its_transaction(
    tmp_path: Path,
) -> None:
    """The cause: a cursor still holding an unfinished RETURNING statement (kept alive by a
    cancelled task's traceback) turns sqlite3's close into a zombie that keeps the write lock.
    The app's connection class closes its cursors first."""
    path = tmp_path / "zombie.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (x INTEGER)")
    setup.close()

    conn = sqlite3.connect(path, timeout=0.1, factory=ClosingConnection)
    cursor = conn.execute("INSERT INTO t VALUES (1) RETURNING x")  # unfinished, not read
    conn.close()
    other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # "database is locked" with a plain sqlite3.Connection
    other.execute("ROLLBACK")
    assert other.execute("SELECT count(*) FROM t").fetchone() == (0,)
    other.close()
    del cursor


async def test_run_to_completion_finishes_the_cleanup_then_raises_the_cancellation() -> None:
    steps: list[str] = []

    async def cleanup() -> str:
        steps.append("rollback")
        await asyncio.sleep(0.2)
        steps.append("returned to the pool")
        return "closed"

    async def request() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await run_to_completion(cleanup())

    task = asyncio.create_task(request())
    await asyncio.sleep(0.05)
    task.cancel()  # the client hangs up: the request's session starts closing
    await asyncio.sleep(0.05)
    task.cancel()  # cancelled again while closing (a Serve timeout, a replica stopping)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == ["rollback", "returned to the pool"]
    assert await run_to_completion(cleanup()) == "closed"

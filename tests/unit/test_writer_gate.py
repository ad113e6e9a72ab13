"""The SQLite writer gate: one process's writers take SQLite's write lock in arrival order, and
every way a transaction ends lets the next one in."""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from fincoach.db.engine import ClosingConnection, WriterGate, make_engine, writer_gate


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "gate.db")
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (x INTEGER)")
    setup.close()
    return path


def connect(path: str, *, autocommit: bool = False) -> ClosingConnection:
    return sqlite3.connect(
        path,
        timeout=10,
        isolation_level=None if autocommit else "DEFERRED",
        factory=ClosingConnection,
        check_same_thread=False,
    )


def test_writers_of_one_process_take_the_lock_in_arrival_order(db: str) -> None:
    first = connect(db)
    first.execute("INSERT INTO t VALUES (0)")  # holds the gate (and SQLite's lock) until commit
    order: list[int] = []
    threads = []
    for i in range(1, 6):
        conn = connect(db)

        def write(conn: ClosingConnection = conn, i: int = i) -> None:
            conn.execute("INSERT INTO t VALUES (?)", (i,))
            order.append(i)
            conn.commit()
            conn.close()

        thread = threading.Thread(target=write)
        thread.start()
        threads.append(thread)
        time.sleep(0.05)  # arrival order 1..5
    time.sleep(0.2)
    assert order == []  # queued behind the gate, none polling SQLite meanwhile
    first.commit()
    for thread in threads:
        thread.join(10)
    assert order == [1, 2, 3, 4, 5]
    assert [r[0] for r in first.execute("SELECT x FROM t ORDER BY rowid")] == [0, 1, 2, 3, 4, 5]
    first.close()


@pytest.mark.parametrize("end", ["commit", "rollback", "close", "garbage"])
def test_every_end_of_a_transaction_lets_the_next_writer_in(db: str, end: str) -> None:
    holder = connect(db)
    holder.execute("UPDATE t SET x = 1")
    assert holder.in_transaction
    if end == "commit":
        holder.commit()
    elif end == "rollback":
        holder.rollback()
    elif end == "close":
        holder.close()
    else:
        # dropped without a close (the sqlite3 object dies): its transaction ends with it
        del holder
        gc.collect()
    gate = writer_gate(db)
    assert gate is not None and gate.acquire(-1, timeout=0.5)
    gate.release(-1)


def test_reads_autocommit_and_failed_writes_do_not_keep_the_gate(db: str) -> None:
    conn = connect(db)
    conn.execute("SELECT count(*) FROM t").fetchall()  # a read never takes it
    auto = connect(db, autocommit=True)
    auto.execute("INSERT INTO t VALUES (7)")  # autocommit: done at once
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("INSERT INTO missing VALUES (1)")  # fails before any transaction
    gate = writer_gate(db)
    assert gate is not None and gate.acquire(-1, timeout=0.5)
    gate.release(-1)
    conn.close()
    auto.close()


def test_a_writer_that_waited_too_long_goes_on_without_the_gate() -> None:
    gate = WriterGate()
    assert gate.acquire(1)
    started = time.monotonic()
    assert gate.acquire(2, timeout=0.1) is False  # no deadlock: it proceeds to SQLite's wait
    assert time.monotonic() - started < 1.0
    gate.release(2)  # not the holder: nothing happens
    assert gate.acquire(3, timeout=0.05) is False
    gate.release(1)  # nobody waits any more
    assert gate.acquire(4, timeout=0.05)


def test_one_gate_per_file_none_in_memory(db: str, tmp_path: Path) -> None:
    assert writer_gate(db) is writer_gate(str(Path(db).parent / "." / Path(db).name))
    assert writer_gate(db) is not writer_gate(str(tmp_path / "other.db"))
    assert writer_gate(":memory:") is None


async def test_the_engine_writes_through_the_gate(tmp_path: Path) -> None:
    """The app's SQLite engine uses the gated cursor for ORM and Core writes alike."""
    from sqlalchemy import text

    path = tmp_path / "engine.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        gate = writer_gate(str(path))
        assert gate is not None
        async with engine.connect() as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            assert gate.acquire(-1, timeout=0.1) is False  # held by the open transaction
            await conn.commit()
        assert gate.acquire(-1, timeout=0.5)
        gate.release(-1)
    finally:
        await engine.dispose()


def test_writers_of_two_processes_take_turns_through_the_lock_file(db: str) -> None:
    """The other process's writer holds the lock beside the database: this one waits for it (not
    for SQLite's busy handler) and writes as soon as that transaction ends."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "from fincoach.db.engine import ClosingConnection\n"
            f"c = sqlite3.connect({db!r}, factory=ClosingConnection)\n"
            "c.execute('INSERT INTO t VALUES (1)')\n"
            "print('holding', flush=True)\n"
            "time.sleep(0.5)\n"
            "c.commit()\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        assert Path(db + "-writer").exists()
        conn = connect(db)
        started = time.monotonic()
        conn.execute("INSERT INTO t VALUES (2)")
        waited = time.monotonic() - started
        conn.commit()
        assert 0.2 < waited < 5.0
        assert [r[0] for r in conn.execute("SELECT x FROM t ORDER BY rowid")] == [1, 2]
        conn.close()
    finally:
        holder.wait(10)


def test_a_lock_file_held_past_the_deadline_is_given_up_and_left_free(tmp_path: Path) -> None:
    import fcntl
    import os

    lock = str(tmp_path / "x.db-writer")
    other = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_EX)  # another process's writer, as far as the gate can tell
    gate = WriterGate(lock)
    assert gate.acquire(1, timeout=0.1)  # the process's turn, without the file
    gate.release(1)
    fcntl.flock(other, fcntl.LOCK_UN)
    time.sleep(0.2)  # the abandoned waiter takes the file lock and gives it back at once
    probe = os.open(lock, os.O_RDWR)
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: no BlockingIOError
    fcntl.flock(probe, fcntl.LOCK_UN)
    assert gate.acquire(2, timeout=0.5)
    gate.release(2)
    os.close(probe)
    os.close(other)

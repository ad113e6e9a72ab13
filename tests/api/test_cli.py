"""The `fincoach` console script, run as a user runs it (a subprocess)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.db.tables import BehavioralEvent, Goal, Transaction, User, UserProfile
from fincoach.training.simulator import SimConfig, simulate

FINCOACH = str(Path(sys.executable).parent / "fincoach")
COMMANDS = [
    [],
    ["train"],
    ["evaluate"],
    ["db"],
    ["db", "upgrade"],
    ["db", "downgrade"],
    ["db", "check"],
    ["db", "backfill-features"],
    ["demo-data"],
    ["serve"],
    ["jobs"],
    ["jobs", "run"],
    ["models"],
    ["models", "list"],
    ["models", "promote"],
    ["models", "rollback"],
]


def run(*args: str, env_url: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [FINCOACH, *args]
    if env_url is not None:
        cmd += ["--database-url", env_url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "fincoach")
def test_every_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert len(result.stdout.splitlines()) > 4


def test_db_check_names_what_is_missing(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    result = run("db", "check", env_url=url)
    assert result.returncode == 1
    assert "missing table: users" in result.stdout
    assert "missing index: idx_behavioral_events_user_type_time" in result.stdout
    assert run("db", "upgrade", env_url=url).returncode == 0
    ok = run("db", "check", env_url=url)
    assert ok.returncode == 0 and "schema ok" in ok.stdout
    assert run("db", "downgrade", "base", env_url=url).returncode == 0
    assert run("db", "check", env_url=url).returncode == 1


def test_db_check_and_backfill_find_a_feature_store_out_of_step(tmp_path: Path) -> None:
    """A dropped trigger is named by `db check`; aggregates that no longer match the rows fail
    `backfill-features --check`, and `backfill-features` repairs them."""
    path = tmp_path / "store.db"
    url = f"sqlite+aiosqlite:///{path}"
    assert run("demo-data", "--users", "3", "--weeks", "4", "--quiet", env_url=url).returncode == 0
    assert run("db", "backfill-features", "--check", "--quiet", env_url=url).returncode == 0
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER ledger_days_insert")
        conn.execute("UPDATE ledger_days SET amount = amount + 1 WHERE user_id = 2")
    check = run("db", "check", env_url=url)
    assert check.returncode == 1 and "missing trigger: ledger_days_insert" in check.stdout
    stale = run("db", "backfill-features", "--check", "--quiet", env_url=url)
    assert stale.returncode == 1 and "1 differ" in stale.stdout and "users: 2" in stale.stdout
    fixed = run("db", "backfill-features", "--quiet", env_url=url)
    assert fixed.returncode == 0 and "rebuilt 3 users" in fixed.stdout
    assert run("db", "backfill-features", "--check", "--quiet", env_url=url).returncode == 0


async def _count(engine: AsyncEngine, table: type) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def test_demo_data_loads_the_simulated_population(
    database_url: str, clean_engine: AsyncEngine
) -> None:
    args = [
        "demo-data",
        "--users",
        "12",
        "--weeks",
        "6",
        "--seed",
        "5",
        "--start",
        "2025-03-03",
        "--quiet",
    ]
    first = run(*args, env_url=database_url)
    assert first.returncode == 0, first.stderr
    expected = simulate(SimConfig(n_users=12, n_weeks=6, seed=5, start=date(2025, 3, 3)))
    assert await _count(clean_engine, User) == 12
    assert await _count(clean_engine, UserProfile) == 12
    assert await _count(clean_engine, Goal) == len(expected.goals)
    assert await _count(clean_engine, Transaction) == len(expected.transactions)
    assert await _count(clean_engine, BehavioralEvent) > 0
    async with clean_engine.connect() as conn:
        total = await conn.scalar(select(func.sum(Transaction.amount)))
    assert total == pytest.approx(float(expected.transactions.amount.sum()), abs=0.05)

    again = run(*args, env_url=database_url)
    assert again.returncode == 1 and "--reset" in again.stderr
    reset = run(*args, "--reset", env_url=database_url)
    assert reset.returncode == 0, reset.stderr
    assert await _count(clean_engine, User) == 12
    assert await _count(clean_engine, Transaction) == len(expected.transactions)


def test_demo_data_refuses_a_start_that_is_not_a_monday(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    result = run("demo-data", "--users", "2", "--start", "2025-03-04", env_url=url)
    assert result.returncode != 0 and "Monday" in result.stderr


async def test_segments_job_assigns_every_user_idempotently(
    database_url: str, clean_engine: AsyncEngine, trained_models: str
) -> None:
    from fincoach.db.tables import UserSegment

    load = run("demo-data", "--users", "15", "--weeks", "10", "--quiet", env_url=database_url)
    assert load.returncode == 0, load.stderr
    args = ("jobs", "run", "segments", "--model-dir", trained_models)
    first = run(*args, env_url=database_url)
    assert first.returncode == 0, first.stderr
    assert "segments: ok" in first.stdout and "'assigned': 15" in first.stdout
    async with clean_engine.connect() as conn:
        rows = (await conn.execute(select(UserSegment.user_id, UserSegment.segment_id))).all()
    assert len(rows) == 15
    assert run(*args, env_url=database_url).returncode == 0
    async with clean_engine.connect() as conn:
        again = (await conn.execute(select(UserSegment.user_id, UserSegment.segment_id))).all()
    assert sorted(again) == sorted(rows)
    bad = run("jobs", "run", "nonsense", env_url=database_url)
    assert bad.returncode != 0 and "segments" in bad.stderr

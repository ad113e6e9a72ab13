"""Shared fixtures: a migrated database per backend (SQLite always, PostgreSQL when
FINCOACH_TEST_POSTGRES_URL is set), settings for tests, and an in-process API client."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from fincoach.config import Settings
from fincoach.db.engine import make_engine
from fincoach.db.migrate import upgrade
from fincoach.db.tables import Base
from fincoach.http.app import create_app

PG_URL = os.environ.get("FINCOACH_TEST_POSTGRES_URL", "")
IN_CI = os.environ.get("CI", "").lower() == "true"
PG_SKIP_REASON = (
    "PostgreSQL tests skipped: set FINCOACH_TEST_POSTGRES_URL="
    "postgresql+asyncpg://postgres@127.0.0.1:5432/test to run them"
)


OPS_TOKEN = "test-ops-token-" + "o" * 24


def test_settings(database_url: str, **overrides: object) -> Settings:
    """Settings for tests: the given database, cheap password hashing, a fixed secret."""
    values: dict[str, object] = {
        "env": "test",
        "database_url": database_url,
        "jwt_secret": "test-secret-" + "x" * 40,
        "ops_token": OPS_TOKEN,
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 1024,
        "max_body_bytes": 64 * 1024,
        "jobs_enabled": False,  # tests run jobs explicitly
        # Each app start would freeze the whole test process's heap (tests/api/test_health_
        # readiness.py turns it on and checks it).
        "gc_freeze_on_start": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


test_settings.__test__ = False  # type: ignore[attr-defined]  # not a test, despite its name


async def _create_pg_database() -> tuple[str, Callable[[], Awaitable[None]]]:
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but FINCOACH_TEST_POSTGRES_URL is not set", pytrace=False)
        pytest.skip(PG_SKIP_REASON)
    name = f"fincoach_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server ends here
        await admin.dispose()
        pytest.fail(f"PostgreSQL at {PG_URL} is unreachable: {exc}", pytrace=False)

    await admin.dispose()  # a fresh connection to drop it: the server may have restarted since

    async def drop() -> None:
        dropper = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
        try:
            async with dropper.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            await dropper.dispose()

    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    return url, drop


async def write_lock_free(url: str, within_s: float) -> bool:
    """Is the database free of leftover transactions within ``within_s``? SQLite: another
    connection takes the write lock. PostgreSQL: no other backend of the database holds a
    transaction open for more than a second (idle in transaction, or a statement whose client
    is gone)."""
    deadline = time.monotonic() + within_s
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        while True:
            other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
                return True
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    return False
            finally:
                other.close()
            await asyncio.sleep(0.1)
    probe = make_engine(url)
    try:
        while True:
            async with probe.connect() as conn:
                held = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid()"
                        " AND xact_start < now() - interval '1 second'"
                    )
                )
            if held == 0:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
    finally:
        await probe.dispose()


async def migrated_database(
    backend: str, tmp_path_factory: pytest.TempPathFactory, revision: str = "head"
) -> AsyncIterator[str]:
    """A new database of `backend` ("sqlite" or "postgresql") migrated to ``revision``,
    dropped afterwards."""
    drop: Callable[[], Awaitable[None]] | None = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    else:
        url, drop = await _create_pg_database()
    # Alembic's env runs its own event loop, so it goes to a thread.
    await asyncio.to_thread(upgrade, url, revision)
    yield url
    if drop is not None:
        await drop()


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session", autouse=True)
def _private_secret_file(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Settings made without a secret (the CLI's) generate theirs here, not in ~/.config."""
    if "FINCOACH_JWT_SECRET_FILE" not in os.environ:
        path = tmp_path_factory.mktemp("config") / "jwt_secret"
        os.environ["FINCOACH_JWT_SECRET_FILE"] = str(path)


@pytest.fixture(scope="session", params=BACKENDS)
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A freshly migrated database of each backend, shared by the whole session."""
    async for url in migrated_database(request.param, tmp_path_factory):
        yield url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    db = make_engine(database_url)
    yield db
    await db.dispose()


async def truncate_all(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(delete(table))


@pytest.fixture
async def clean_engine(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The session's engine, with every table emptied after the test."""
    yield engine
    await truncate_all(engine)


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registry with small but real models, trained once per test session (~10 s)."""
    from threadpoolctl import threadpool_limits

    from fincoach.training.pipeline import TrainConfig, run
    from models.registry import ModelRegistry

    root = tmp_path_factory.mktemp("artifacts")
    with threadpool_limits(1):
        run(
            TrainConfig(users=200, weeks=40, seed=3, quick=True, score_policies=False),
            ModelRegistry(root),
        )
    return str(root)


@pytest.fixture
def settings(database_url: str, trained_models: str) -> Settings:
    return test_settings(database_url, model_dir=trained_models)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` over ASGI, inside the app's lifespan (startup before, shutdown after)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        # The operations token, so that /health, /models and /jobs give their details (an
        # anonymous caller learns liveness only: tests/api/test_security.py).
        token = app.state.settings.ops_token.get_secret_value()
        headers = {"X-Ops-Token": token} if token else {}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as c:
            yield c


@pytest.fixture
async def client(clean_engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API in-process over ASGI, on a clean database."""
    app = create_app(settings, engine=clean_engine)
    async with serving(app) as c:
        yield c


async def load_recent_users(
    engine: AsyncEngine,
    settings: Settings,
    *,
    users: int,
    weeks: int,
    seed: int,
    first_index: int = 0,
) -> Any:
    """Simulated users whose history ends this week, loaded with the demo password (hashed
    with the settings' cheap test cost) as demo<first_index + 1>@... upwards. Returns the
    population."""
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from fincoach.training.demo_data import DEMO_PASSWORD, load_population
    from fincoach.training.simulator import SimConfig, simulate
    from fincoach.usecases.passwords import hash_password

    today = datetime.now(UTC).date()
    start = today - timedelta(days=today.weekday()) - timedelta(weeks=weeks)
    population = simulate(SimConfig(n_users=users, n_weeks=weeks, seed=seed, start=start))
    if first_index:
        population.users = [replace(u, index=u.index + first_index) for u in population.users]
    await load_population(
        engine, population, hashed_password=hash_password(DEMO_PASSWORD, settings)
    )
    return population


async def register(client: httpx.AsyncClient, email: str, password: str = "s3cret-pass") -> dict:
    """Register a user and return Authorization headers for them."""
    r = await client.post("/auth/register", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    r = await client.post("/auth/token", data={"username": email, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> Callable[..., None]:
    """A fault-injection test states what it sent, what was acknowledged and what was found
    afterwards: ``fault_report("events", sent=..., acknowledged=..., found=..., **more)``.
    The figures go into the test's report and pytest's summary prints them ("fault injection")."""

    def report(what: str, *, sent: int, acknowledged: int, found: int | str, **more: Any) -> None:
        figures = {"sent": sent, "acknowledged": acknowledged, "found": found, **more}
        request.node.user_properties.append(("fault", (what, figures)))

    return report


@pytest.fixture(autouse=True)
def _no_ray_outside_integration(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only tests marked `integration` may start Ray (Ray's own tests/unit habit)."""
    if request.node.get_closest_marker("integration"):
        return
    import ray

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("this test must not start Ray; mark it integration")

    monkeypatch.setattr(ray, "init", refuse)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which database backends the database tests actually ran on (CI shows PostgreSQL),
    and what each fault-injection test sent, saw acknowledged and found afterwards."""
    _fault_summary(terminalreporter)
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            for backend in ("sqlite", "postgresql"):
                if f"[{backend}" in nodeid or f"-{backend}]" in nodeid or f"-{backend}-" in nodeid:
                    if report.when == "call" or outcome == "skipped":
                        counts.setdefault(backend, {}).setdefault(outcome, 0)
                        counts[backend][outcome] += 1
    if counts:
        terminalreporter.write_sep("-", "database backends")
        for backend, by_outcome in sorted(counts.items()):
            summary = ", ".join(f"{n} {o}" for o, n in sorted(by_outcome.items()))
            terminalreporter.write_line(f"{backend}: {summary}")


def _fault_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = []
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "") != "call":
                continue
            for key, value in report.user_properties:
                if key == "fault":
                    what, figures = value
                    shown = ", ".join(f"{k} {v}" for k, v in figures.items())
                    lines.append(f"{report.nodeid} [{outcome}] {what}: {shown}")
    if lines:
        terminalreporter.write_sep("-", "fault injection: sent, acknowledged, found")
        for line in sorted(lines):
            terminalreporter.write_line(line)

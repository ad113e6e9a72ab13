"""Fault injection: PostgreSQL restarted while events and feedback stream in.

Sent: single-event POSTs from 8 clients (each with a unique event_id) and GET /health, for
~1.5 s before `pg_ctlcluster ... restart` (fast shutdown, then start) and ~4 s after it.
While the database is down every answer must be a 503 problem with Retry-After (never a 500
or a hang); afterwards every request succeeds again; and every event acknowledged with a 202
is in the database, once. PostgreSQL only (SQLite has no server to restart)."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import time
import uuid
from collections import Counter

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from db.tables import BehavioralEvent
from tests.conftest import IN_CI, register, test_settings


def _cluster() -> str | None:
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    return versions[-1] if versions and shutil.which("pg_ctlcluster") else None


def _restart(version: str) -> float:
    started = time.monotonic()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for _ in range(60):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode == 0:
            break
        time.sleep(0.25)
    return time.monotonic() - started


@pytest.fixture
async def client(clean_engine: AsyncEngine, database_url: str, trained_models: str):
    """The app in-process, rate limits off (8 clients of one user post as fast as they can)."""
    settings = test_settings(database_url, model_dir=trained_models, rate_limit_per_minute=0)
    app = create_app(settings, engine=clean_engine)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


async def test_postgres_restart_during_load_loses_no_acknowledged_event(
    client: httpx.AsyncClient, clean_engine: AsyncEngine, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite has no server to restart")
    version = _cluster()
    if version is None:
        if IN_CI:
            pytest.fail("CI=true but pg_ctlcluster is not available to restart PostgreSQL")
        pytest.skip("pg_ctlcluster not available")
    h = await register(client, f"fault-{uuid.uuid4().hex[:8]}@example.com")
    acked: list[str] = []
    statuses: Counter[int] = Counter()
    bad: list[str] = []
    stop = asyncio.Event()
    timeline: list[tuple[float, int]] = []
    t0 = time.monotonic()

    async def poster(w: int) -> None:
        while not stop.is_set():
            event_id = f"pg-{w}-{uuid.uuid4().hex[:10]}"
            try:
                r = await asyncio.wait_for(
                    client.post(
                        "/events", headers=h, json={"event_type": "search", "event_id": event_id}
                    ),
                    timeout=20,
                )
            except TimeoutError:
                bad.append("request hung for 20 s")
                continue
            statuses[r.status_code] += 1
            timeline.append((time.monotonic() - t0, r.status_code))
            if r.status_code == 202:
                acked.append(event_id)
            elif r.status_code == 503:
                if r.headers.get("retry-after") is None or "problem+json" not in r.headers.get(
                    "content-type", ""
                ):
                    bad.append(f"503 without Retry-After/problem body: {r.headers}")
            else:
                bad.append(f"HTTP {r.status_code}: {r.text[:200]}")
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(poster(w)) for w in range(8)]
    await asyncio.sleep(1.5)
    down_for = await asyncio.to_thread(_restart, version)
    await asyncio.sleep(4.0)
    stop.set()
    await asyncio.gather(*tasks)

    assert not bad, bad[:5]
    assert statuses[202] > 0
    # Recovered: the last second of answers are all 202.
    end = max(t for t, _ in timeline)
    assert all(code == 202 for t, code in timeline if t > end - 1.0), statuses
    async with clean_engine.connect() as conn:
        stored = set(
            (
                await conn.scalars(
                    select(BehavioralEvent.event_id).where(BehavioralEvent.event_type == "search")
                )
            ).all()
        )
    missing = [e for e in acked if not any(s.endswith(f":{e}") for s in stored)]
    assert not missing, f"{len(missing)} acknowledged events lost"
    assert down_for < 60
    if os.environ.get("FINCOACH_FAULT_VERBOSE"):
        print(f"\nrestart {down_for:.1f} s; answers {dict(statuses)}; acked {len(acked)}")  # noqa: T201

"""Fault injection: PostgreSQL restarted while events and feedback stream in.

Sent: single-event POSTs from 8 clients (each with a unique event_id), and from 2 more clients
a loop of a fresh recommendation followed by its feedback, for ~1.5 s before
`pg_ctlcluster ... restart` (fast shutdown, then start) and ~4 s after it. While the database
is down every answer must be a 503 problem with Retry-After (never a 500 or a hang);
afterwards every request succeeds again; and every event acknowledged with a 202 and every
feedback acknowledged with a 200 is in the database, once. PostgreSQL only (SQLite has no
server to restart)."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.config import Settings
from fincoach.db.tables import BehavioralEvent, RecommendationFeedback
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
def settings(database_url: str, trained_models: str) -> Settings:
    """Rate limits off: 8 clients of one user post as fast as they can (conftest's ``client``
    serves the app with these settings)."""
    return test_settings(database_url, model_dir=trained_models, rate_limit_per_minute=0)


async def test_postgres_restart_during_load_loses_no_acknowledged_write(
    client: httpx.AsyncClient, clean_engine: AsyncEngine, database_url: str, fault_report
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
    acked_feedback: list[int] = []
    sent = Counter[str]()
    statuses: Counter[int] = Counter()
    bad: list[str] = []
    stop = asyncio.Event()
    timeline: list[tuple[float, int]] = []
    t0 = time.monotonic()

    async def call(kind: str, method: str, path: str, **kw: Any) -> httpx.Response | None:
        """One request; a 503 must be a problem with Retry-After, anything else but the
        expected success is a fault. None when it hung or was refused."""
        sent[kind] += 1
        kw.setdefault("headers", h)
        try:
            r = await asyncio.wait_for(client.request(method, path, **kw), timeout=20)
        except TimeoutError:
            bad.append("request hung for 20 s")
            return None
        statuses[r.status_code] += 1
        timeline.append((time.monotonic() - t0, r.status_code))
        if r.status_code == 503:
            if r.headers.get("retry-after") is None or "problem+json" not in r.headers.get(
                "content-type", ""
            ):
                bad.append(f"503 without Retry-After/problem body: {r.headers}")
            await asyncio.sleep(0.05)
            return None
        if r.status_code >= 300:
            bad.append(f"{method} {path}: HTTP {r.status_code}: {r.text[:200]}")
            return None
        return r

    async def poster(w: int) -> None:
        while not stop.is_set():
            event_id = f"pg-{w}-{uuid.uuid4().hex[:10]}"
            body = {"event_type": "search", "event_id": event_id}
            r = await call("events", "POST", "/events", json=body)
            if r is not None and r.status_code == 202:
                acked.append(event_id)
            await asyncio.sleep(0.01)

    async def rater() -> None:
        while not stop.is_set():
            rec = await call(
                "recommendations",
                "GET",
                "/coaching/recommendation",
                headers={**h, "Cache-Control": "no-cache"},
            )
            if rec is None:
                continue
            rec_id = rec.json()["id"]
            body = {"recommendation_id": rec_id, "helpful": rec_id % 2 == 0}
            r = await call("feedback", "POST", "/coaching/feedback", json=body)
            if r is not None and r.status_code == 200:
                acked_feedback.append(rec_id)

    tasks = [asyncio.create_task(poster(w)) for w in range(8)]
    tasks += [asyncio.create_task(rater()) for _ in range(2)]
    await asyncio.sleep(1.5)
    down_for = await asyncio.to_thread(_restart, version)
    await asyncio.sleep(4.0)
    stop.set()
    await asyncio.gather(*tasks)

    assert not bad, bad[:5]
    assert acked and acked_feedback, (len(acked), len(acked_feedback))
    # Recovered: the last second of answers are all successes.
    end = max(t for t, _ in timeline)
    assert all(code < 300 for t, code in timeline if t > end - 1.0), statuses
    async with clean_engine.connect() as conn:
        stored = set(
            (
                await conn.scalars(
                    select(BehavioralEvent.event_id).where(BehavioralEvent.event_type == "search")
                )
            ).all()
        )
        rated = (await conn.scalars(select(RecommendationFeedback.recommendation_id))).all()
    client_ids = {s.split(":", 1)[1] for s in stored}  # stored as "<user id>:<client's id>"
    found = [e for e in acked if e in client_ids]
    found_feedback = [i for i in acked_feedback if i in set(rated)]
    fault_report(
        "events",
        sent=sent["events"],
        acknowledged=len(acked),
        found=len(found),
        restart_s=round(down_for, 1),
        answers=dict(sorted(statuses.items())),
    )
    fault_report(
        "feedback",
        sent=sent["feedback"],
        acknowledged=len(acked_feedback),
        found=len(found_feedback),
        recommendations_sent=sent["recommendations"],
    )
    assert len(found) == len(acked), f"{len(acked) - len(found)} acknowledged events lost"
    assert len(found_feedback) == len(acked_feedback), "acknowledged feedback lost"
    assert len(rated) == len(set(rated)), "a feedback stored twice"
    assert down_for < 60

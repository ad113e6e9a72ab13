"""Background jobs on a real database with real models: each job runs and is recorded, the
lease lets exactly one of two schedulers run a due job, and GET /jobs shows the table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.config import Settings
from fincoach.db.tables import (
    BehavioralEvent,
    JobRun,
    ModelPerformance,
    PredictionCache,
    Transaction,
    User,
    UserSegment,
)
from fincoach.http.app import create_app
from fincoach.jobs.runner import JOBS
from fincoach.jobs.scheduler import JobScheduler, ensure_rows, run_now
from tests.conftest import OPS_TOKEN, load_recent_users, test_settings


@pytest.fixture
async def app_state(clean_engine: AsyncEngine, database_url: str, trained_models: str):
    settings: Settings = test_settings(database_url, model_dir=trained_models)
    await load_recent_users(clean_engine, settings, users=8, weeks=12, seed=6)
    # Three users certainly active in the last 7 days, whatever the weekday: an event an hour ago.
    async with clean_engine.begin() as conn:
        ids = (await conn.scalars(select(User.id).order_by(User.id).limit(3))).all()
        now = datetime.now(UTC)
        await conn.execute(
            insert(BehavioralEvent),
            [
                {
                    "event_id": f"fresh-{uid}",
                    "user_id": uid,
                    "event_type": "page_view",
                    "event_data": {},
                    "timestamp": now - timedelta(hours=1),
                }
                for uid in ids
            ],
        )
    app = create_app(settings, engine=clean_engine)
    async with app.router.lifespan_context(app):
        yield app


async def _active_since(engine: AsyncEngine, days: int) -> set[int]:
    """Users with a transaction or an event in the last ``days`` days, read from the rows and
    filtered here in Python (not with the job's own query), whatever day the test runs on."""
    start = datetime.now(UTC) - timedelta(days=days)
    async with engine.connect() as conn:
        rows = [
            *(await conn.execute(select(Transaction.user_id, Transaction.occurred_at))).all(),
            *(await conn.execute(select(BehavioralEvent.user_id, BehavioralEvent.timestamp))).all(),
        ]
    return {int(uid) for uid, at in rows if _utc(at) >= start}


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def _row(engine: AsyncEngine, name: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(JobRun.__table__).where(JobRun.name == name))).one()


async def test_every_job_runs_and_is_recorded(app_state, clean_engine: AsyncEngine) -> None:
    ctx = app_state.state.ctx
    for name in JOBS:
        result = await run_now(ctx, name)
        assert result["status"] == "ok", result
        row = await _row(clean_engine, name)
        assert row.last_status == "ok" and row.runs == 1 and row.lease_owner is None
        expected_next = row.last_finished_at + timedelta(seconds=JOBS[name].period_s)
        assert abs((row.next_run_at - expected_next).total_seconds()) < 1
    active_30, active_7 = (
        await _active_since(clean_engine, 30),
        await _active_since(clean_engine, 7),
    )
    async with clean_engine.connect() as conn:
        segmented = set((await conn.scalars(select(UserSegment.user_id))).all())
        names = set((await conn.scalars(select(ModelPerformance.model_name))).all())
        cached = (
            await conn.execute(select(PredictionCache.user_id, PredictionCache.prediction_type))
        ).all()
    assert len(active_30) == 8 and segmented == active_30
    assert {"forecast_online", "segmentation_online"} <= names
    # The simulated weeks end before this week's Monday, so how many users were active in the
    # last 7 days depends on the weekday; the fixture gives some of them a fresh event.
    assert len(active_7) >= 3
    assert sorted(uid for uid, _ in cached) == sorted(active_7), (
        "cache warming stores one forecast per user active in 7 days, and only for them"
    )
    assert {kind for _, kind in cached} == {"spending"}
    # Idempotent: a second segments run stores the same assignments.
    async with clean_engine.connect() as conn:
        before = sorted(
            (await conn.execute(select(UserSegment.user_id, UserSegment.segment_id))).all()
        )
    assert (await run_now(ctx, "segments"))["status"] == "ok"
    async with clean_engine.connect() as conn:
        after = sorted(
            (await conn.execute(select(UserSegment.user_id, UserSegment.segment_id))).all()
        )
    assert after == before


async def test_cache_cleanup_deletes_only_expired_rows(app_state, clean_engine) -> None:
    ctx = app_state.state.ctx
    async with clean_engine.connect() as conn:
        uid = await conn.scalar(select(func.min(User.id)))
    await ctx.predictions.cache.put(uid, "spending", "k=live", {"x": 1})
    await ctx.predictions.cache.put(uid, "spending", "k=old", {"x": 2}, ttl_s=0.01)
    await asyncio.sleep(0.05)
    result = await run_now(ctx, "cache_cleanup")
    assert result["detail"] == {"deleted": 1}
    assert await ctx.predictions.cache.get(uid, "spending", "k=live") is not None


async def test_two_schedulers_run_a_due_job_once(app_state, clean_engine) -> None:
    ctx = app_state.state.ctx
    await ensure_rows(ctx)
    async with clean_engine.begin() as conn:
        await conn.execute(
            update(JobRun)
            .where(JobRun.name == "cache_cleanup")
            .values(next_run_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    a, b = JobScheduler(ctx), JobScheduler(ctx)
    ran_a, ran_b = await asyncio.gather(a.tick(), b.tick())
    assert sorted(ran_a + ran_b) == ["cache_cleanup"], (ran_a, ran_b)
    assert (await _row(clean_engine, "cache_cleanup")).runs == 1
    assert await a.tick() == [], "not due again until its period has passed"


async def test_jobs_endpoint_and_a_held_lease(app_state, clean_engine) -> None:
    ctx = app_state.state.ctx
    await run_now(ctx, "cache_cleanup")
    async with clean_engine.begin() as conn:
        await conn.execute(
            update(JobRun)
            .where(JobRun.name == "segments")
            .values(
                lease_owner="other-replica", lease_until=datetime.now(UTC) + timedelta(minutes=5)
            )
        )
    with pytest.raises(RuntimeError, match="running elsewhere"):
        await run_now(ctx, "segments")
    transport = httpx.ASGITransport(app=app_state)
    ops = {"X-Ops-Token": OPS_TOKEN}  # /jobs and /health's details need it
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=ops) as c:
        body = (await c.get("/jobs")).json()
        health = (await c.get("/health")).json()
    assert health["jobs"]["cache_cleanup"]["last_status"] == "ok"
    assert set(health["jobs"]) == set(JOBS)
    jobs = {j["name"]: j for j in body["jobs"]}
    assert set(jobs) == set(JOBS)
    assert jobs["cache_cleanup"]["last_status"] == "ok" and jobs["cache_cleanup"]["runs"] == 1
    assert jobs["segments"]["running_on"] == "other-replica"
    assert body["scheduler_enabled"] is False

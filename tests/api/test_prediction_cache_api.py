"""The prediction cache as the API uses it (in-process app, real database, real models):
miss then hit, each invalidation rule, Cache-Control: no-cache, a model-version change, and the
same through the Redis backend."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.http.app import create_app
from fincoach.training.demo_data import DEMO_PASSWORD, demo_email
from tests.conftest import IN_CI, load_recent_users, serving, test_settings

REDIS_URL = os.environ.get("FINCOACH_TEST_REDIS_URL", "")


@pytest.fixture(params=["db", "redis"])
async def cached_client(
    request: pytest.FixtureRequest,
    clean_engine: AsyncEngine,
    database_url: str,
    trained_models: str,
    tmp_path: Path,
):
    """An app on a copy of the registry (a test adds versions), with the SQL or Redis cache,
    and six simulated users."""
    if request.param == "redis" and not REDIS_URL:
        if IN_CI:
            pytest.fail("CI=true but FINCOACH_TEST_REDIS_URL is not set", pytrace=False)
        pytest.skip("set FINCOACH_TEST_REDIS_URL=redis://127.0.0.1:6379/15 to run Redis tests")
    prefix = f"fincoach-test:{uuid.uuid4().hex[:12]}"  # this test's own Redis keys
    models = tmp_path / "artifacts"
    shutil.copytree(trained_models, models)
    settings = test_settings(
        database_url,
        model_dir=str(models),
        cache_url=REDIS_URL if request.param == "redis" else "db",
        cache_redis_prefix=prefix,
    )
    await load_recent_users(clean_engine, settings, users=6, weeks=16, seed=4)
    app = create_app(settings, engine=clean_engine)
    async with serving(app) as c:
        r = await c.post("/auth/token", data={"username": demo_email(0), "password": DEMO_PASSWORD})
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        yield c, app, models
    if request.param == "redis":  # only this test's keys: the Redis is shared
        import redis.asyncio as aioredis

        client = aioredis.from_url(REDIS_URL)
        try:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


async def _get(c: httpx.AsyncClient, path: str, **headers: str) -> dict:
    r = await c.get(path, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_spending_miss_hit_and_transaction_invalidation(cached_client) -> None:
    c, _, _ = cached_client
    first = await _get(c, "/coaching/spending-prediction?weeks=2")
    second = await _get(c, "/coaching/spending-prediction?weeks=2")
    assert first["cached"] is False and second["cached"] is True
    assert second["generated_at"] == first["generated_at"] and second["weeks"] == first["weeks"]
    other_horizon = await _get(c, "/coaching/spending-prediction?weeks=3")
    assert other_horizon["cached"] is False
    bypass = await _get(c, "/coaching/spending-prediction?weeks=2", **{"Cache-Control": "no-cache"})
    assert bypass["cached"] is False
    r = await c.post("/transactions", json={"amount": 42.0, "category": "dine_out"})
    assert r.status_code == 201
    after = await _get(c, "/coaching/spending-prediction?weeks=2")
    assert after["cached"] is False, "a new transaction must drop the spending forecast"


async def test_goal_change_drops_only_that_goal(cached_client) -> None:
    c, _, _ = cached_client
    target = (date.today() + timedelta(weeks=30)).isoformat()
    ids = []
    for name in ("Car", "Trip"):
        r = await c.post("/goals", json={"name": name, "target_amount": 900, "target_date": target})
        ids.append(r.json()["id"])
    for gid in ids:
        assert (await _get(c, f"/coaching/goal-probability/{gid}"))["cached"] is False
        assert (await _get(c, f"/coaching/goal-probability/{gid}"))["cached"] is True
    r = await c.patch(f"/goals/{ids[0]}", json={"current_amount": 300})
    assert r.status_code == 200
    assert (await _get(c, f"/coaching/goal-probability/{ids[0]}"))["cached"] is False
    assert (await _get(c, f"/coaching/goal-probability/{ids[1]}"))["cached"] is True


async def test_feedback_drops_the_recommendation(cached_client) -> None:
    c, _, _ = cached_client
    first = await _get(c, "/coaching/enhanced-recommendation")
    again = await _get(c, "/coaching/enhanced-recommendation")
    assert again["cached"] is True and again["id"] == first["id"]
    r = await c.post("/coaching/feedback", json={"recommendation_id": first["id"], "helpful": True})
    assert r.status_code == 200
    fresh = await _get(c, "/coaching/enhanced-recommendation")
    assert fresh["cached"] is False and fresh["id"] != first["id"]


async def test_a_new_model_version_never_hits_the_old_entry(cached_client) -> None:
    from models.registry import ModelRegistry

    c, app, models = cached_client
    old = await _get(c, "/coaching/spending-prediction?weeks=1")
    assert (await _get(c, "/coaching/spending-prediction?weeks=1"))["cached"] is True
    registry = ModelRegistry(models)
    model, manifest = registry.load("forecast", old["model_version"])
    v2 = registry.save(
        "forecast",
        model,
        metrics=dict(manifest.metrics),
        feature_names=list(manifest.feature_names),
    ).version
    reports = app.state.ctx.models.services["ForecastingDeployment"].apply({"forecast": v2})
    assert all(r.ok for r in reports)
    app.state.ctx.predictions.forget_versions()  # what the 1-second refresh does
    new = await _get(c, "/coaching/spending-prediction?weeks=1")
    assert new["cached"] is False and new["model_version"] == v2


async def test_many_concurrent_cached_reads_do_not_exhaust_the_pool(cached_client) -> None:
    """Every request holds a session connection while it reads the cache: with the cache on
    the same pool, 40 concurrent reads waited for each other until the pool timed out."""
    import asyncio

    c, _, _ = cached_client
    await _get(c, "/coaching/spending-prediction?weeks=2")
    responses = await asyncio.wait_for(
        asyncio.gather(*(c.get("/coaching/spending-prediction?weeks=2") for _ in range(40))),
        timeout=25,
    )
    assert [r.status_code for r in responses] == [200] * 40
    assert all(r.json()["cached"] for r in responses)
    posted = await asyncio.wait_for(
        asyncio.gather(*(c.post("/events", json={"event_type": "search"}) for _ in range(40))),
        timeout=25,
    )
    assert [r.status_code for r in posted] == [202] * 40


# --- issue 14: entries that cannot outlive or cross the goal they were computed from ----------
async def _new_goal(c: httpx.AsyncClient, amount: float = 900) -> int:
    target = (date.today() + timedelta(days=120)).isoformat()
    body = {"name": "Trip", "target_amount": amount, "target_date": target}
    r = await c.post("/goals", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_goal_changed_while_computing_is_not_cached_as_current(
    cached_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, _, _ = cached_client
    gid = await _new_goal(c)
    from fincoach.usecases import predictions

    real = predictions.load_snapshot
    changed = False

    async def change_goal_meanwhile(*args, **kwargs):
        nonlocal changed
        if not changed:
            changed = True
            r = await c.patch(f"/goals/{gid}", json={"current_amount": 850})
            assert r.status_code == 200, r.text
        return await real(*args, **kwargs)

    monkeypatch.setattr(predictions, "load_snapshot", change_goal_meanwhile)
    first = await _get(c, f"/coaching/goal-probability/{gid}")
    assert changed and first["cached"] is False
    after = await _get(c, f"/coaching/goal-probability/{gid}")
    assert after["cached"] is False, "an answer for the old goal was served for the new one"
    assert (await _get(c, f"/coaching/goal-probability/{gid}"))["cached"] is True


async def test_a_reused_goal_id_never_reaches_the_deleted_goals_entry(
    cached_client, clean_engine: AsyncEngine
) -> None:
    """The row is replaced behind the cache's back (a reused id, an invalidation lost): the
    new goal's version differs, so the old entry is never served."""
    from sqlalchemy import delete, insert, select

    from fincoach.db.tables import Goal

    c, _, _ = cached_client
    gid = await _new_goal(c)
    assert (await _get(c, f"/coaching/goal-probability/{gid}"))["cached"] is False
    assert (await _get(c, f"/coaching/goal-probability/{gid}"))["cached"] is True
    async with clean_engine.begin() as conn:
        row = (await conn.execute(select(Goal.__table__).where(Goal.id == gid))).mappings().one()
        await conn.execute(delete(Goal).where(Goal.id == gid))
        values = {k: v for k, v in row.items() if k not in ("created_at", "updated_at")}
        await conn.execute(insert(Goal).values({**values, "target_amount": 5000}))
    again = await _get(c, f"/coaching/goal-probability/{gid}")
    assert again["cached"] is False


async def test_another_users_goal_is_404_before_the_cache_is_read(
    cached_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, app, _ = cached_client
    gid = await _new_goal(c)
    assert (await _get(c, f"/coaching/goal-probability/{gid}"))["cached"] is False
    cache = app.state.ctx.predictions.cache
    reads: list[tuple] = []
    real_get = cache.get

    async def spy(*args, **kwargs):
        reads.append(args)
        return await real_get(*args, **kwargs)

    monkeypatch.setattr(cache, "get", spy)
    r = await c.post("/auth/token", data={"username": demo_email(1), "password": DEMO_PASSWORD})
    other = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = await c.get(f"/coaching/goal-probability/{gid}", headers=other)
    assert r.status_code == 404
    assert reads == []

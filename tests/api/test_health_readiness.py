"""/health as a readiness check: 503 while starting (until every model deployment and the bandit
have answered once), then 200, "degraded" when one of them stops answering."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.bandit_book import BanditBook
from fincoach.config import Settings
from fincoach.http.app import create_app
from fincoach.usecases import health
from fincoach.usecases.clients import LocalModelClients
from tests.conftest import serving


class StartingBandit(BanditBook):
    """A bandit that does not answer yet, then does (as the actor while it starts)."""

    up = False

    async def stats(self) -> Any:
        if not self.up:
            raise ConnectionError("bandit actor not ready")
        return await super().stats()


async def test_health_is_503_until_ready_then_200_and_degraded(
    clean_engine: AsyncEngine, settings: Settings
) -> None:
    bandit = StartingBandit(settings.database_url)
    await bandit.rebuild()
    models = LocalModelClients(str(settings.model_dir), bandit=bandit)
    app = create_app(settings, engine=clean_engine, models=models)
    async with serving(app) as c:
        starting = await c.get("/health")
        assert starting.status_code == 503
        assert starting.headers["retry-after"] == "1"
        assert starting.json()["detail"] == "starting: waiting for bandit"

        bandit.up = True
        ready = await c.get("/health")
        assert ready.status_code == 200 and ready.json()["status"] == "ok"

        bandit.up = False  # once ready, a component going away degrades, it does not 503
        degraded = await c.get("/health")
        assert degraded.status_code == 200
        body = degraded.json()
        assert body["status"] == "degraded" and body["bandit"] == "unavailable"


class GatedBandit(BanditBook):
    """A bandit whose answers wait for ``gate`` (a busy or hung actor), counting the calls."""

    def __init__(self, database_url: str) -> None:
        super().__init__(database_url)
        self.gate = asyncio.Event()
        self.gate.set()
        self.calls = 0
        self.up = True

    async def stats(self) -> Any:
        self.calls += 1
        await self.gate.wait()
        if not self.up:
            raise ConnectionError("bandit actor gone")
        return await super().stats()


async def test_anonymous_health_does_not_wait_for_a_slow_check_while_healthy(
    clean_engine: AsyncEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Liveness probes (load balancers, the attack of issue 14) get the last 200 at once while
    the check behind it runs, one at a time, in the background; they wait again once it has
    failed or when the last 200 is older than LIVENESS_MAX_STALE_S."""
    monkeypatch.setattr(health, "LIVENESS_TTL_S", 0.0)  # every probe wants a fresh check
    bandit = GatedBandit(settings.database_url)
    await bandit.rebuild()
    models = LocalModelClients(str(settings.model_dir), bandit=bandit)
    app = create_app(settings, engine=clean_engine, models=models)
    async with serving(app) as ops:
        anonymous = {"X-Ops-Token": ""}
        first = await ops.get("/health", headers=anonymous)
        assert first.status_code == 200
        assert first.json()["status"] == "ok" and first.json()["models"] == {}  # status only
        checks = bandit.calls

        bandit.gate.clear()  # the next checks hang in the bandit call
        started = time.perf_counter()
        probes = await asyncio.wait_for(
            asyncio.gather(*(ops.get("/health", headers=anonymous) for _ in range(20))), 5.0
        )
        assert time.perf_counter() - started < 2.0
        assert [p.status_code for p in probes] == [200] * 20
        assert all(p.json()["status"] == "ok" for p in probes)
        await asyncio.sleep(0.05)
        assert bandit.calls == checks + 1  # one check for all twenty probes, still running

        bandit.up = False  # the check ends: the bandit is gone (degraded, still a 200)
        bandit.gate.set()
        for _ in range(100):
            if (await ops.get("/health", headers=anonymous)).json()["status"] == "degraded":
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the background check's answer never reached a probe")

        # A last 200 older than LIVENESS_MAX_STALE_S is not answered any more: the probe
        # waits for the check and gets what it says.
        monkeypatch.setattr(health, "LIVENESS_MAX_STALE_S", 0.0)
        bandit.up = True
        bandit.gate.clear()
        waiting = asyncio.ensure_future(ops.get("/health", headers=anonymous))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        bandit.gate.set()
        answer = await waiting
        assert answer.status_code == 200 and answer.json()["status"] == "ok"


async def test_the_app_freezes_its_start_up_heap(
    clean_engine: AsyncEngine, settings: Settings
) -> None:
    """Once started, the app's start-up objects are out of the garbage collector's full scans
    (a full collection over them took 120 ms here, in the middle of requests)."""
    import gc

    app = create_app(settings.model_copy(update={"gc_freeze_on_start": True}), engine=clean_engine)
    try:
        async with serving(app) as c:
            frozen = gc.get_freeze_count()
            assert frozen > 50_000  # the libraries, the app, the models: all of start-up
            assert (await c.get("/health")).status_code == 200
            assert len(gc.get_objects()) < frozen / 5  # what a full collection still scans
    finally:
        gc.unfreeze()

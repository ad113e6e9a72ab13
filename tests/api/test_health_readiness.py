"""/health as a readiness check: 503 while starting (until every model deployment and the bandit
have answered once), then 200, "degraded" when one of them stops answering."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from actors.bandit_book import BanditBook
from fincoach.config import Settings
from fincoach.http.app import create_app
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

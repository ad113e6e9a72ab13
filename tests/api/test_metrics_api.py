"""GET /metrics of the in-process app: Prometheus text with the fincoach_* metrics after a
cached answer, a fallback, the bandit, model calls and events (accepted, duplicate, invalid)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.bandit_book import segment_key
from fincoach.config import Settings
from fincoach.http.app import create_app
from fincoach.observability import metrics
from fincoach.training.demo_data import DEMO_PASSWORD, demo_email
from fincoach.usecases.clients import LocalModelClients
from tests.conftest import load_recent_users, serving


@pytest.fixture
def fresh_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's own in-process registry, so the values below are exact."""
    monkeypatch.setattr(metrics, "_backend", metrics.PrometheusBackend())


@pytest.fixture
async def demo(clean_engine: AsyncEngine, settings: Settings) -> None:
    await load_recent_users(clean_engine, settings, users=3, weeks=16, seed=5)


async def _login(c: httpx.AsyncClient, index: int) -> None:
    r = await c.post("/auth/token", data={"username": demo_email(index), "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text
    c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_show_cache_fallback_bandit_model_and_event_counts(
    fresh_metrics: None, clean_engine: AsyncEngine, settings: Settings, demo: None, tmp_path: Any
) -> None:
    app = create_app(settings, engine=clean_engine)
    async with serving(app) as c:
        await _login(c, 0)
        first = (await c.get("/coaching/spending-prediction?weeks=1")).json()
        again = (await c.get("/coaching/spending-prediction?weeks=1")).json()
        assert first["cached"] is False and again["cached"] is True
        rec = (await c.get("/coaching/enhanced-recommendation")).json()
        fb = await c.post(
            "/coaching/feedback", json={"recommendation_id": rec["id"], "helpful": True}
        )
        assert fb.json()["bandit_updated"] is True
        event = {"event_type": "search", "event_id": "metrics-ev-1"}
        assert (await c.post("/events", json=event)).status_code == 202
        assert (await c.post("/events", json=event)).json()["stored"] is False
        assert (await c.post("/events", json={"event_type": "nope"})).status_code == 422
        assert (await c.get("/transactions", params={"limit": "x"})).status_code == 422

    # Without models: the documented fallbacks, counted per endpoint and model.
    no_models = create_app(
        settings,
        engine=clean_engine,
        models=LocalModelClients(str(tmp_path / "empty"), bandit=None),
    )
    async with serving(no_models) as c:
        await _login(c, 1)
        assert (await c.get("/coaching/recommendation")).json()["fallback"] is True
        r = await c.get("/metrics")

    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    s = _samples(r.text)
    assert _value(s, "fincoach_cache_misses_total", prediction_type="spending") == 1
    assert _value(s, "fincoach_cache_hits_total", prediction_type="spending") == 1
    assert _value(s, "fincoach_cache_misses_total", prediction_type="recommendation") == 1
    assert (
        _value(
            s, "fincoach_fallbacks_total", endpoint="/coaching/recommendation", model="cql_legacy"
        )
        == 1
    )
    assert sum(v for (n, _), v in s.items() if n == "fincoach_bandit_selections_total") == 1
    strategy = {"strategy": rec["strategy"], "segment": segment_key(rec["segment_id"])}
    assert _value(s, "fincoach_bandit_updates_total", **strategy) == 1
    assert _value(s, "fincoach_bandit_rewards_total", **strategy) == 1.0
    forecast = {"model": "forecast", "deployment": "in_process"}
    assert _value(s, "fincoach_model_latency_seconds_count", **forecast) == 1
    assert (
        _value(
            s, "fincoach_model_latency_seconds_count", model="cql_enhanced", deployment="in_process"
        )
        == 1
    )
    assert _value(s, "fincoach_events_accepted_total", source="api") == 1
    assert _value(s, "fincoach_events_rejected_total", reason="duplicate") == 1
    assert (
        _value(s, "fincoach_events_rejected_total", reason="validation") == 1
    )  # not /transactions


async def test_metrics_is_not_in_the_openapi_schema() -> None:
    from tests.conftest import test_settings

    schema = create_app(test_settings("sqlite+aiosqlite:///:memory:")).openapi()
    assert "/metrics" not in schema["paths"]

"""Coaching and financial endpoints in-process: real database, real (small) trained models."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.config import Settings
from fincoach.db.tables import RecommendationFeedback, RecommendationHistory, UserSegment
from fincoach.features.vocab import ACTIONS, SEGMENT_NAMES, SPENDING_CATEGORIES, STRATEGIES
from fincoach.http.app import create_app
from fincoach.training.demo_data import DEMO_PASSWORD, demo_email
from fincoach.usecases.clients import LocalModelClients
from tests.conftest import load_recent_users, serving


async def _login(client: httpx.AsyncClient, index: int) -> dict[str, str]:
    r = await client.post(
        "/auth/token", data={"username": demo_email(index), "password": DEMO_PASSWORD}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
async def demo(client: httpx.AsyncClient, clean_engine: AsyncEngine, settings: Settings):
    """Twelve simulated users whose history ends this week."""
    return await load_recent_users(clean_engine, settings, users=12, weeks=20, seed=8)


async def test_legacy_recommendation_keeps_its_shape(client, demo) -> None:
    h = await _login(client, 0)
    r = await client.get("/coaching/recommendation", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    # The original AIRecommendation's fields, and this backend's beside them.
    assert set(body) == {
        "action_id",
        "action_type",
        "recommendation",
        "confidence",
        "state_summary",
        "generated_at",
        "id",
        "action",
        "recommendation_text",
        "confidence_score",
        "model_version",
        "fallback",
        "created_at",
    }
    assert body["fallback"] is False and body["model_version"].startswith("v")
    assert ACTIONS[body["action_id"]] == body["action"] == body["action_type"]
    assert 0 <= body["action_id"] <= 4, "the legacy route answers among the legacy actions only"
    # A probability among the 5 legacy actions: at least a fifth.
    assert 0.2 <= body["confidence"] <= 1
    assert set(body["state_summary"]) >= {"current_balance", "weekly_spending", "savings_rate"}


async def test_enhanced_recommendation_feedback_reaches_the_bandit(
    client, demo, clean_engine
) -> None:
    h = await _login(client, 1)
    r = await client.get("/coaching/enhanced-recommendation", headers=h)
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["strategy"] in STRATEGIES and rec["strategy_source"] == "bandit"
    assert rec["segment_name"] == SEGMENT_NAMES[rec["segment_id"]]
    assert {"segmentation", "cql_enhanced"} <= set(rec["model_versions"])
    before = (await client.get("/coaching/strategies", headers=h)).json()
    pulls = lambda stats: sum(  # noqa: E731
        a["pulls"] for seg in stats["segments"].values() for a in seg.values()
    )
    fb = await client.post(
        "/coaching/feedback", headers=h, json={"recommendation_id": rec["id"], "helpful": True}
    )
    assert fb.status_code == 200, fb.text
    assert fb.json()["bandit_updated"] is True and fb.json()["reward"] == 1.0
    after = (await client.get("/coaching/strategies", headers=h)).json()
    assert pulls(after) == pulls(before) + 1
    segment = str(rec["segment_id"])
    assert after["segments"][segment][rec["strategy"]]["reward_sum"] >= 1.0
    # A retry is stored once and teaches nothing twice.
    again = await client.post(
        "/coaching/feedback", headers=h, json={"recommendation_id": rec["id"], "helpful": False}
    )
    assert again.json()["duplicate"] is True and again.json()["bandit_updated"] is False
    assert pulls((await client.get("/coaching/strategies", headers=h)).json()) == pulls(after)
    async with clean_engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(RecommendationFeedback)) == 1
        stored = await conn.scalar(select(RecommendationHistory.strategy))
    assert stored == rec["strategy"]
    history = (await client.get("/coaching/history", headers=h)).json()["recommendations"]
    assert history[0]["id"] == str(rec["id"]) and history[0]["feedback"]["helpful"] is True
    assert history[0]["feedback_status"] == "helpful"


async def test_feedback_for_someone_elses_recommendation_is_404(client, demo) -> None:
    a, b = await _login(client, 2), await _login(client, 3)
    rec = (await client.get("/coaching/recommendation", headers=a)).json()
    r = await client.post(
        "/coaching/feedback", headers=b, json={"recommendation_id": rec["id"], "helpful": True}
    )
    assert r.status_code == 404


async def test_segments_are_stored_and_refreshed(client, demo, clean_engine) -> None:
    h = await _login(client, 4)
    seg = (await client.get("/coaching/user-segment", headers=h)).json()
    assert seg["segment_name"] in SEGMENT_NAMES and 0 < seg["confidence"] <= 1
    refreshed = await client.post("/coaching/refresh-segment", headers=h)
    assert refreshed.status_code == 200
    async with clean_engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(UserSegment)) == 1
    insights = (await client.get("/coaching/segment-insights", headers=h)).json()
    assert insights["segment"]["segment_id"] == seg["segment_id"]
    assert len(insights["differences"]) == 3


async def test_peer_comparison_needs_five_other_users(client, demo) -> None:
    h = await _login(client, 5)
    first = await client.get("/financial/peer-comparison", headers=h)
    # Nobody else has a segment yet: the original API's answer for no peer data.
    assert first.status_code == 200 and first.json()["comparison"] is None
    assert first.json()["message"].startswith("No peer data")
    for i in range(12):
        await client.get("/coaching/user-segment", headers=await _login(client, i))
    seg = (await client.get("/coaching/user-segment", headers=h)).json()
    r = await client.get("/coaching/segment-comparison", headers=h)
    # Either enough peers share the segment (an aggregate) or the answer says there are not.
    assert r.status_code == 200 and r.json()["peers"] == []
    assert r.json()["segment"]["segment_id"] == seg["segment_id"]
    if r.json()["message"] is None:
        assert r.json()["peer_count"] >= 5 and r.json()["peer_averages"] is not None
    else:
        assert r.json()["peer_count"] == 0 and r.json()["segment_average"] is None


async def test_spending_prediction_and_goal_probability(client, demo) -> None:
    h = await _login(client, 6)
    r = await client.get("/coaching/spending-prediction?weeks=2", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fallback"] is False and len(body["weeks"]) == 2
    week = body["weeks"][0]
    assert [c["category"] for c in week["categories"]] == list(SPENDING_CATEGORIES)
    assert all(0 <= c["p10"] <= c["p50"] <= c["p90"] for c in week["categories"])
    # spending to the end of each week: quantiles of the running sums, the first week's = its own
    for w in body["weeks"]:
        assert 0 <= w["cumulative_p10"] <= w["cumulative_p50"] <= w["cumulative_p90"]
    assert week["cumulative_p50"] == week["total_p50"]
    assert body["weeks"][1]["cumulative_p50"] >= week["cumulative_p50"]
    for bad in ("0", "5", "x"):
        assert (
            await client.get(f"/coaching/spending-prediction?weeks={bad}", headers=h)
        ).status_code == 422
    goal = await client.post(
        "/goals",
        headers=h,
        json={
            "name": "Trip",
            "target_amount": 800,
            "target_date": (date.today() + timedelta(weeks=20)).isoformat(),
        },
    )
    gp = await client.get(f"/coaching/goal-probability/{goal.json()['id']}", headers=h)
    assert gp.status_code == 200, gp.text
    assert 0 <= gp.json()["probability"] <= 1 and gp.json()["fallback"] is False
    other = await _login(client, 7)
    assert (
        await client.get(f"/coaching/goal-probability/{goal.json()['id']}", headers=other)
    ).status_code == 404
    forecast = (await client.get("/coaching/financial-forecast", headers=h)).json()
    assert len(forecast["weeks"]) == 4
    # The median balance moves each week by the same net income less the median spending added
    # that week (from the cumulative forecast, not from adding weekly medians).
    spent = [w["cumulative_p50"] for w in forecast["spending_prediction"]["weeks"]]
    balance = [w["balance_p50"] for w in forecast["weeks"]]
    net = [balance[w] - balance[w - 1] + spent[w] - spent[w - 1] for w in range(1, 4)]
    assert max(net) - min(net) <= 0.03, (net, spent, balance)


async def test_financial_analytics(client, demo) -> None:
    h = await _login(client, 8)
    patterns = (await client.get("/financial/spending-patterns", headers=h)).json()
    assert len(patterns["categories"]) == len(SPENDING_CATEGORIES)
    prefs = (await client.get("/financial/category-preferences", headers=h)).json()
    assert abs(sum(c["share"] for c in prefs["categories"]) - 1) < 1e-3
    personality = (await client.get("/financial/financial-personality", headers=h)).json()
    assert personality["dominant_trait"] in personality["traits"]


async def test_models_and_deep_health(client) -> None:
    models = (await client.get("/models")).json()["deployments"]
    assert models["RecommenderDeployment"]["cql_enhanced"]["version"] == "v1"
    health = (await client.get("/health")).json()
    assert health["status"] == "ok" and health["bandit"] == "ok"
    assert set(health["models"].values()) == {"ok"}


async def test_without_models_answers_degrade_to_fallbacks(
    clean_engine, settings, demo, tmp_path
) -> None:
    """No trained models and no bandit: every answer is a documented fallback, never a 500."""
    app = create_app(
        settings,
        engine=clean_engine,
        models=LocalModelClients(str(tmp_path / "empty"), bandit=None),
    )
    async with serving(app) as c:
        h = await _login(c, 9)
        legacy = (await c.get("/coaching/recommendation", headers=h)).json()
        assert legacy["fallback"] is True and legacy["model_version"] == "rules"
        enhanced = (await c.get("/coaching/enhanced-recommendation", headers=h)).json()
        assert enhanced["fallback"] is True and enhanced["strategy_source"] == "default"
        spend = (await c.get("/coaching/spending-prediction", headers=h)).json()
        assert spend["fallback"] is True and "moving average" in spend["method"]
        assert (await c.get("/coaching/user-segment", headers=h)).status_code == 503
        health = await c.get("/health")  # never ready: no model has loaded, no bandit
        assert health.status_code == 503 and health.headers["retry-after"]
        assert "bandit" in health.json()["detail"]
        assert "RecommenderDeployment" in health.json()["detail"]
        strategies = (await c.get("/coaching/strategies", headers=h)).json()
        assert strategies["available"] is False


async def test_segment_is_about_money_not_page_views(client, demo) -> None:
    """200 extra page views, same finances: the refreshed segment and its confidence do not
    move; nor do they between two refreshes in a row (same second or not)."""
    h = await _login(client, 6)
    first = (await client.post("/coaching/refresh-segment", headers=h)).json()
    again = (await client.post("/coaching/refresh-segment", headers=h)).json()
    views = {"events": [{"event_type": "page_view"} for _ in range(200)]}
    r = await client.post("/events/batch", headers=h, json=views)
    assert r.status_code == 202, r.text
    after = (await client.post("/coaching/refresh-segment", headers=h)).json()
    for other in (again, after):
        assert other["segment_id"] == first["segment_id"]
        assert other["confidence"] == pytest.approx(first["confidence"])


async def test_parallel_first_segment_stores_are_one_row_never_500(
    client, demo, clean_engine
) -> None:
    """Issue 14: parallel refresh-segment calls for a user with no segment yet raced on the
    unique user_id (a 500 on SQLite, where the savepoint did not help); now one upsert."""
    import asyncio

    h = await _login(client, 5)
    answers = await asyncio.gather(
        *(client.post("/coaching/refresh-segment", headers=h) for _ in range(8))
    )
    assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers]
    async with clean_engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(UserSegment)) == 1


async def test_upsert_segment_inserts_then_updates_in_place(clean_engine) -> None:
    import numpy as np
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from fincoach.db.queries.segments import get_segment, upsert_segment
    from fincoach.db.tables import User
    from fincoach.features.state import BEHAVIOR_FEATURE_NAMES

    sessions = async_sessionmaker(clean_engine, expire_on_commit=False)
    features = np.zeros(len(BEHAVIOR_FEATURE_NAMES))
    async with sessions() as session:
        user = User(email="seg@example.com", hashed_password="x")
        session.add(user)
        await session.flush()
        first = {"segment_id": 1, "segment_name": SEGMENT_NAMES[1], "confidence": 0.5}
        row = await upsert_segment(session, user.id, first, features)
        assert (row.segment_id, row.confidence) == (1, 0.5)
        seen = await get_segment(session, user.id)  # the session now holds this row
        second = {"segment_id": 2, "segment_name": SEGMENT_NAMES[2], "confidence": 0.9}
        row = await upsert_segment(session, user.id, second, features)
        assert row is seen and (row.segment_id, row.confidence) == (2, 0.9)
        await session.commit()
    async with clean_engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(UserSegment)) == 1


async def test_one_user_cannot_steer_the_shared_bandit(client, demo, clean_engine) -> None:
    """Issue 14: ten recommendations and ten "dismissed" feedbacks from one user teach the
    bandit at most the per-user cap per segment and day; the rest are stored, answered and
    teach nothing, also when the statistics are rebuilt from the database."""
    from collections import Counter

    from fincoach.db.queries.recommendations import bandit_counts
    from fincoach.db.tables import RecommendationFeedback as Feedback

    h = await _login(client, 2)
    cap = 3  # the default FINCOACH_BANDIT_FEEDBACK_PER_USER_PER_DAY
    pulls = lambda stats: sum(  # noqa: E731
        a["pulls"] for seg in stats["segments"].values() for a in seg.values()
    )
    before = pulls((await client.get("/coaching/strategies", headers=h)).json())
    taught: Counter[str] = Counter()
    seen = set()
    for _ in range(10):
        r = await client.get(
            "/coaching/enhanced-recommendation", headers={**h, "Cache-Control": "no-cache"}
        )
        rec = r.json()
        if rec["id"] in seen:
            continue
        seen.add(rec["id"])
        fb = await client.post(
            "/coaching/feedback",
            headers=h,
            json={"recommendation_id": rec["id"], "helpful": False, "feedback_type": "dismissed"},
        )
        assert fb.status_code == 200, fb.text
        taught[rec["strategy"]] += fb.json()["bandit_updated"]
    assert len(seen) >= 5
    assert sum(taught.values()) == cap, taught  # one segment: the first three teach
    after = pulls((await client.get("/coaching/strategies", headers=h)).json())
    assert after - before == sum(taught.values()) < len(seen)
    async with clean_engine.connect() as conn:
        stored = await conn.scalar(select(func.count()).select_from(Feedback))
    assert stored == len(seen)  # every feedback is stored
    from sqlalchemy.ext.asyncio import async_sessionmaker

    async with async_sessionmaker(clean_engine)() as session:
        rebuilt = sum(n for _, _, n, _, _ in await bandit_counts(session))
    assert rebuilt == sum(taught.values())

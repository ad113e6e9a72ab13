"""The composed Serve application over HTTP: recommendation -> feedback -> bandit, the bandit
actor killed and rebuilt from the database, a model replica killed under load, a live swap."""

from __future__ import annotations

import asyncio
import time

import pytest
import ray
from sqlalchemy import select

from fincoach.db.tables import RecommendationHistory
from tests.integration.conftest import demo_logins, deploy_config, stored

pytestmark = pytest.mark.integration
N_USERS = 8


@pytest.fixture(scope="module")
async def demo_headers(serve_url: str, serve_db_url: str) -> list[dict[str, str]]:
    return await demo_logins(serve_url, serve_db_url, users=N_USERS, seed=21)


def _pulls(stats: dict) -> int:
    return sum(a["pulls"] for seg in stats["segments"].values() for a in seg.values())


async def _recommend_and_rate(http, headers, helpful: bool) -> dict:
    rec = await http.get("/coaching/enhanced-recommendation", headers=headers)
    assert rec.status_code == 200, rec.text
    fb = await http.post(
        "/coaching/feedback",
        headers=headers,
        json={"recommendation_id": rec.json()["id"], "helpful": helpful},
    )
    assert fb.status_code == 200, fb.text
    return {"rec": rec.json(), "feedback": fb.json()}


async def test_recommendation_feedback_updates_the_bandit(http, demo_headers) -> None:
    h = demo_headers[0]
    before = (await http.get("/coaching/strategies", headers=h)).json()
    assert before["available"] is True
    result = await _recommend_and_rate(http, h, helpful=True)
    assert result["rec"]["fallback"] is False and result["rec"]["strategy_source"] == "bandit"
    assert result["feedback"]["bandit_updated"] is True
    after = (await http.get("/coaching/strategies", headers=h)).json()
    assert _pulls(after) == _pulls(before) + 1
    for path in (
        "/coaching/user-segment",
        "/coaching/spending-prediction",
        "/coaching/recommendation",
        "/financial/spending-patterns",
    ):
        r = await http.get(path, headers=h)
        assert r.status_code == 200, (path, r.text)
    health = (await http.get("/health")).json()
    assert health["status"] == "ok", health


async def test_killed_bandit_actor_rebuilds_the_same_statistics(
    http, demo_headers, serve_app, fault_report
) -> None:
    acked = 0
    for i, h in enumerate(demo_headers[:4]):
        acked += (await _recommend_and_rate(http, h, helpful=i % 2 == 0))["feedback"][
            "bandit_updated"
        ]
    before = (await http.get("/coaching/strategies", headers=demo_headers[0])).json()
    actor = ray.get_actor(serve_app.bandit_actor, namespace="fincoach")
    ray.kill(actor, no_restart=False)  # Ray restarts it; __init__ rebuilds from the database
    deadline = time.monotonic() + 60
    after = None
    while time.monotonic() < deadline:
        after = (await http.get("/coaching/strategies", headers=demo_headers[0])).json()
        if after["available"]:
            break
        await asyncio.sleep(0.5)
    assert after is not None and after["available"], "bandit actor did not come back"
    fault_report(
        "feedback, then the bandit actor killed",
        sent=4,
        acknowledged=acked,
        found=f"{_pulls(after)} pulls after the restart, {_pulls(before)} before the kill",
        statistics_identical=after["segments"] == before["segments"],
    )
    assert acked == 4
    assert after["segments"] == before["segments"]
    # And it keeps learning after the restart.
    await _recommend_and_rate(http, demo_headers[1], helpful=True)
    again = (await http.get("/coaching/strategies", headers=demo_headers[0])).json()
    assert _pulls(again) == _pulls(before) + 1


async def test_requests_are_answered_while_a_model_replica_dies(
    http, demo_headers, serve_app, fault_report
) -> None:
    replicas = [
        a
        for a in ray.util.list_named_actors(all_namespaces=True)
        if "RecommenderDeployment" in a["name"]
    ]
    assert replicas, "no recommender replica found"
    statuses: list[int] = []
    answered: set[int] = set()  # recommendation ids: each answer is a recorded recommendation
    fallbacks = 0

    async def load(seconds: float) -> None:
        nonlocal fallbacks
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            r = await http.get("/coaching/recommendation", headers=demo_headers[i % N_USERS])
            statuses.append(r.status_code)
            if r.status_code == 200:
                fallbacks += r.json()["fallback"]
                answered.add(r.json()["id"])
            i += 1

    task = asyncio.create_task(load(12.0))
    await asyncio.sleep(1.0)
    victim = ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"])
    ray.kill(victim, no_restart=True)
    await task
    found = await stored(
        serve_app.database_url,
        select(RecommendationHistory.id).where(RecommendationHistory.id.in_(answered)),
    )
    fault_report(
        "recommendations, a recommender replica killed",
        sent=len(statuses),
        acknowledged=statuses.count(200),
        found=f"{len(found)} of {len(answered)} distinct recommendation ids",
        fallbacks=fallbacks,
    )
    assert statuses and set(statuses) == {200}, statuses
    assert found == answered, "an answered recommendation is not in the database"
    # Serve replaced the replica: the model answers again without fallback.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = await http.get("/coaching/recommendation", headers=demo_headers[0])
        if r.status_code == 200 and not r.json()["fallback"]:
            break
        await asyncio.sleep(1.0)
    else:
        pytest.fail("the recommender did not recover")


async def test_live_swap_under_load_fails_no_request(http, demo_headers, serve_app) -> None:
    from models.registry import ModelRegistry

    registry = ModelRegistry(serve_app.args["model_dir"])
    model, manifest = registry.load("cql_legacy", "v1")
    v2 = registry.save(
        "cql_legacy",
        model,
        metrics=dict(manifest.metrics),
        feature_names=list(manifest.feature_names),
    ).version
    statuses: list[int] = []
    versions: list[str] = []

    async def load(seconds: float) -> None:
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            r = await http.get("/coaching/recommendation", headers=demo_headers[i % N_USERS])
            statuses.append(r.status_code)
            if r.status_code == 200:
                versions.append(r.json()["model_version"])
            i += 1

    task = asyncio.create_task(load(15.0))
    await asyncio.sleep(2.0)
    await asyncio.to_thread(
        deploy_config,
        serve_app.args,
        port=serve_app.port,
        versions={"RecommenderDeployment": {"cql_legacy": v2}},
    )
    await task
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    assert versions[0] == "v1" and versions[-1] == v2
    models = (await http.get("/models")).json()["deployments"]["RecommenderDeployment"]
    assert models["cql_legacy"]["version"] == v2 and models["cql_legacy"]["last_swap"]["ok"]

    # A version that does not exist is refused: the current one keeps serving, and /models says why.
    await asyncio.to_thread(
        deploy_config,
        serve_app.args,
        port=serve_app.port,
        versions={"RecommenderDeployment": {"cql_legacy": "v99"}},
    )
    models = (await http.get("/models")).json()["deployments"]["RecommenderDeployment"]
    assert models["cql_legacy"]["version"] == v2
    assert models["cql_legacy"]["last_swap"]["ok"] is False
    assert "v99" in models["cql_legacy"]["last_swap"]["error"]
    r = await http.get("/coaching/recommendation", headers=demo_headers[0])
    assert r.status_code == 200 and r.json()["model_version"] == v2

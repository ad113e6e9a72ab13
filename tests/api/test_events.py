"""The events API and tracking middleware in-process: validation, privacy, idempotency,
202-after-commit, page views with route templates only, and the behavior summary."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.db.tables import BehavioralEvent
from tests.conftest import register


async def _events(engine: AsyncEngine, **where: object) -> list[Any]:
    async with engine.connect() as conn:
        stmt = select(BehavioralEvent.__table__)
        for k, v in where.items():
            stmt = stmt.where(getattr(BehavioralEvent, k) == v)
        return list((await conn.execute(stmt)).all())


async def test_event_is_committed_before_202(client: httpx.AsyncClient, clean_engine) -> None:
    h = await register(client, "ev1@example.com")
    r = await client.post(
        "/events",
        headers=h,
        json={"event_type": "search", "event_id": "e-1", "event_data": {"query": "rent"}},
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"event_id": "e-1", "stored": True, "status": "accepted"}
    # 202 means committed: a separate connection sees it at once.
    rows = await _events(clean_engine, event_type="search")
    assert len(rows) == 1 and rows[0].event_data == {"query": "rent"}


async def test_a_retry_is_stored_once(client: httpx.AsyncClient, clean_engine) -> None:
    h = await register(client, "ev2@example.com")
    body = {"event_type": "filter", "event_id": "same-id", "event_data": {"f": "food"}}
    first, second = await asyncio.gather(
        client.post("/events", headers=h, json=body), client.post("/events", headers=h, json=body)
    )
    third = await client.post("/events", headers=h, json=body)
    stored = sorted(r.json()["stored"] for r in (first, second, third))
    assert [r.status_code for r in (first, second, third)] == [202, 202, 202]
    assert stored == [False, False, True]
    assert len(await _events(clean_engine, event_type="filter")) == 1


async def test_event_ids_are_per_user(client: httpx.AsyncClient, clean_engine) -> None:
    a = await register(client, "ev3a@example.com")
    b = await register(client, "ev3b@example.com")
    body = {"event_type": "search", "event_id": "shared", "event_data": {}}
    ra = await client.post("/events", headers=a, json=body)
    rb = await client.post("/events", headers=b, json=body)
    assert ra.json()["stored"] and rb.json()["stored"], "another user's id must not collide"


async def test_batch_counts_duplicates(client: httpx.AsyncClient, clean_engine) -> None:
    h = await register(client, "ev4@example.com")
    events = [{"event_type": "page_view", "event_id": f"b-{i % 7}"} for i in range(10)]
    r = await client.post("/events/batch", headers=h, json={"events": events})
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 7 and r.json()["duplicates"] == 3


async def test_invalid_events_are_422_naming_the_problem(client: httpx.AsyncClient) -> None:
    h = await register(client, "ev5@example.com")
    now = datetime.now(UTC)
    cases = {
        "event_type": {"event_type": "teleport"},
        "timestamp": {
            "event_type": "search",
            "timestamp": (now + timedelta(minutes=6)).isoformat(),
        },
        "event_data": {"event_type": "search", "event_data": {"x": "y" * 9000}},
    }
    for field, body in cases.items():
        r = await client.post("/events", headers=h, json=body)
        assert r.status_code == 422, (field, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert any(field in e["field"] for e in r.json()["errors"]), (field, r.json())
    old = (now - timedelta(days=31)).isoformat()
    batch = [{"event_type": "search"}] * 3 + [{"event_type": "search", "timestamp": old}]
    r = await client.post("/events/batch", headers=h, json={"events": batch})
    assert r.status_code == 422
    assert any("events.3.timestamp" in e["field"] for e in r.json()["errors"]), r.json()
    r = await client.post(
        "/events/batch", headers=h, json={"events": [{"event_type": "search"}] * 501}
    )
    assert r.status_code == 422
    assert (await client.post("/events", json={"event_type": "search"})).status_code == 401


async def test_personal_data_never_reaches_the_database(client, clean_engine) -> None:
    h = await register(client, "ev6@example.com")
    data = {
        "password": "hunter2",
        "card_number": "4111 1111 1111 1111",
        "note": "mail me at jane.doe@example.org or call +44 20 7946 0958",
        "nested": [{"iban": "GB82WEST12345698765432"}, {"text": "card 4111-1111-1111-1111"}],
        "ip_address": "203.0.113.9",
        "amount": 12.5,
    }
    r = await client.post("/events", headers=h, json={"event_type": "purchase", "event_data": data})
    assert r.status_code == 202, r.text
    (row,) = await _events(clean_engine, event_type="purchase")
    stored = json.dumps(row.event_data)
    for secret in ("hunter2", "4111", "jane.doe", "7946", "GB82", "203.0.113.9"):
        assert secret not in stored, (secret, stored)
    assert row.event_data["amount"] == 12.5


async def test_middleware_records_route_templates_only(client, clean_engine) -> None:
    h = await register(client, "ev7@example.com")
    r = await client.post(
        "/goals",
        headers=h,
        json={"name": "Trip", "target_amount": 500, "target_date": "2031-01-01"},
    )
    goal_id = r.json()["id"]
    session_id = r.headers["x-session-id"]  # created: no header or cookie came in
    assert session_id and f"fincoach_session={session_id}" in r.headers["set-cookie"]
    # The client keeps the cookie, so its next request continues the session.
    r = await client.get(f"/goals/{goal_id}?secret=abc", headers=h)
    assert r.status_code == 200 and "x-session-id" not in r.headers
    await client.get("/health")
    await client.get(f"/goals/{goal_id}", headers={**h, "X-Session-ID": "my-session-1"})
    await asyncio.sleep(0.1)  # the middleware queues after the response; the batcher writes
    rows = await _wait_for_page_views(clean_engine, 4)
    routes = [r.event_data["route"] for r in rows]
    assert "/goals/{goal_id}" in routes and "/goals" in routes
    # Only the template, method and status: never the id, the query string or the raw path.
    assert all(set(r.event_data) == {"route", "method", "status"} for r in rows)
    assert all(
        r.event_data["route"] in {"/goals", "/goals/{goal_id}", "/auth/register", "/auth/token"}
        for r in rows
    ), routes
    assert all("secret" not in json.dumps(r.event_data) for r in rows)
    assert not any(r.event_data["route"].startswith("/health") for r in rows)
    by_route = {(r.event_data["route"], r.session_id) for r in rows}
    assert ("/goals", session_id) in by_route and ("/goals/{goal_id}", session_id) in by_route
    assert "my-session-1" in {r.session_id for r in rows}


async def _wait_for_page_views(engine: AsyncEngine, n: int) -> list:
    for _ in range(50):
        rows = await _events(engine, event_type="page_view")
        if len(rows) >= n:
            return rows
        await asyncio.sleep(0.05)
    return await _events(engine, event_type="page_view")


async def test_summary_and_behavioral_insights(client, clean_engine) -> None:
    h = await register(client, "ev8@example.com")
    now = datetime.now(UTC)
    events = [
        {"event_type": "page_view", "timestamp": (now - timedelta(days=d, minutes=1)).isoformat()}
        for d in range(0, 29)
    ] + [
        {"event_type": "search", "timestamp": (now - timedelta(hours=h)).isoformat()}
        for h in range(1, 41)
    ]
    r = await client.post("/events/batch", headers=h, json={"events": events})
    assert r.status_code == 202, r.text
    summary = (await client.get("/events/summary", headers=h)).json()
    assert summary["summary"]["events_by_type"]["search"] == 40
    assert summary["summary"]["events_by_type"]["page_view"] >= 29
    assert 0 < summary["engagement_score"] <= 100
    change = summary["behavior_change"]
    assert change["significant"] and change["direction"] == "increase"
    assert "binomial" in change["test"]
    insights = (await client.get("/coaching/behavioral-insights", headers=h)).json()
    assert insights["activity"]["behavior_change"]["significant"]
    assert "savings_rate" in insights["spending_behavior"] and insights["insights"]

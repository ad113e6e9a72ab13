"""User scoping (another user's ids are 404) and input validation (422 / 413 problems)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.conftest import register

FUTURE = (date.today() + timedelta(days=90)).isoformat()


async def _goal_and_tx(client, headers) -> tuple[int, int]:
    g = await client.post(
        "/goals",
        headers=headers,
        json={"name": "Trip", "target_amount": 1500, "target_date": FUTURE},
    )
    assert g.status_code == 201, g.text
    t = await client.post(
        "/transactions",
        headers=headers,
        json={"amount": 12.5, "category": "groceries", "merchant": "FreshMart"},
    )
    assert t.status_code == 201, t.text
    return g.json()["id"], t.json()["id"]


async def test_other_users_goal_and_transaction_are_404(client) -> None:
    alice = await register(client, "alice@example.com")
    bob = await register(client, "bob@example.com")
    goal_id, tx_id = await _goal_and_tx(client, alice)

    for method, url, body in [
        ("GET", f"/goals/{goal_id}", None),
        ("PATCH", f"/goals/{goal_id}", {"name": "mine now"}),
        ("DELETE", f"/goals/{goal_id}", None),
        ("GET", f"/transactions/{tx_id}", None),
        ("DELETE", f"/transactions/{tx_id}", None),
    ]:
        r = await client.request(method, url, headers=bob, json=body)
        assert r.status_code == 404, (method, url)
        assert r.json()["code"] == "NOT_FOUND"
        assert "Trip" not in r.text and "FreshMart" not in r.text

    # Bob's lists do not show Alice's rows; Alice still has hers, unchanged.
    assert (await client.get("/goals", headers=bob)).json() == []
    assert (await client.get("/transactions", headers=bob)).json()["total"] == 0
    mine = await client.get(f"/goals/{goal_id}", headers=alice)
    assert mine.status_code == 200 and mine.json()["name"] == "Trip"
    assert (await client.get(f"/transactions/{tx_id}", headers=alice)).status_code == 200


async def test_goal_crud_round_trip(client) -> None:
    h = await register(client, "gina@example.com")
    goal_id, _ = await _goal_and_tx(client, h)
    r = await client.patch(f"/goals/{goal_id}", headers=h, json={"current_amount": 300})
    assert r.status_code == 200 and r.json()["current_amount"] == 300
    assert [g["id"] for g in (await client.get("/goals?status=active", headers=h)).json()] == [
        goal_id
    ]
    assert (await client.delete(f"/goals/{goal_id}", headers=h)).status_code == 204
    assert (await client.get(f"/goals/{goal_id}", headers=h)).status_code == 404


async def test_transactions_pagination_and_filters(client) -> None:
    h = await register(client, "hank@example.com")
    base = datetime(2026, 1, 5, 12, tzinfo=UTC)
    for i in range(7):
        r = await client.post(
            "/transactions",
            headers=h,
            json={
                "amount": 10 + i,
                "category": "groceries" if i % 2 else "dine_out",
                "occurred_at": (base + timedelta(days=i)).isoformat(),
            },
        )
        assert r.status_code == 201
    page = (await client.get("/transactions?limit=3&offset=0", headers=h)).json()
    assert page["total"] == 7 and len(page["items"]) == 3
    assert [t["amount"] for t in page["items"]] == [16, 15, 14]  # newest first
    page2 = (await client.get("/transactions?limit=3&offset=6", headers=h)).json()
    assert [t["amount"] for t in page2["items"]] == [10]
    groceries = (await client.get("/transactions?category=groceries", headers=h)).json()
    assert groceries["total"] == 3 and {t["category"] for t in groceries["items"]} == {"groceries"}
    window = (
        await client.get(
            "/transactions", headers=h, params={"start": "2026-01-07", "end": "2026-01-09"}
        )
    ).json()
    assert sorted(t["amount"] for t in window["items"]) == [12, 13]


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ('{"amount": NaN, "category": "groceries"}', "body.amount", "finite"),
        ('{"amount": Infinity, "category": "groceries"}', "body.amount", "finite"),
        ('{"amount": 1e308, "category": "groceries"}', "body.amount", "less than"),
        ('{"amount": -5, "category": "groceries"}', "body.amount", "greater than"),
        ('{"amount": "lots", "category": "groceries"}', "body.amount", "number"),
        (
            '{"amount": 5, "category": "groceries", "occurred_at": "2026-02-30T10:00:00Z"}',
            "body.occurred_at",
            "datetime",
        ),
        (
            '{"amount": 5, "category": "groceries", "occurred_at": "2026-01-01T10:00:00"}',
            "body.occurred_at",
            "timezone",
        ),
        ('{"amount": 5, "category": "caviar"}', "body.category", "groceries"),
        ('{"amount": 5, "category": "groceries", "colour": "red"}', "body.colour", "Extra"),
        ('{"amount": 5, "category": ', "body", "JSON"),
    ],
)
async def test_bad_transaction_input_is_422_naming_the_field(client, body, field, needle) -> None:
    h = await register(client, "ivan@example.com")
    r = await client.post(
        "/transactions", headers={**h, "Content-Type": "application/json"}, content=body
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert problem["code"] == "VALIDATION_ERROR"
    fields = [e["field"] for e in problem["errors"]]
    assert any(f.startswith(field) for f in fields), fields
    assert needle.lower() in problem["detail"].lower()
    assert (await client.get("/transactions", headers=h)).json()["total"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "target_amount": 0, "target_date": FUTURE}, "body.target_amount"),
        ({"name": "x", "target_amount": 100, "target_date": "2026-13-40"}, "body.target_date"),
        ({"name": "x", "target_amount": 100, "target_date": "2001-01-01"}, "body.target_date"),
        ({"name": "", "target_amount": 100, "target_date": FUTURE}, "body.name"),
        ({"name": "x", "target_amount": 100}, "body.target_date"),
    ],
)
async def test_bad_goal_input_is_422(client, body, field) -> None:
    h = await register(client, "judy@example.com")
    r = await client.post("/goals", headers=h, json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"]


async def test_bad_query_and_path_params_are_422(client) -> None:
    h = await register(client, "kim@example.com")
    for url in [
        "/transactions?limit=0",
        "/transactions?limit=100000",
        "/transactions?start=yesterday",
        "/transactions?start=2592",  # Unix seconds: pydantic alone would take them
        "/transactions?end=1e9",
        "/transactions?category=caviar",
        "/goals/abc",
        "/goals/99999999999999999999",
        "/transactions/-1",
    ]:
        r = await client.get(url, headers=h)
        assert r.status_code == 422, url
        assert r.json()["errors"], url


async def test_oversized_body_is_413(client, settings) -> None:
    h = await register(client, "leo@example.com")
    big = "x" * (settings.max_body_bytes + 1)
    r = await client.post(
        "/transactions", headers=h, json={"amount": 5, "category": "other", "description": big}
    )
    assert r.status_code == 413
    assert r.json()["code"] == "BODY_TOO_LARGE"

    async def chunks():  # no Content-Length: the limit must hold for streamed bodies too
        for _ in range(settings.max_body_bytes // 1000 + 2):
            yield b" " * 1000

    r = await client.post(
        "/transactions", headers={**h, "Content-Type": "application/json"}, content=chunks()
    )
    assert r.status_code == 413


async def test_unknown_route_and_method_are_problems(client) -> None:
    r = await client.get("/no-such-thing")
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    r = await client.put("/health")
    assert r.status_code == 405 and r.json()["code"] == "METHOD_NOT_ALLOWED"


async def test_health_reports_database(client) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json()["database"] == "ok"
    assert r.headers["x-request-id"]


# --- issue 14: dates outside a sane range are 422s, never 500s --------------------------------
@pytest.mark.parametrize(
    "occurred_at",
    [
        "0001-01-01T00:00:00+14:00",  # overflows when converted to UTC
        "0001-01-01T00:00:00+00:00",
        "1899-12-31T23:59:59+00:00",
        "9999-12-31T23:59:59-14:00",  # overflows the other way
        "2201-01-01T00:00:00+00:00",
    ],
)
async def test_transaction_dates_out_of_range_are_422(client, occurred_at: str) -> None:
    headers = await register(client, f"d{uuid.uuid4().hex[:8]}@example.com")
    body = {"amount": 5, "category": "groceries", "occurred_at": occurred_at}
    r = await client.post("/transactions", json=body, headers=headers)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    "bound",
    ["0001-01-01T00:00:00+14:00", "0001-01-01", "9999-12-31T23:59:59-14:00", "1800-01-01"],
)
async def test_transaction_filters_out_of_range_are_422(client, bound: str) -> None:
    headers = await register(client, f"f{uuid.uuid4().hex[:8]}@example.com")
    for name in ("start", "end"):
        r = await client.get("/transactions", params={name: bound}, headers=headers)
        assert r.status_code == 422, (name, r.text)


async def test_goal_target_dates_in_the_past_or_far_away_are_422(client) -> None:
    headers = await register(client, f"g{uuid.uuid4().hex[:8]}@example.com")
    future = (date.today() + timedelta(days=60)).isoformat()
    for target in ("0001-01-01", "1999-01-01", "3000-01-01"):
        body = {"name": "Trip", "target_amount": 100, "target_date": target}
        r = await client.post("/goals", json=body, headers=headers)
        assert r.status_code == 422, (target, r.text)
    r = await client.post(
        "/goals",
        json={"name": "Trip", "target_amount": 100, "target_date": future},
        headers=headers,
    )
    assert r.status_code == 201
    gid = r.json()["id"]
    r = await client.patch(f"/goals/{gid}", json={"target_date": "2001-01-01"}, headers=headers)
    assert r.status_code == 422, r.text


# --- issue 14: per-user quotas ----------------------------------------------------------------
@pytest.fixture
async def quota_client(clean_engine, database_url, trained_models):
    from fincoach.http.app import create_app
    from tests.conftest import serving, test_settings

    settings = test_settings(
        database_url,
        model_dir=trained_models,
        quota_goals_per_user=3,
        quota_events_per_day=25,
        quota_transactions_per_day=2,
    )
    async with serving(create_app(settings, engine=clean_engine)) as c:
        yield c


async def test_quotas_refuse_what_one_user_creates_past_them(quota_client) -> None:
    c = quota_client
    h = await register(c, f"q{uuid.uuid4().hex[:8]}@example.com")
    other = await register(c, f"o{uuid.uuid4().hex[:8]}@example.com")
    target = (date.today() + timedelta(days=60)).isoformat()
    goal = {"name": "Trip", "target_amount": 100, "target_date": target}
    for _ in range(3):
        assert (await c.post("/goals", json=goal, headers=h)).status_code == 201
    r = await c.post("/goals", json=goal, headers=h)
    assert r.status_code == 422 and "at most 3 goals" in r.json()["detail"]
    assert (await c.post("/goals", json=goal, headers=other)).status_code == 201  # per user

    tx = {"amount": 5, "category": "groceries"}
    for _ in range(2):
        assert (await c.post("/transactions", json=tx, headers=h)).status_code == 201
    r = await c.post("/transactions", json=tx, headers=h)
    assert r.status_code == 429 and "quota" in r.json()["detail"].lower()
    assert int(r.headers["Retry-After"]) > 0

    # The writes above record a few events of their own (goal changes): well under 25.
    views = {"events": [{"event_type": "page_view"} for _ in range(15)]}
    assert (await c.post("/events/batch", json=views, headers=h)).status_code == 202
    r = await c.post("/events/batch", json=views, headers=h)  # 30+ > 25: refused whole
    assert r.status_code == 429 and "quota" in r.json()["detail"].lower()
    assert (await c.post("/events/batch", json=views, headers=other)).status_code == 202


async def test_parallel_goals_do_not_pass_the_quota(quota_client) -> None:
    import asyncio

    c = quota_client
    h = await register(c, f"p{uuid.uuid4().hex[:8]}@example.com")
    target = (date.today() + timedelta(days=60)).isoformat()
    goal = {"name": "Trip", "target_amount": 100, "target_date": target}
    answers = await asyncio.gather(*(c.post("/goals", json=goal, headers=h) for _ in range(10)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] * 3 + [422] * 7, codes

"""The API served by Ray Serve behaves as it does in-process: real HTTP, real database."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.integration


async def test_health_docs_and_openapi(http) -> None:
    health = await http.get("/health")
    assert health.status_code == 200 and health.json()["database"] == "ok"
    assert (await http.get("/docs")).status_code == 200
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert {"/auth/register", "/auth/token", "/goals", "/transactions"} <= set(paths)


async def test_register_token_transaction_round_trip(http) -> None:
    email = f"serve-{uuid.uuid4().hex[:8]}@example.com"
    r = await http.post("/auth/register", json={"email": email, "password": "pass-word-1"})
    assert r.status_code == 201, r.text
    r = await http.post("/auth/token", data={"username": email, "password": "pass-word-1"})
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = await http.post(
        "/transactions", headers=headers, json={"amount": 9.99, "category": "dine_out"}
    )
    assert r.status_code == 201, r.text
    listed = (await http.get("/transactions", headers=headers)).json()
    assert listed["total"] == 1 and listed["items"][0]["amount"] == 9.99


async def test_problems_survive_the_proxy(http) -> None:
    r = await http.get("/users/me")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    r = await http.post(
        "/auth/register",
        content=b'{"email": "x@example.com", "password": NaN}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.password"
    r = await http.post(
        "/auth/register",
        content=b"x" * (2 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413

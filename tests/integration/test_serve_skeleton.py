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


async def test_the_web_clients_preflight_and_json_login_through_serve(http) -> None:
    """A browser on the web client's origin: its preflight and the original API's JSON
    register/login/me answered through the proxy with the CORS headers it needs."""
    from tests.integration.conftest import WEB_CLIENT_ORIGIN

    preflight = await http.options(
        "/auth/me",
        headers={
            "Origin": WEB_CLIENT_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == WEB_CLIENT_ORIGIN
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    other = await http.options(
        "/auth/me",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in other.headers
    email = f"web-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": "Pass-word-1", "first_name": "W", "last_name": "C"}
    origin = {"Origin": WEB_CLIENT_ORIGIN}
    r = await http.post(
        "/auth/register", json={**body, "confirmPassword": "Pass-word-1"}, headers=origin
    )
    assert r.status_code == 201, r.text
    assert r.headers["access-control-allow-origin"] == WEB_CLIENT_ORIGIN
    r = await http.post(
        "/auth/login", json={"email": email, "password": "Pass-word-1"}, headers=origin
    )
    assert r.status_code == 200 and r.json()["user"]["first_name"] == "W"
    me = await http.get(
        "/auth/me", headers={**origin, "Authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["email"] == email

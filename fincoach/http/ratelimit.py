"""Rate limits and login throttling, kept in memory per process.

- A token bucket per user id for authenticated requests (checked in ``get_current_user`` once
  the token's signature has been verified, before the user is looked up), and one per client
  address for the anonymous ``/auth`` endpoints: ``FINCOACH_RATE_LIMIT_PER_MINUTE`` tokens a
  minute, at most ``FINCOACH_RATE_LIMIT_BURST`` at once; either set to 0 turns limiting off.
- Login throttling: after ``FINCOACH_LOGIN_MAX_FAILURES`` failed logins for one e-mail, or
  ``FINCOACH_LOGIN_MAX_FAILURES_PER_CLIENT`` from one client address, within
  ``FINCOACH_LOGIN_FAILURE_WINDOW_MINUTES``, ``/auth/token`` answers 429 without checking the
  password. Unknown e-mails are counted like known ones, so the answers do not reveal whether
  an account exists. A successful login clears the failures of its e-mail (not those of the
  client: otherwise one valid account would let a client guess other accounts' passwords).

Every refusal is a 429 ``RATE_LIMITED`` problem with ``Retry-After`` (whole seconds).

Requests from an address in ``FINCOACH_PROXY_ADDRESSES`` (loopback by default) get no
per-address limit: that address is a proxy standing for every client (Serve's HAProxy on this
machine), and limiting it would let one client's failed logins lock everyone out.

The state lives in this process only: each ingress replica limits on its own, so with N
replicas a client can get up to N times the configured rate (and restarting a replica forgets
its counts). Client addresses and e-mails are kept only as keyed digests in memory (the key is
random per process), never logged or stored. The address is the ASGI client of the request:
behind a reverse proxy, let the server take it from the proxy's headers (uvicorn
``--proxy-headers --forwarded-allow-ips``), or every client shares the proxy's bucket.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Any

from fastapi import Request

from fincoach.config import Settings
from fincoach.errors import RateLimited

Clock = Callable[[], float]
# Keys kept per table; the least recently used go first, so memory stays bounded when many
# clients (or a client rotating addresses) show up.
MAX_KEYS = 100_000


class TokenBuckets:
    """One token bucket per key: ``per_minute`` tokens a minute, holding at most ``burst``."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        max_keys: int = MAX_KEYS,
        clock: Clock = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0 and self.burst > 0

    def take(self, key: Hashable) -> float:
        """Take a token for ``key``: 0.0 when there was one, else the seconds until there is."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        rate = self.per_minute / 60.0
        tokens, updated = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - updated) * rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


class FailureWindows:
    """Failures per key in a sliding window; a key with ``limit`` of them is blocked."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        max_keys: int = MAX_KEYS,
        clock: Clock = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[Hashable, deque[float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def _recent(self, key: Hashable, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def blocked_for(self, key: Hashable) -> float:
        """0.0 when ``key`` may try again, else the seconds until it may."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return 0.0
        # The deque holds at most ``limit`` failures: blocked until the oldest leaves the window.
        return times[0] + self.window_s - now

    def fail(self, key: Hashable) -> None:
        if not self.enabled:
            return
        now = self._clock()
        times = self._recent(key, now) or deque(maxlen=self.limit)
        times.append(now)
        self._failures[key] = times
        self._failures.move_to_end(key)
        if len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def reset(self, key: Hashable) -> None:
        self._failures.pop(key, None)


class RateLimits:
    """The limits of one app (one process): users, client addresses, and logins."""

    def __init__(
        self,
        *,
        per_minute: float,
        burst: int,
        login_max_failures: int,
        login_max_failures_per_client: int,
        login_window_s: float,
        proxy_addresses: frozenset[str] = frozenset(),
        clock: Clock = time.monotonic,
    ) -> None:
        self.users = TokenBuckets(per_minute, burst, clock=clock)
        self.clients = TokenBuckets(per_minute, burst, clock=clock)
        self.login_emails = FailureWindows(login_max_failures, login_window_s, clock=clock)
        self.login_clients = FailureWindows(
            login_max_failures_per_client, login_window_s, clock=clock
        )
        self.proxy_addresses = proxy_addresses
        self._key = secrets.token_bytes(32)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = time.monotonic) -> RateLimits:
        return cls(
            per_minute=settings.rate_limit_per_minute,
            burst=settings.rate_limit_burst,
            login_max_failures=settings.login_max_failures,
            login_max_failures_per_client=settings.login_max_failures_per_client,
            login_window_s=settings.login_failure_window_minutes * 60.0,
            proxy_addresses=frozenset(settings.proxy_addresses),
            clock=clock,
        )

    def digest(self, kind: str, value: str) -> bytes:
        """A keyed digest, so that raw addresses and e-mails are never kept."""
        return hashlib.blake2b(f"{kind}\0{value}".encode(), key=self._key, digest_size=16).digest()


def rate_limits(request: Request) -> RateLimits:
    """The app's limits (made on first use from the app's settings)."""
    state: Any = request.app.state
    limits: RateLimits | None = getattr(state, "rate_limits", None)
    if limits is None:
        limits = state.rate_limits = RateLimits.from_settings(state.settings)
    return limits


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _refuse(wait_s: float, detail: str) -> RateLimited:
    return RateLimited(detail, retry_after=max(1, math.ceil(wait_s)))


def enforce_user_limit(request: Request, user_id: int) -> None:
    """Take a token from the user's bucket, or raise ``RateLimited``."""
    wait = rate_limits(request).users.take(user_id)
    if wait > 0:
        raise _refuse(wait, "Too many requests; retry after the time in Retry-After")


def _client_key(limits: RateLimits, request: Request) -> bytes | None:
    """The digest of the client's address, or None for a proxy's (not limited per address)."""
    address = client_address(request)
    return None if address in limits.proxy_addresses else limits.digest("client", address)


async def limit_client(request: Request) -> None:
    """Dependency for anonymous endpoints: a token from the client address's bucket."""
    limits = rate_limits(request)
    key = _client_key(limits, request)
    wait = 0.0 if key is None else limits.clients.take(key)
    if wait > 0:
        raise _refuse(wait, "Too many requests; retry after the time in Retry-After")


def _login_keys(request: Request, email: str) -> tuple[RateLimits, bytes, bytes | None]:
    limits = rate_limits(request)
    return limits, limits.digest("email", email.strip().lower()), _client_key(limits, request)


def check_login_allowed(request: Request, email: str) -> None:
    """Raise ``RateLimited`` while the e-mail or the client has too many recent failures.

    Called before the password is checked, and the same for unknown e-mails."""
    limits, email_key, client_key = _login_keys(request, email)
    wait = limits.login_emails.blocked_for(email_key)
    if client_key is not None:
        wait = max(wait, limits.login_clients.blocked_for(client_key))
    if wait > 0:
        raise _refuse(wait, "Too many failed logins; retry after the time in Retry-After")


def login_failed(request: Request, email: str) -> None:
    limits, email_key, client_key = _login_keys(request, email)
    limits.login_emails.fail(email_key)
    if client_key is not None:
        limits.login_clients.fail(client_key)


def login_succeeded(request: Request, email: str) -> None:
    limits, email_key, _ = _login_keys(request, email)
    limits.login_emails.reset(email_key)

"""Rate limits and login throttling, kept in memory per process.

- A token bucket per user id for authenticated requests (checked in ``get_current_user`` once
  the token's signature has been verified, before the user is looked up), and one per client
  address for the anonymous ``/auth`` endpoints: ``FINCOACH_RATE_LIMIT_PER_MINUTE`` tokens a
  minute, at most ``FINCOACH_RATE_LIMIT_BURST`` at once; either set to 0 turns limiting off.
- Login throttling, per (e-mail, client address) pair: after ``FINCOACH_LOGIN_MAX_FAILURES``
  failed logins of a pair, the pair waits 1 s, 2 s, 4 s ... (at most
  ``FINCOACH_LOGIN_BACKOFF_MAX_S``) after each further failure, answered 429 without checking
  the password. An attacker who knows an e-mail slows only their own tries: the owner, from
  their own address, still signs in. And after ``FINCOACH_LOGIN_MAX_FAILURES_PER_CLIENT``
  failures from one address within ``FINCOACH_LOGIN_FAILURE_WINDOW_MINUTES`` (a spray over
  many e-mails), that address is refused for the window. Unknown e-mails are counted like known
  ones, so the answers do not reveal whether an account exists. A successful login clears its
  pair (not the address's count: otherwise one valid account would let a client guess other
  accounts' passwords). At most ``FINCOACH_LOGIN_MAX_CONCURRENT_PER_CLIENT`` logins of one
  address are checked at once (each is an argon2 hash); more in parallel are a 429 at once.

Every refusal is a 429 ``RATE_LIMITED`` problem with ``Retry-After`` (whole seconds).

Requests from an address in ``FINCOACH_PROXY_ADDRESSES`` (loopback by default) get no
per-address limit: that address is a proxy standing for every client (Serve's HAProxy on this
machine), and limiting it would let one client's failed logins lock everyone out.

The state lives in this process only: each ingress replica limits on its own, so with N
replicas a client can get up to N times the configured rate (and restarting a replica forgets
its counts). Client addresses and e-mails are kept only as keyed digests in memory (the key is
random per process), never logged or stored. The address is the ASGI client of the request,
or, when that is one of ``FINCOACH_TRUSTED_PROXIES`` (none by default), the rightmost
``X-Forwarded-For`` address that is not itself a trusted proxy: a client-sent header is never
believed from anyone else, so it can neither dodge the per-address limits nor aim them at
someone else's address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Request

from fincoach.config import Settings
from fincoach.errors import RateLimited
from schemas.users import normalize_email

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


class Backoff:
    """Failures per key; from the ``limit``-th on, the key waits 1, 2, 4 ... seconds (at most
    ``max_wait_s``) after its last failure. A key quiet for ``forget_s`` starts over."""

    def __init__(
        self,
        limit: int,
        max_wait_s: float,
        forget_s: float,
        *,
        max_keys: int = MAX_KEYS,
        clock: Clock = time.monotonic,
    ) -> None:
        self.limit = limit
        self.max_wait_s = max_wait_s
        self.forget_s = forget_s
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[Hashable, tuple[int, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def _wait(self, count: int) -> float:
        if count < self.limit:
            return 0.0
        return float(min(self.max_wait_s, 2.0 ** min(count - self.limit, 30)))

    def _current(self, key: Hashable, now: float) -> tuple[int, float] | None:
        entry = self._failures.get(key)
        if entry is not None and now - entry[1] > max(self.forget_s, self._wait(entry[0])):
            del self._failures[key]
            return None
        return entry

    def blocked_for(self, key: Hashable) -> float:
        """0.0 when ``key`` may try again, else the seconds until it may."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        entry = self._current(key, now)
        if entry is None:
            return 0.0
        count, last = entry
        return max(0.0, last + self._wait(count) - now)

    def fail(self, key: Hashable) -> None:
        if not self.enabled:
            return
        now = self._clock()
        count = (self._current(key, now) or (0, now))[0] + 1
        self._failures[key] = (count, now)
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
        login_backoff_max_s: float = 900.0,
        proxy_addresses: frozenset[str] = frozenset(),
        trusted_proxies: frozenset[str] = frozenset(),
        login_concurrency: int = 0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.users = TokenBuckets(per_minute, burst, clock=clock)
        self.clients = TokenBuckets(per_minute, burst, clock=clock)
        self.login_pairs = Backoff(
            login_max_failures, login_backoff_max_s, login_window_s, clock=clock
        )
        self.login_clients = FailureWindows(
            login_max_failures_per_client, login_window_s, clock=clock
        )
        self.proxy_addresses = proxy_addresses
        self.trusted_proxies = trusted_proxies
        self.login_concurrency = login_concurrency
        self.logins_in_flight: dict[bytes, int] = {}
        self._key = secrets.token_bytes(32)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = time.monotonic) -> RateLimits:
        return cls(
            per_minute=settings.rate_limit_per_minute,
            burst=settings.rate_limit_burst,
            login_max_failures=settings.login_max_failures,
            login_max_failures_per_client=settings.login_max_failures_per_client,
            login_window_s=settings.login_failure_window_minutes * 60.0,
            login_backoff_max_s=settings.login_backoff_max_s,
            proxy_addresses=frozenset(settings.proxy_addresses),
            trusted_proxies=frozenset(settings.trusted_proxies),
            login_concurrency=settings.login_max_concurrent_per_client,
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


def _ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def forwarded_client(peer: str, header: str | None, trusted: frozenset[str]) -> str:
    """The client's address: ``peer``, unless ``peer`` is a trusted proxy; then the rightmost
    address of ``header`` (X-Forwarded-For) that is not a trusted proxy. A malformed entry
    ends the walk at the address that sent it (never a client-chosen string)."""
    if peer not in trusted or not header:
        return peer
    current = peer
    for entry in reversed(header.split(",")):
        address = _ip(entry)
        if address is None:
            return current
        current = address
        if address not in trusted:
            return address
    return current


def client_address(request: Request) -> str:
    peer = request.client.host if request.client is not None else "unknown"
    return forwarded_client(
        peer, request.headers.get("x-forwarded-for"), rate_limits(request).trusted_proxies
    )


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
    pair = f"{normalize_email(email)}\0{client_address(request)}"
    return limits, limits.digest("login", pair), _client_key(limits, request)


def check_login_allowed(request: Request, email: str) -> None:
    """Raise ``RateLimited`` while the (e-mail, address) pair is backing off or the address has
    too many recent failures.

    Called before the password is checked, and the same for unknown e-mails."""
    limits, email_key, client_key = _login_keys(request, email)
    wait = limits.login_pairs.blocked_for(email_key)
    if client_key is not None:
        wait = max(wait, limits.login_clients.blocked_for(client_key))
    if wait > 0:
        raise _refuse(wait, "Too many failed logins; retry after the time in Retry-After")


@contextmanager
def login_slot(request: Request) -> Iterator[None]:
    """Hold one of the client address's concurrent login slots while its password is checked;
    none free is ``RateLimited`` at once (a proxy's address has no slots to run out of)."""
    limits = rate_limits(request)
    key = _client_key(limits, request)
    if key is None or limits.login_concurrency <= 0:
        yield
        return
    in_flight = limits.logins_in_flight.get(key, 0)
    if in_flight >= limits.login_concurrency:
        raise _refuse(1, "Too many logins at once from this address; retry in a second")
    limits.logins_in_flight[key] = in_flight + 1
    try:
        yield
    finally:
        left = limits.logins_in_flight[key] - 1
        if left:
            limits.logins_in_flight[key] = left
        else:
            del limits.logins_in_flight[key]


def login_failed(request: Request, email: str) -> None:
    limits, email_key, client_key = _login_keys(request, email)
    limits.login_pairs.fail(email_key)
    if client_key is not None:
        limits.login_clients.fail(client_key)


def login_succeeded(request: Request, email: str) -> None:
    limits, email_key, _ = _login_keys(request, email)
    limits.login_pairs.reset(email_key)

"""The prediction cache interface: TTLs per prediction type, cache keys, and the shared checks.

An entry is addressed by (user id, prediction type, key). The key holds everything else the
prediction depends on, model version included, so a model swap never hits an old entry; build
it with `make_key`. Entries are never served after `expires_at` by the injected clock, whatever
the backend still stores.
"""

from __future__ import annotations

import hashlib
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, PositiveFloat

from fincoach.features.vocab import PREDICTION_TYPES

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

# prediction_cache.cache_key is String(200).
MAX_KEY_LENGTH = 200
_DIGEST_LENGTH = 64  # sha256 hex
# A longer key keeps this many leading characters and replaces the rest by "#" + sha256 of the
# whole key, so prefixes up to this length still select exactly the right entries.
MAX_PREFIX_LENGTH = MAX_KEY_LENGTH - 1 - _DIGEST_LENGTH
_PART_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# ":" separates parts, "=" name from value, "#" starts a digest and "%" escapes: values that
# contain them are percent-encoded, so "goal=1:" can never select a key of goal "1:x".
_ESCAPES = str.maketrans({"%": "%25", ":": "%3A", "=": "%3D", "#": "%23"})

Clock = Callable[[], datetime]
KeyPart = str | int | float | bool


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_prediction_type(prediction_type: str) -> str:
    """Return `prediction_type` if it is one of PREDICTION_TYPES, else raise ValueError."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(
            f"unknown prediction_type {prediction_type!r}; expected one of {PREDICTION_TYPES}"
        )
    return prediction_type


def make_key(**parts: KeyPart) -> str:
    """A deterministic cache key ``name=value:name=value`` in the order the parts are given.

    Put the part you invalidate by first (``make_key(goal=17, model="v3", weeks=4)`` gives
    ``goal=17:model=v3:weeks=4``) and always include the model version. Order matters: the
    same parts in another order are another key. Keys over MAX_KEY_LENGTH characters keep
    their first MAX_PREFIX_LENGTH characters and end in "#" + sha256 of the full key.
    """
    if not parts:
        raise ValueError("a cache key needs at least one part")
    fields = []
    for name, value in parts.items():
        if not _PART_NAME.fullmatch(name):
            raise ValueError(f"cache key part name {name!r} is not an identifier")
        fields.append(f"{name}={str(value).translate(_ESCAPES)}")
    key = ":".join(fields)
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[:MAX_PREFIX_LENGTH]}#{digest}"


def key_prefix(**parts: KeyPart) -> str:
    """The prefix selecting every key that starts with these parts (``goal=17:``)."""
    prefix = make_key(**parts) + ":"
    if len(prefix) > MAX_PREFIX_LENGTH:
        raise ValueError(f"a key prefix must be at most {MAX_PREFIX_LENGTH} characters")
    return prefix


class CacheTtls(BaseModel):
    """How long each prediction type stays fresh, in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spending: PositiveFloat = 24 * 3600
    goal: PositiveFloat = 6 * 3600
    segment: PositiveFloat = 24 * 3600
    recommendation: PositiveFloat = 3600

    def ttl_for(self, prediction_type: str) -> float:
        return float(getattr(self, check_prediction_type(prediction_type)))


@dataclass(frozen=True, slots=True)
class CachedPrediction:
    """A cached prediction; `data` is what was stored (JSON types only)."""

    data: dict[str, Any]
    created_at: datetime
    expires_at: datetime

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class PredictionCache(ABC):
    """Checks arguments and stamps entries; a backend only stores, fetches and deletes.

    Errors of the backend (database or Redis down) propagate: whether a broken cache should
    count as a miss is the caller's decision.
    """

    def __init__(self, ttls: CacheTtls, clock: Clock = utcnow) -> None:
        self._ttls = ttls
        self._clock = clock

    @property
    def ttls(self) -> CacheTtls:
        return self._ttls

    async def get(self, user_id: int, prediction_type: str, key: str) -> CachedPrediction | None:
        """The entry, or None if there is none or it has expired."""
        check_prediction_type(prediction_type)
        _check_key(key)
        entry = await self._fetch(user_id, prediction_type, key)
        if entry is None or entry.is_expired(self._now()):
            return None
        return entry

    async def put(
        self,
        user_id: int,
        prediction_type: str,
        key: str,
        data: dict[str, Any],
        ttl_s: float | None = None,
        *,
        session: AsyncSession | None = None,
    ) -> CachedPrediction:
        """Store `data` (replacing any entry under the same key) for `ttl_s` seconds, by default
        the type's TTL. A cache in the database writes it in `session`'s transaction when one
        is given (committed with the caller's writes, isolated from their failure); other
        backends write at once."""
        ttl = self._ttls.ttl_for(prediction_type) if ttl_s is None else float(ttl_s)
        if not (math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"ttl_s must be a positive number of seconds, got {ttl_s!r}")
        _check_key(key)
        now = self._now()
        entry = CachedPrediction(data=data, created_at=now, expires_at=now + timedelta(seconds=ttl))
        await self._store(user_id, prediction_type, key, entry, session)
        return entry

    async def invalidate(
        self, user_id: int, prediction_types: Iterable[str], key_prefix: str | None = None
    ) -> int:
        """Drop the user's entries of these types (only keys starting with `key_prefix` if it is
        given); returns how many were dropped."""
        if isinstance(prediction_types, str):  # "goal" would otherwise be four letters
            raise TypeError("prediction_types must be an iterable of types, not a string")
        types = sorted({check_prediction_type(t) for t in prediction_types})
        if key_prefix is not None and not 0 < len(key_prefix) <= MAX_PREFIX_LENGTH:
            raise ValueError(f"key_prefix must be 1 to {MAX_PREFIX_LENGTH} characters")
        if not types:
            return 0
        return await self._delete(user_id, types, key_prefix)

    async def cleanup_expired(self, now: datetime | None = None) -> int:
        """Delete entries expired at `now` (default: the clock); returns how many."""
        return await self._delete_expired(self._now() if now is None else _aware(now))

    @abstractmethod
    async def close(self) -> None:
        """Release what the cache owns (not an engine it was given)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _now(self) -> datetime:
        return _aware(self._clock())

    @abstractmethod
    async def _fetch(
        self, user_id: int, prediction_type: str, key: str
    ) -> CachedPrediction | None: ...

    @abstractmethod
    async def _store(
        self,
        user_id: int,
        prediction_type: str,
        key: str,
        entry: CachedPrediction,
        session: AsyncSession | None,
    ) -> None: ...

    @abstractmethod
    async def _delete(
        self, user_id: int, prediction_types: list[str], key_prefix: str | None
    ) -> int: ...

    @abstractmethod
    async def _delete_expired(self, now: datetime) -> int: ...


def _check_key(key: str) -> None:
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ValueError(f"cache key must be 1 to {MAX_KEY_LENGTH} characters; use make_key")


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("the cache clock must return timezone-aware datetimes")
    return now.astimezone(UTC)

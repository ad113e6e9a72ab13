"""The prediction cache as the use cases use it: look up, compute on a miss, store, invalidate.

Keys carry the version of every model behind the answer, so a swap never serves the previous
model's answer: the versions come from the model deployments (``/models``), read at most once a
second per process (``VERSIONS_TTL_S``), so for up to that second after a swap a replica can
still hit an entry of the version it last saw; after that, the old entries are unreachable and
expire. Fallback answers are never cached. ``no_cache`` (a request's ``Cache-Control:
no-cache``) skips the lookup and still refreshes the entry. A cache that fails is logged and
treated as a miss: the answer is computed, never refused. Each answer counts as a hit or a miss
in ``fincoach_cache_hits_total`` / ``fincoach_cache_misses_total`` (per prediction type).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from fincoach.cache.base import PredictionCache, key_prefix, make_key
from fincoach.observability import metrics

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

logger = logging.getLogger("fincoach.cache")
M = TypeVar("M", bound=BaseModel)
VERSIONS_TTL_S = 1.0

# What each kind of change makes stale.
ON_TRANSACTION = ("spending", "goal", "recommendation")
ON_FEEDBACK = ("recommendation",)
ON_GOAL_CHANGE = ("recommendation",)  # plus the goal's own entries (prefix goal=<id>)
ON_SEGMENT_CHANGE = ("recommendation",)


def flat_versions(deployments: dict[str, Any]) -> dict[str, str]:
    """{model: version} from ``{deployment: {model: {"version": ...}}}`` (errors skipped)."""
    flat: dict[str, str] = {}
    for info in deployments.values():
        if isinstance(info, dict):
            for name, slot in info.items():
                if isinstance(slot, dict) and slot.get("version"):
                    flat[name] = str(slot["version"])
    return flat


def _valid(model: type[M], data: dict[str, Any]) -> M | None:
    """The cached answer, or None when it no longer fits the answer's schema (stored by an
    older version of the code): a miss, recomputed and stored again."""
    try:
        return model.model_validate({**data, "cached": True})
    except ValidationError:
        logger.info("cached %s does not fit its schema any more: recomputing", model.__name__)
        return None


class CachedPredictions:
    """A ``PredictionCache`` (or None: off) and where the served model versions come from."""

    def __init__(
        self,
        cache: PredictionCache | None,
        versions: Callable[[], Awaitable[dict[str, Any]]],
    ) -> None:
        self.cache = cache
        self._versions = versions
        self._memo: tuple[float, dict[str, str]] | None = None

    def forget_versions(self) -> None:
        """Read the versions afresh on the next call (what the 1-second refresh does)."""
        self._memo = None

    async def model_versions(self) -> dict[str, str]:
        """{model name: version served}, refreshed at most once a second."""
        now = time.monotonic()
        if self._memo is not None and now - self._memo[0] < VERSIONS_TTL_S:
            return self._memo[1]
        flat = flat_versions(await self._versions())
        self._memo = (now, flat)
        return flat

    async def get_or_compute(
        self,
        user_id: int,
        prediction_type: str,
        model: type[M],
        compute: Callable[[], Awaitable[M]],
        *,
        models: Iterable[str],
        no_cache: bool = False,
        session: AsyncSession | None = None,
        **parts: str | int,
    ) -> M:
        """The cached answer for (user, type, parts + model versions), or ``compute()`` stored.

        With ``session``, ``compute()`` leaves its writes uncommitted: they are committed with
        the cache entry, once, before the answer is returned.
        ``model`` must have ``cached``, ``generated_at`` and ``fallback`` fields."""
        if self.cache is None:
            computed = await compute()
            if session is not None:
                await session.commit()
            return computed
        versions = await self.model_versions()
        key = make_key(**parts, **{f"v_{m}": versions.get(m, "none") for m in models})
        if not no_cache:
            try:
                hit = await self.cache.get(user_id, prediction_type, key)
            except Exception as exc:  # noqa: BLE001 - a broken cache is a miss
                logger.warning("cache read failed (%s): computing", exc)
                hit = None
            answer = _valid(model, hit.data) if hit is not None else None
            if answer is not None:
                metrics.count_cache(prediction_type, hit=True)
                return answer
        metrics.count_cache(prediction_type, hit=False)
        answer = await compute()
        if not getattr(answer, "fallback", False):
            try:
                await self.cache.put(
                    user_id,
                    prediction_type,
                    key,
                    answer.model_dump(mode="json"),
                    session=session,
                )
            except Exception as exc:  # noqa: BLE001
                logger.warning("cache write failed (%s)", exc)
        if session is not None:
            await session.commit()
        return answer

    async def invalidate(
        self, user_id: int, prediction_types: Iterable[str], **prefix: str | int
    ) -> None:
        """Drop the user's entries of these types (only those whose key starts with ``prefix``,
        e.g. ``goal=17``). Called after the change is committed."""
        if self.cache is None:
            return
        try:
            await self.cache.invalidate(
                user_id, list(prediction_types), key_prefix(**prefix) if prefix else None
            )
        except Exception as exc:  # noqa: BLE001 - logged loudly: entries may be stale until TTL
            logger.error("cache invalidation failed for user %s: %s", user_id, exc)

    async def close(self) -> None:
        if self.cache is not None:
            await self.cache.close()

"""A local, read-only copy of the bandit's posterior, so that choosing a strategy costs no call.

The bandit actor stays the only writer (feedback updates go to it, each applied once). Every
ingress replica keeps the actor's whole state (a few counters per segment and strategy) and
chooses from it locally; the copy is refreshed in the background when it is older than
``refresh_s`` (one cheap call that returns nothing when the actor's state has not changed) and
right after this replica sends an update. Choosing from a posterior up to ``refresh_s`` old is
batched Thompson sampling: the same arms, explored a little longer. When the actor has not
answered for ``max_stale_s``, the copy is no longer trusted and the bandit counts as unreachable
(the callers' documented fallback), as it would with a call per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fincoach.observability import metrics
from models.bandit import BanditStats

logger = logging.getLogger("fincoach.api")

REFRESH_S = 1.0
MAX_STALE_S = 30.0


class BanditView:
    """``invoke(method, args)`` like the actor's, answering ``select`` and ``stats`` from the
    local copy and passing everything else (``update``) to the actor."""

    def __init__(
        self,
        actor: Any,
        *,
        refresh_s: float = REFRESH_S,
        max_stale_s: float = MAX_STALE_S,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._actor = actor  # async (method, args) -> result
        self._refresh_s = refresh_s
        self._max_stale_s = max_stale_s
        self._rng = np.random.default_rng(seed)
        self._clock = clock
        self._stats: BanditStats | None = None
        self._rebuilt_from = 0
        self._tag: str | None = None
        self._fetched = float("-inf")  # clock time of the last answer from the actor
        self._refreshing: asyncio.Task[None] | None = None

    async def __call__(self, method: str, args: tuple[Any, ...]) -> Any:
        if method == "select":
            return await self.select(*args)
        if method == "stats":
            return await self.stats()
        result = await self._actor(method, args)
        if method == "update":
            self._start_refresh()  # this replica's own feedback shows at once
        return result

    async def select(self, segment: str) -> str | None:
        stats = await self._current()
        if stats is None:
            return None
        strategy = stats.choose(segment, self._rng)
        metrics.count_bandit_selection(strategy, segment)
        return strategy

    async def stats(self) -> dict[str, Any] | None:
        stats = await self._current()
        if stats is None:
            return None
        return {
            "algorithm": stats.algorithm,
            "contexts": stats.stats(),
            "rebuilt_from_feedback": self._rebuilt_from,
        }

    async def _current(self) -> BanditStats | None:
        """The copy, refreshed first when there is none yet; None when it is too old."""
        age = self._clock() - self._fetched
        if self._stats is None:
            self._start_refresh()
            assert self._refreshing is not None
            with contextlib.suppress(Exception):  # logged by _refresh
                await asyncio.shield(self._refreshing)
        elif age > self._refresh_s:
            self._start_refresh()
        if self._stats is None or self._clock() - self._fetched > self._max_stale_s:
            return None
        return self._stats

    def _start_refresh(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            answer = await self._actor("state", (self._tag,))
        except Exception as exc:  # noqa: BLE001 - RayActorError, timeouts: keep the copy
            logger.warning("bandit actor unreachable: %s", exc)
            return
        self._fetched = self._clock()
        if answer is not None:
            self._stats = BanditStats.from_dict(answer["state"])
            self._rebuilt_from = int(answer["rebuilt_from"])
            self._tag = str(answer["tag"])

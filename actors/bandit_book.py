"""The bandit's statistics as a view of the database: rebuilt from recommendation_history and
recommendation_feedback on start, then kept current by feedback updates, each applied once.

Exactly once relative to the database: the rebuild records the highest feedback id it read, and
an update for a feedback id at or below it, or seen before, is ignored. So a restart between a
feedback's commit and its update neither loses nor double-counts it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import numpy as np

from fincoach.db.engine import make_engine, make_sessionmaker
from fincoach.db.queries.recommendations import bandit_counts
from fincoach.features.vocab import STRATEGIES
from fincoach.observability import metrics
from models.bandit import BanditStats

UNKNOWN_SEGMENT = "unknown"


def segment_key(segment_id: int | None) -> str:
    return UNKNOWN_SEGMENT if segment_id is None else str(segment_id)


class BanditBook:
    def __init__(self, database_url: str, algorithm: str = "thompson", seed: int = 0) -> None:
        self._database_url = database_url
        self._algorithm = algorithm
        self._rng = np.random.default_rng(seed)
        self._lock = asyncio.Lock()
        self._stats = BanditStats(list(STRATEGIES), algorithm=algorithm)
        self._upto = 0
        self._seen: set[int] = set()
        self.rebuilt_from = 0
        # Changes with every rebuild and applied update; a restarted book starts a new one.
        self._instance = uuid.uuid4().hex
        self._generation = 0

    async def rebuild(self) -> None:
        """Recompute every count from the database (the source of truth)."""
        engine = make_engine(self._database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                rows = await bandit_counts(session)
        finally:
            await engine.dispose()
        contexts: dict[str, dict[str, dict[str, float]]] = {}
        upto = 0
        for strategy, segment_id, pulls, reward_sum, max_id in rows:
            if strategy not in STRATEGIES:
                continue
            arms = contexts.setdefault(segment_key(segment_id), {})
            arms[strategy] = {"pulls": pulls, "reward_sum": reward_sum}
            upto = max(upto, max_id)
        state = self._stats.to_dict()
        state["contexts"] = contexts
        async with self._lock:
            self._stats = BanditStats.from_dict(state)
            self._upto = upto
            self._seen.clear()
            self.rebuilt_from = sum(int(a["pulls"]) for c in contexts.values() for a in c.values())
            self._generation += 1

    async def select(self, segment: str) -> str:
        async with self._lock:
            strategy = self._stats.choose(segment, self._rng)
        metrics.count_bandit_selection(strategy, segment)
        return strategy

    async def update(self, feedback_id: int, strategy: str, segment: str, reward: float) -> bool:
        """Apply one committed feedback; False if it was already counted."""
        async with self._lock:
            if feedback_id <= self._upto or feedback_id in self._seen:
                return False
            self._stats.update(strategy, segment, reward)
            self._seen.add(feedback_id)
            self._generation += 1
        metrics.count_bandit_update(strategy, segment, reward)
        return True

    async def stats(self) -> dict[str, Any]:
        async with self._lock:
            return {
                "algorithm": self._algorithm,
                "contexts": self._stats.stats(),
                "rebuilt_from_feedback": self.rebuilt_from,
            }

    async def state(self, since: str | None = None) -> dict[str, Any] | None:
        """The whole posterior (``BanditStats.to_dict``) and its tag, or None if ``since`` is
        still the tag (nothing changed): what a reader's local copy refreshes from."""
        async with self._lock:
            tag = f"{self._instance}:{self._generation}"
            if since == tag:
                return None
            return {"tag": tag, "state": self._stats.to_dict(), "rebuilt_from": self.rebuilt_from}

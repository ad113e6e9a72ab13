"""The bandit statistics actor: one named, detached Ray actor around ``BanditBook``.

Ray reruns ``__init__`` when it restarts the actor (``max_restarts=-1``), and ``__init__``
rebuilds the statistics from the database, so killing it loses nothing.
"""

from __future__ import annotations

from typing import Any

import ray

from actors.bandit_book import BanditBook

ACTOR_NAME = "bandit-stats"
NAMESPACE = "fincoach"


# enable_task_events=False: every request calls this actor, and the GCS would keep an event per
# call for the dashboard (up to its cap): the 10-minute soak saw gcs_server grow 59 -> 103 MiB.
# Serve turns them off for its own actors the same way (RAY_SERVE_ENABLE_TASK_EVENTS=0).
@ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=64, enable_task_events=False)
class BanditStatsActor:
    async def __init__(
        self, algorithm: str = "thompson", database_url: str | None = None, seed: int = 0
    ) -> None:
        from fincoach.config import get_settings
        from fincoach.observability.heap import freeze_startup_heap

        self._book = BanditBook(database_url or get_settings().database_url, algorithm, seed)
        await self._book.rebuild()
        freeze_startup_heap()  # every request asks this actor: no full scans of Ray's heap

    async def select(self, segment: str) -> str:
        return await self._book.select(segment)

    async def update(self, feedback_id: int, strategy: str, segment: str, reward: float) -> bool:
        return await self._book.update(feedback_id, strategy, segment, reward)

    async def stats(self) -> dict[str, Any]:
        return await self._book.stats()

    async def state(self, since: str | None = None) -> dict[str, Any] | None:
        return await self._book.state(since)

    async def rebuild(self) -> None:
        await self._book.rebuild()


def get_or_create(
    algorithm: str = "thompson",
    database_url: str | None = None,
    *,
    name: str = ACTOR_NAME,
    namespace: str = NAMESPACE,
) -> Any:
    """The bandit actor of this database (created on first use, found afterwards).

    The arguments only matter to the first caller: an existing actor keeps its own.
    """
    return BanditStatsActor.options(
        name=name,
        namespace=namespace,
        get_if_exists=True,
        lifetime="detached",
    ).remote(algorithm, database_url)

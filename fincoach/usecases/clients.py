"""How the API reaches the models: in-process services, or Ray Serve handles and the bandit actor.

Routes only see ``ModelClients``. A failed or slow call raises ``ModelCallFailed`` and the route
answers with its documented fallback; the bandit being unreachable returns None.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol, TypeVar

import numpy as np

from fincoach.observability import metrics

logger = logging.getLogger("fincoach.api")
T = TypeVar("T")


class ModelCallFailed(Exception):
    """A model deployment failed, timed out or has no model loaded."""


class ModelClients(Protocol):
    async def assign_segment(self, features: np.ndarray) -> dict[str, Any]: ...
    async def segment_characteristics(self) -> list[dict[str, Any]]: ...
    async def forecast(
        self, history: np.ndarray, segment: int | None, horizon: int, week_of_year: int
    ) -> tuple[np.ndarray, str]: ...
    async def goal(
        self, features: np.ndarray, saving_inputs: Mapping[str, Any] | None
    ) -> dict[str, Any]: ...
    async def q_values(self, state: np.ndarray, variant: str) -> tuple[np.ndarray, str]: ...
    async def model_versions(self) -> dict[str, Any]: ...
    async def bandit_select(self, segment: str) -> str | None: ...
    async def bandit_update(
        self, feedback_id: int, strategy: str, segment: str, reward: float
    ) -> bool: ...
    async def bandit_stats(self) -> dict[str, Any] | None: ...


class LocalModelClients:
    """The models in this process (tests, and the in-process peer of the benchmark)."""

    def __init__(self, model_dir: str, bandit: Any | None = None) -> None:
        from models.registry import ModelRegistry
        from models.serving import ForecastingService, RecommenderService, SegmentationService

        registry = ModelRegistry(model_dir)
        self.segmentation = SegmentationService(registry)
        self.forecasting = ForecastingService(registry)
        self.recommender = RecommenderService(registry)
        for service in (self.segmentation, self.forecasting, self.recommender):
            service.apply()
        self.bandit = bandit  # a BanditBook, or None for "unreachable"

    async def _call(self, fn: Any, *args: Any, model: str) -> Any:
        start = time.perf_counter()
        try:
            result = await asyncio.to_thread(fn, *args)
        except Exception as exc:  # noqa: BLE001 - every model failure degrades the same way
            raise ModelCallFailed(f"{type(exc).__name__}: {exc}") from exc
        metrics.observe_model_latency(model, "in_process", time.perf_counter() - start)
        return result

    async def assign_segment(self, features: np.ndarray) -> dict[str, Any]:
        return (await self._call(self.segmentation.assign, features, model="segmentation"))[0]

    async def segment_characteristics(self) -> list[dict[str, Any]]:
        return await self._call(self.segmentation.characteristics, model="segmentation")

    async def forecast(
        self, history: np.ndarray, segment: int | None, horizon: int, week_of_year: int
    ) -> tuple[np.ndarray, str]:
        return await self._call(
            self.forecasting.forecast, history, segment, horizon, week_of_year, model="forecast"
        )

    async def goal(
        self, features: np.ndarray, saving_inputs: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        return await self._call(
            self.forecasting.goal, features, saving_inputs, model="goal_probability"
        )

    async def q_values(self, state: np.ndarray, variant: str) -> tuple[np.ndarray, str]:
        return await self._call(self.recommender.q_values, state, variant, model=f"cql_{variant}")

    async def model_versions(self) -> dict[str, Any]:
        return {
            "SegmentationDeployment": self.segmentation.versions(),
            "ForecastingDeployment": self.forecasting.versions(),
            "RecommenderDeployment": self.recommender.versions(),
        }

    async def bandit_select(self, segment: str) -> str | None:
        return None if self.bandit is None else await self.bandit.select(segment)

    async def bandit_update(
        self, feedback_id: int, strategy: str, segment: str, reward: float
    ) -> bool:
        if self.bandit is None:
            return False
        return await self.bandit.update(feedback_id, strategy, segment, reward)

    async def bandit_stats(self) -> dict[str, Any] | None:
        return None if self.bandit is None else await self.bandit.stats()


class ServeModelClients:
    """Deployment handles and the bandit actor, each call bounded by a timeout."""

    def __init__(
        self,
        segmentation: Any,
        forecasting: Any,
        recommender: Any,
        bandit: Any,
        *,
        timeout_s: float = 2.0,
        batch_q_values: bool = False,
    ) -> None:
        self._seg, self._fc, self._rec, self._bandit = (
            segmentation,
            forecasting,
            recommender,
            bandit,
        )
        self._timeout = timeout_s
        self._q_method = "q_values_batched" if batch_q_values else "q_values"

    async def _await(self, response: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(response, self._timeout)
        except Exception as exc:  # noqa: BLE001 - timeouts, dead replicas, model errors
            raise ModelCallFailed(f"{type(exc).__name__}: {exc}") from exc

    async def assign_segment(self, features: np.ndarray) -> dict[str, Any]:
        return (await self._await(self._seg.assign.remote(features)))[0]

    async def segment_characteristics(self) -> list[dict[str, Any]]:
        return await self._await(self._seg.characteristics.remote())

    async def forecast(
        self, history: np.ndarray, segment: int | None, horizon: int, week_of_year: int
    ) -> tuple[np.ndarray, str]:
        return await self._await(self._fc.forecast.remote(history, segment, horizon, week_of_year))

    async def goal(
        self, features: np.ndarray, saving_inputs: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        return await self._await(self._fc.goal.remote(features, saving_inputs))

    async def q_values(self, state: np.ndarray, variant: str) -> tuple[np.ndarray, str]:
        method = getattr(self._rec, self._q_method)
        return await self._await(method.remote(state, variant))

    async def model_versions(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, handle in (
            ("SegmentationDeployment", self._seg),
            ("ForecastingDeployment", self._fc),
            ("RecommenderDeployment", self._rec),
        ):
            try:
                out[name] = await self._await(handle.versions.remote())
            except ModelCallFailed as exc:
                out[name] = {"error": str(exc)}
        return out

    async def _actor(self, call: Any) -> Any:
        try:
            return await asyncio.wait_for(call, self._timeout)
        except Exception as exc:  # noqa: BLE001 - RayActorError, timeouts: the bandit is optional
            logger.warning("bandit actor unreachable: %s", exc)
            return None

    async def bandit_select(self, segment: str) -> str | None:
        return await self._actor(self._bandit.select.remote(segment))

    async def bandit_update(
        self, feedback_id: int, strategy: str, segment: str, reward: float
    ) -> bool:
        ok = await self._actor(self._bandit.update.remote(feedback_id, strategy, segment, reward))
        return bool(ok)

    async def bandit_stats(self) -> dict[str, Any] | None:
        return await self._actor(self._bandit.stats.remote())

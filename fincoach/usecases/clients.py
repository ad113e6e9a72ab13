"""How the use cases reach the models: one typed facade over two ways of calling them.

``ModelClients`` has one method per model call; each names the deployment and the method,
which the model deployments and the in-process services both implement under the same name
(``models/serving.py``). Underneath, a backend invokes ``(deployment, method, *args)``:
``LocalModelClients`` on in-process services (tests, the CLI, the in-process peer of the
benchmark), ``ServeModelClients`` on Ray Serve handles with a timeout. A failed or slow call raises
``ModelCallFailed`` and the use case answers with its documented fallback; the bandit being
unreachable answers None.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np

from actors.bandit_book import BanditBook
from fincoach.observability import metrics
from fincoach.usecases.bandit_view import BanditView
from fincoach.usecases.coalescer import Coalescer
from models.names import (
    DEPLOYMENT_MODELS,
    FORECAST,
    FORECASTING_DEPLOYMENT,
    GOAL_PROBABILITY,
    RECOMMENDER_DEPLOYMENT,
    SEGMENTATION,
    SEGMENTATION_DEPLOYMENT,
    cql_model,
)

logger = logging.getLogger("fincoach.api")
# (deployment, method, args, model name for the latency metric or None) -> the result
Invoke = Callable[[str, str, tuple[Any, ...], str | None], Awaitable[Any]]
# (method, args) -> the bandit actor's (or book's) result
BanditInvoke = Callable[[str, tuple[Any, ...]], Awaitable[Any]]


class ModelCallFailed(Exception):
    """A model deployment failed, timed out or has no model loaded."""


class ModelClients:
    """The model calls the use cases make, whatever runs the models."""

    def __init__(
        self,
        invoke: Invoke,
        bandit: BanditInvoke | None,
        *,
        q_method: str = "q_values",
        bandit_source: BanditInvoke | None = None,
    ) -> None:
        self._invoke = invoke
        self._bandit = bandit
        # The bandit itself, when ``bandit`` answers from a copy of it.
        self._bandit_source = bandit_source or bandit
        self._q_method = q_method

    async def _call(self, deployment: str, method: str, *args: Any, model: str | None) -> Any:
        try:
            return await self._invoke(deployment, method, args, model)
        except Exception as exc:  # noqa: BLE001 - timeouts, dead replicas, model errors
            raise ModelCallFailed(f"{type(exc).__name__}: {exc}") from exc

    async def assign_segment(self, features: np.ndarray) -> dict[str, Any]:
        assigned = await self._call(SEGMENTATION_DEPLOYMENT, "assign", features, model=SEGMENTATION)
        return assigned[0]

    async def segment_characteristics(self) -> list[dict[str, Any]]:
        return await self._call(SEGMENTATION_DEPLOYMENT, "characteristics", model=SEGMENTATION)

    async def forecast(
        self, history: np.ndarray, segment: int | None, horizon: int, week_of_year: int
    ) -> tuple[np.ndarray, str]:
        return await self._call(
            FORECASTING_DEPLOYMENT,
            "forecast",
            history,
            segment,
            horizon,
            week_of_year,
            model=FORECAST,
        )

    async def forecast_total(self, history: Any, horizon: int) -> tuple[dict[str, Any], str]:
        return await self._call(
            FORECASTING_DEPLOYMENT, "forecast_total", history, horizon, model=FORECAST
        )

    async def goal(
        self, features: np.ndarray, saving_inputs: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        return await self._call(
            FORECASTING_DEPLOYMENT, "goal", features, saving_inputs, model=GOAL_PROBABILITY
        )

    async def q_values(self, state: np.ndarray, variant: str) -> tuple[np.ndarray, str]:
        return await self._call(
            RECOMMENDER_DEPLOYMENT, self._q_method, state, variant, model=cql_model(variant)
        )

    async def model_versions(self) -> dict[str, Any]:
        """{deployment: {model: {version, last_swap}}} or {deployment: {"error": ...}}."""
        out: dict[str, Any] = {}
        for deployment in DEPLOYMENT_MODELS:
            try:
                out[deployment] = await self._call(deployment, "versions", model=None)
            except ModelCallFailed as exc:
                out[deployment] = {"error": str(exc)}
        return out

    async def _actor(self, method: str, *args: Any, source: bool = False) -> Any:
        bandit = self._bandit_source if source else self._bandit
        if bandit is None:
            return None
        try:
            return await bandit(method, args)
        except Exception as exc:  # noqa: BLE001 - RayActorError, timeouts: the bandit is optional
            logger.warning("bandit actor unreachable: %s", exc)
            return None

    async def bandit_select(self, segment: str) -> str | None:
        return await self._actor("select", segment)

    async def bandit_update(
        self, feedback_id: int, strategy: str, segment: str, reward: float
    ) -> bool:
        return bool(await self._actor("update", feedback_id, strategy, segment, reward))

    async def bandit_stats(self, *, fresh: bool = False) -> dict[str, Any] | None:
        """The bandit's statistics; ``fresh``: the actor's own (what shows the bandit), else
        possibly the ingress's copy (what a recommendation reports), up to a second old."""
        return await self._actor("stats", source=fresh)


class LocalModelClients(ModelClients):
    """The models in this process, loaded from the registry, and an in-process bandit (None:
    "unreachable"). ``services`` holds the model services by deployment name."""

    def __init__(self, model_dir: str, bandit: BanditBook | None = None) -> None:
        from models.registry import ModelRegistry
        from models.serving import SERVICES

        registry = ModelRegistry(model_dir)
        self.services = {name: service(registry) for name, service in SERVICES.items()}
        for service in self.services.values():
            service.apply()
        self._book = bandit
        super().__init__(self._on_service, self._on_book if bandit is not None else None)

    async def _on_service(
        self, deployment: str, method: str, args: tuple[Any, ...], model: str | None
    ) -> Any:
        start = time.perf_counter()
        result = await asyncio.to_thread(getattr(self.services[deployment], method), *args)
        if model is not None:
            metrics.observe_model_latency(model, "in_process", time.perf_counter() - start)
        return result

    async def _on_book(self, method: str, args: tuple[Any, ...]) -> Any:
        return await getattr(self._book, method)(*args)


class ServeModelClients(ModelClients):
    """Deployment handles (by deployment name) and the bandit actor, each call bounded by
    ``timeout_s``; with ``bandit_refresh_s``, strategies are chosen from a local copy of the
    bandit's posterior at most that old (``BanditView``); with ``coalesce_q_values``, the
    Q-values asked by concurrent requests go to the recommender together (``Coalescer``)."""

    def __init__(
        self,
        handles: Mapping[str, Any],
        bandit_actor: Any,
        *,
        timeout_s: float = 2.0,
        batch_q_values: bool = False,
        bandit_refresh_s: float = 0.0,
        coalesce_q_values: bool = False,
    ) -> None:
        self._handles = dict(handles)
        self._actor_handle = bandit_actor
        self._timeout = timeout_s
        self._q_many: Coalescer[tuple[np.ndarray, str], tuple[np.ndarray, str]] | None = (
            Coalescer(self._send_q_values) if coalesce_q_values else None
        )
        bandit: BanditInvoke = self._on_actor
        if bandit_refresh_s > 0:
            bandit = BanditView(self._on_actor, refresh_s=bandit_refresh_s)
        super().__init__(
            self._on_handle,
            bandit,
            q_method="q_values_batched" if batch_q_values else "q_values",
            bandit_source=self._on_actor,
        )

    async def _on_handle(
        self, deployment: str, method: str, args: tuple[Any, ...], model: str | None
    ) -> Any:
        if self._q_many is not None and method == "q_values":
            return await asyncio.wait_for(self._q_many((args[0], args[1])), self._timeout)
        call = getattr(self._handles[deployment], method).remote(*args)
        return await asyncio.wait_for(call, self._timeout)

    async def _send_q_values(
        self, items: list[tuple[np.ndarray, str]]
    ) -> list[tuple[np.ndarray, str]]:
        states, variants = [s for s, _ in items], [v for _, v in items]
        handle = self._handles[RECOMMENDER_DEPLOYMENT]
        return await asyncio.wait_for(handle.q_values_many.remote(states, variants), self._timeout)

    async def _on_actor(self, method: str, args: tuple[Any, ...]) -> Any:
        call = getattr(self._actor_handle, method).remote(*args)
        return await asyncio.wait_for(call, self._timeout)

"""What every model deployment shares: load from the registry, swap on user_config, health."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fincoach.observability import metrics
from fincoach.observability.heap import freeze_startup_heap
from models.registry import ModelRegistry
from models.serving import ModelService

logger = logging.getLogger("ray.serve")
S = TypeVar("S", bound=ModelService)
T = TypeVar("T")


def limit_threads() -> None:
    """One BLAS/OpenMP thread per replica: replicas share two cores, and oversubscribed
    thread pools were measured 10-30x slower here."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


class ModelDeployment:
    """Base of the model deployments: a ``ModelService`` plus the Serve hooks around it.
    Model deployments never touch the database: features in, predictions out."""

    service_class: type[ModelService]

    def __init__(self, model_dir: str) -> None:
        limit_threads()
        self._service = self.service_class(ModelRegistry(model_dir))
        # The newest versions until serve_config.yaml's user_config names others.
        for report in self._service.apply():
            if not report.ok:
                logger.warning("could not load %s: %s", report.name, report.error)
        freeze_startup_heap()  # Ray, Serve and the models: no full scans of them per request

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Swap to the versions in ``{"versions": {name: version}}``; a version that fails
        validation is reported and the previous one keeps serving."""
        versions = (user_config or {}).get("versions") or {}
        for report in self._service.apply(versions):
            log = logger.info if report.ok else logger.error
            log(
                "swap %s -> %s: %s",
                report.name,
                report.requested,
                "ok" if report.ok else report.error,
            )

    def check_health(self) -> None:
        self._service.check()

    def versions(self) -> dict[str, Any]:
        return self._service.versions()

    async def _run(self, fn: Callable[..., T], *args: Any, model: str | None = None) -> T:
        """``fn(*args)`` off the event loop (health checks and reconfigure share it); its time
        goes to ``fincoach_model_latency_seconds{model}`` (Serve adds the deployment tag)."""
        start = time.perf_counter()
        result = await asyncio.to_thread(fn, *args)
        metrics.observe_model_latency(
            model or str(getattr(fn, "__name__", "unknown")),
            type(self).__name__,
            time.perf_counter() - start,
        )
        return result

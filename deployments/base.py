"""What every model deployment shares: load from the registry, swap on user_config, health."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

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

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        # CPU work off the event loop: health checks and reconfigure share it.
        return await asyncio.to_thread(fn, *args)

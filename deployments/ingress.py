"""The HTTP ingress: the FastAPI app of ``api/`` bound to Ray Serve, composing the models.

The app is built inside the replica (``__serve_build_asgi_app__``), so settings are read and the
database engine is made in the replica's own process and event loop, never at import time.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from api.app import create_app
from api.clients import ServeModelClients
from config import get_settings
from schemas.app_args import AppArgs


@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.5})
@serve.ingress()
class CoachIngress:
    def __init__(
        self,
        segmentation: DeploymentHandle,
        forecasting: DeploymentHandle,
        recommender: DeploymentHandle,
        args: dict[str, Any] | None = None,
    ) -> None:
        from actors.bandit_stats import get_or_create

        self._args = AppArgs.model_validate(args or {})
        self._clients = ServeModelClients(
            segmentation,
            forecasting,
            recommender,
            get_or_create(
                self._args.bandit_algorithm, self._args.database_url, name=self._args.bandit_actor
            ),
            timeout_s=self._args.model_timeout_s,
            batch_q_values=self._args.recommender_batching,
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        settings = get_settings()
        if self._args.database_url:
            settings = settings.model_copy(update={"database_url": self._args.database_url})
        return create_app(settings, models=self._clients)

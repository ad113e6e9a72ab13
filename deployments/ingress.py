"""The HTTP ingress: the FastAPI app of ``fincoach.http`` bound to Ray Serve, composing the models.

The app is built inside the replica (``__serve_build_asgi_app__``), so settings are read and the
database engine is made in the replica's own process and event loop, never at import time.

Request ids: Serve's proxy takes the client's ``X-Request-ID`` as its request id (documented
Serve behaviour) and every ``DeploymentHandle`` call made while serving the request carries it
to the model replicas, whose log lines show it; ``ServeRequestIdMiddleware`` makes the app use
that same id.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.types import ASGIApp, Receive, Scope, Send

from fincoach.config import get_settings
from fincoach.http.app import create_app
from fincoach.usecases.clients import ServeModelClients
from models.names import FORECASTING_DEPLOYMENT, RECOMMENDER_DEPLOYMENT, SEGMENTATION_DEPLOYMENT
from schemas.app_args import AppArgs


class ServeRequestIdMiddleware:
    """Outermost middleware of the ingress: the request's id is Serve's request id.

    Serve's proxy takes the client's X-Request-ID as its request id (or makes one), hands it to
    the replica in the ``x-request-id`` header, logs it, sends it back, and every
    ``DeploymentHandle`` call made while serving the request carries it to the model replicas.
    The app keeps that id, even one it would replace in-process, so one id ties together the
    proxy's, the ingress's and the model deployments' log lines, the response header and the
    problem bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            serve_id = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
            if serve_id:
                scope.setdefault("state", {})["request_id"] = serve_id
        await self.app(scope, receive, send)


@serve.deployment
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
            {
                SEGMENTATION_DEPLOYMENT: segmentation,
                FORECASTING_DEPLOYMENT: forecasting,
                RECOMMENDER_DEPLOYMENT: recommender,
            },
            get_or_create(
                self._args.bandit_algorithm, self._args.database_url, name=self._args.bandit_actor
            ),
            timeout_s=self._args.model_timeout_s,
            batch_q_values=self._args.recommender_batching,
            bandit_refresh_s=self._args.bandit_refresh_s,
            coalesce_q_values=self._args.q_value_coalescing,
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        settings = get_settings()
        if self._args.database_url:
            settings = settings.model_copy(update={"database_url": self._args.database_url})
        app = create_app(settings, models=self._clients)
        app.add_middleware(ServeRequestIdMiddleware)  # outermost: before RequestIdMiddleware
        return app

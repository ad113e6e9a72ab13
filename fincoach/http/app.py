"""The FastAPI application, buildable without Ray (tests run it in-process)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.config import Settings, get_settings
from fincoach.http.deps import track_endpoint
from fincoach.http.headers import install_security_headers
from fincoach.http.page_views import EventTrackingMiddleware
from fincoach.http.problems import (
    BodySizeLimitMiddleware,
    RequestIdMiddleware,
    install_problem_handlers,
)
from fincoach.http.routes import (
    auth,
    behavior,
    coaching,
    events,
    financial,
    goals,
    jobs,
    models_info,
    ops,
    predictions,
    segments,
    transactions,
    users,
    wallet,
)
from fincoach.jobs.scheduler import JobScheduler
from fincoach.observability.heap import freeze_startup_heap
from fincoach.observability.logs import configure_logging
from fincoach.usecases.clients import ModelClients
from fincoach.usecases.context import open_context

VERSION = "0.1.0"
logger = logging.getLogger("fincoach.api")


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def create_app(
    settings: Settings | None = None,
    *,
    engine: AsyncEngine | None = None,
    models: ModelClients | None = None,
) -> FastAPI:
    """Build the API. The engine is made in the lifespan (inside the serving process and its
    event loop) unless one is passed in, as tests do. Without ``models`` (Serve passes its
    handles) the models run in-process from the registry, with an in-process bandit."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or get_settings()
        configure_logging(cfg.log_format, cfg.log_level)
        async with open_context(cfg, engine=engine, models=models) as ctx:
            app.state.settings = cfg
            app.state.ctx = ctx
            scheduler = JobScheduler(ctx, tick_s=cfg.jobs_tick_s) if cfg.jobs_enabled else None
            if scheduler is not None:
                scheduler.start()
            if cfg.gc_freeze_on_start:
                freeze_startup_heap()
            try:
                yield
            finally:
                if scheduler is not None:
                    await scheduler.stop()

    app = FastAPI(
        title="FinCoach API",
        version=VERSION,
        description="Personal-finance coaching: accounts, goals, transactions and ML coaching.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        dependencies=[Depends(track_endpoint)],
    )
    install_problem_handlers(app)
    for module in (ops, jobs, auth, users, goals, transactions, coaching, segments, predictions):
        app.include_router(module.router)
    for module in (behavior, models_info, wallet, financial, events):
        app.include_router(module.router)
    app.include_router(auth.account_router)

    cfg = settings or get_settings()
    if cfg.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cfg.allowed_origins,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "X-Session-ID"],
        )
    app.add_middleware(EventTrackingMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=cfg.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    install_security_headers(app, hsts=cfg.env == "production")  # last: the outermost
    return app

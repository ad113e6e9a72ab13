"""The FastAPI application, buildable without Ray (tests run it in-process)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.cache.base import CacheTtls, PredictionCache
from fincoach.cache.factory import make_cache
from fincoach.config import Settings, get_settings
from fincoach.db.engine import make_engine, make_sessionmaker
from fincoach.http.headers import install_security_headers
from fincoach.http.page_views import EventTrackingMiddleware
from fincoach.http.problems import (
    BodySizeLimitMiddleware,
    RequestIdMiddleware,
    install_problem_handlers,
)
from fincoach.http.routes import (
    auth,
    coaching,
    events,
    financial,
    goals,
    jobs,
    ops,
    transactions,
    users,
)
from fincoach.jobs.scheduler import JobScheduler
from fincoach.observability.logs import configure_logging
from fincoach.tracking.batcher import EventBatcher
from fincoach.usecases.clients import ModelClients

VERSION = "0.1.0"
logger = logging.getLogger("fincoach.api")


async def _local_models(cfg: Settings) -> ModelClients:
    from actors.bandit_book import BanditBook
    from fincoach.usecases.clients import LocalModelClients

    bandit = BanditBook(cfg.database_url)
    await bandit.rebuild()
    return LocalModelClients(str(cfg.model_dir), bandit)


def _make_cache(cfg: Settings, engine: AsyncEngine) -> PredictionCache | None:
    if cfg.cache_url.strip().lower() == "off":
        return None
    ttls = CacheTtls(
        spending=cfg.cache_ttl_spending_s,
        goal=cfg.cache_ttl_goal_s,
        segment=cfg.cache_ttl_segment_s,
        recommendation=cfg.cache_ttl_recommendation_s,
    )
    return make_cache(cfg.cache_url, engine, ttls, redis_prefix=cfg.cache_redis_prefix)


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
        own_engine = engine is None
        db = engine or make_engine(cfg.database_url, pool_size=cfg.database_pool_size)
        app.state.settings = cfg
        app.state.engine = db
        app.state.sessions = make_sessionmaker(db)
        app.state.models = models if models is not None else await _local_models(cfg)
        # The cache and the event batcher get their own pool: a request holds a connection of
        # the main pool (its session) while it waits for a cache read or an event commit, so
        # drawing those from the same pool deadlocks once every connection is held by a
        # waiting request (measured: 32 concurrent cached reads hung until the pool timeout).
        # Nothing holds a side connection while waiting for anything else.
        side = make_engine(cfg.database_url, pool_size=cfg.database_pool_size)
        app.state.side_engine = side
        app.state.cache = _make_cache(cfg, side)
        app.state.events = EventBatcher(
            side, batch_size=cfg.event_batch_size, max_delay_s=cfg.event_batch_delay_ms / 1000
        )
        app.state.events.start()
        scheduler = JobScheduler(app.state, tick_s=cfg.jobs_tick_s) if cfg.jobs_enabled else None
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                await scheduler.stop()
            # Graceful shutdown: queued tracking events are written before the engine goes.
            await app.state.events.close()
            if app.state.cache is not None:
                await app.state.cache.close()
            await side.dispose()
            if own_engine:
                await db.dispose()

    app = FastAPI(
        title="FinCoach API",
        version=VERSION,
        description="Personal-finance coaching: accounts, goals, transactions and ML coaching.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    install_problem_handlers(app)
    for module in (ops, jobs, auth, users, goals, transactions, coaching, financial, events):
        app.include_router(module.router)

    cfg = settings or get_settings()
    if cfg.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cfg.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        )
    app.add_middleware(EventTrackingMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=cfg.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    install_security_headers(app, hsts=cfg.env == "production")  # last: the outermost
    return app

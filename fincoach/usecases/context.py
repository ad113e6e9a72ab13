"""What every use case runs against: the database sessions, the model clients, the prediction
cache and the event writer, opened once per serving process (an ingress replica, the in-process
app, a CLI command) and closed in order at its end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from actors.bandit_book import BanditBook
from fincoach.cache.base import CacheTtls, PredictionCache
from fincoach.cache.factory import make_cache
from fincoach.cache.predictions import CachedPredictions
from fincoach.config import Settings
from fincoach.db.engine import make_engine, make_sessionmaker
from fincoach.tracking.batcher import EventBatcher
from fincoach.usecases.active_users import ActiveUsers
from fincoach.usecases.clients import LocalModelClients, ModelClients


@dataclass
class Context:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    models: ModelClients
    predictions: CachedPredictions
    events: EventBatcher
    users: ActiveUsers


def _cache(cfg: Settings, engine: AsyncEngine) -> PredictionCache | None:
    if cfg.cache_url.strip().lower() == "off":
        return None
    ttls = CacheTtls(
        spending=cfg.cache_ttl_spending_s,
        goal=cfg.cache_ttl_goal_s,
        segment=cfg.cache_ttl_segment_s,
        recommendation=cfg.cache_ttl_recommendation_s,
    )
    return make_cache(cfg.cache_url, engine, ttls, redis_prefix=cfg.cache_redis_prefix)


async def local_models(cfg: Settings) -> ModelClients:
    """The models in this process from the registry, with an in-process bandit rebuilt from the
    database."""
    bandit = BanditBook(cfg.database_url)
    await bandit.rebuild()
    return LocalModelClients(str(cfg.model_dir), bandit)


@asynccontextmanager
async def open_context(
    cfg: Settings, *, engine: AsyncEngine | None = None, models: ModelClients | None = None
) -> AsyncIterator[Context]:
    """A context for ``cfg``: its own engine unless one is passed in (tests share theirs), the
    given model clients or in-process ones. On exit, queued events are written before the
    engines go."""
    own_engine = engine is None
    db = engine or make_engine(cfg.database_url, pool_size=cfg.database_pool_size)
    # The cache and the event batcher get their own pool: a request holds a connection of the
    # main pool (its session) while it waits for a cache read or an event commit, so drawing
    # those from the same pool deadlocks once every connection is held by a waiting request
    # (measured: 32 concurrent cached reads hung until the pool timeout). Nothing holds a side
    # connection while waiting for anything else.
    side = make_engine(cfg.database_url, pool_size=cfg.database_pool_size)
    clients = models if models is not None else await local_models(cfg)
    events = EventBatcher(
        side,
        batch_size=cfg.event_batch_size,
        max_delay_s=cfg.event_batch_delay_ms / 1000,
        tracking_delay_s=cfg.event_tracking_delay_ms / 1000,
    )
    ctx = Context(
        settings=cfg,
        engine=db,
        sessions=make_sessionmaker(db),
        models=clients,
        predictions=CachedPredictions(_cache(cfg, side), clients.model_versions),
        events=events,
        users=ActiveUsers(cfg.active_user_ttl_s),
    )
    events.start()
    try:
        yield ctx
    finally:
        # Graceful shutdown: queued tracking events are written before the engine goes.
        await events.close()
        await ctx.predictions.close()
        await side.dispose()
        if own_engine:
            await db.dispose()

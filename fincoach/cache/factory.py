"""Choosing the prediction cache backend from a URL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from fincoach.cache.base import CacheTtls, PredictionCache
from fincoach.cache.sql import SqlPredictionCache

SQL_CACHE_NAMES = ("", "db", "sql")
REDIS_SCHEMES = ("redis", "rediss")


def make_cache(
    cache_url: str | None,
    engine: AsyncEngine,
    ttls: CacheTtls,
    *,
    redis_prefix: str = "fincoach:pc",
) -> PredictionCache:
    """The SQL cache for None, "", "db" or "sql"; the Redis cache for redis:// or rediss://
    (its keys under ``redis_prefix``, so that several deployments can share one Redis)."""
    name = (cache_url or "").strip()
    if name.lower() in SQL_CACHE_NAMES:
        return SqlPredictionCache(engine, ttls)
    scheme = name.split("://", 1)[0].lower() if "://" in name else None
    if scheme in REDIS_SCHEMES:
        # Imported here: the redis client is ~6 MB in each serving process that never uses it.
        from fincoach.cache.redis import RedisPredictionCache

        return RedisPredictionCache(name, ttls, prefix=redis_prefix)
    # Name the scheme only: the URL may carry a password.
    shown = f"a {scheme}:// URL" if scheme is not None else repr(name)
    raise ValueError(
        f"unsupported cache URL ({shown}): use empty, 'db' or 'sql' for the prediction_cache "
        "table, or redis://host:port/db or rediss://... for Redis"
    )

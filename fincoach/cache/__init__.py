"""Prediction cache: one interface, SQL (prediction_cache table) and Redis backends."""

from typing import TYPE_CHECKING

from fincoach.cache.base import (
    CachedPrediction,
    CacheTtls,
    PredictionCache,
    check_prediction_type,
    key_prefix,
    make_key,
)
from fincoach.cache.factory import make_cache
from fincoach.cache.sql import SqlPredictionCache

if TYPE_CHECKING:
    from fincoach.cache.redis import RedisPredictionCache


def __getattr__(name: str) -> object:
    # The Redis backend (and the redis client) loads when first named, not with the package.
    if name == "RedisPredictionCache":
        from fincoach.cache.redis import RedisPredictionCache

        return RedisPredictionCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CacheTtls",
    "CachedPrediction",
    "PredictionCache",
    "RedisPredictionCache",
    "SqlPredictionCache",
    "check_prediction_type",
    "key_prefix",
    "make_cache",
    "make_key",
]

"""Prediction cache: one interface, SQL (prediction_cache table) and Redis backends."""

from fincoach.cache.base import (
    CachedPrediction,
    CacheTtls,
    PredictionCache,
    check_prediction_type,
    key_prefix,
    make_key,
)
from fincoach.cache.factory import make_cache
from fincoach.cache.redis import RedisPredictionCache
from fincoach.cache.sql import SqlPredictionCache

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

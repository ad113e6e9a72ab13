"""The background jobs and how each one runs.

Each job is an async function of the serving process's ``Context`` (an ingress replica's, or
the CLI's), calls the use cases, returns a small JSON-able detail dict, and is idempotent:
running it twice in a row leaves the same result. ``jobs.scheduler`` runs them when due;
``fincoach jobs run NAME`` runs one now.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fincoach.observability import metrics
from fincoach.usecases import evaluation, predictions, segments
from fincoach.usecases.accounts import recently_active
from fincoach.usecases.context import Context

logger = logging.getLogger("fincoach.jobs")
HOUR = 3600.0
DAY = 24 * HOUR


async def refresh_active_segments(ctx: Context) -> dict[str, Any]:
    """Recompute and store the segment of every user active in the last 30 days."""
    users = await recently_active(ctx.sessions, timedelta(days=30))
    done = await segments.refresh_many(ctx, users)
    peers = await segments.publish_peer_snapshot(ctx)
    return {
        "active_users": len(users),
        "assigned": done["assigned"],
        "failed": done["failed"],
        "peer_segments_published": peers["published"],
    }


async def publish_peers(ctx: Context) -> dict[str, Any]:
    """Publish the peer snapshot of every segment whose membership changed enough."""
    return await segments.publish_peer_snapshot(ctx)


async def cleanup_cache(ctx: Context) -> dict[str, Any]:
    """Delete expired prediction-cache rows (Redis expires its own keys)."""
    cache = ctx.predictions.cache
    if cache is None:
        return {"cache": "off", "deleted": 0}
    return {"deleted": await cache.cleanup_expired()}


async def warm_cache(ctx: Context) -> dict[str, Any]:
    """Compute (and cache) the 4-week spending forecast of users active in the last 7 days
    whose entry is missing or expired, so their next visit is served from the cache."""
    if ctx.predictions.cache is None:
        return {"cache": "off", "warmed": 0}
    users = await recently_active(ctx.sessions, timedelta(days=7))
    warmed = fresh = fallbacks = 0
    for user_id in users:
        async with ctx.sessions() as session:
            answer = await predictions.spending(ctx, session, user_id, 4)
        fresh += answer.cached
        fallbacks += answer.fallback
        warmed += not answer.cached and not answer.fallback
    return {
        "active_users": len(users),
        "warmed": warmed,
        "already_fresh": fresh,
        "fallbacks": fallbacks,
    }


@dataclass(frozen=True)
class Job:
    name: str
    period_s: float
    run: Callable[[Context], Awaitable[dict[str, Any]]]
    description: str
    # A new system runs the cheap jobs soon and the heavy ones after a full period.
    first_run_after_s: float | None = None


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("segments", DAY, refresh_active_segments, "daily segment recalculation"),
        Job("evaluation", 7 * DAY, evaluation.evaluate, "weekly model evaluation"),
        Job("peer_snapshot", HOUR, publish_peers, "hourly peer statistics snapshot", 120.0),
        Job("cache_cleanup", HOUR, cleanup_cache, "hourly cleanup of expired cache rows", 60.0),
        Job(
            "cache_warm",
            HOUR,
            warm_cache,
            "hourly cache warming for users active in 7 days",
            300.0,
        ),
    )
}


async def run_job(ctx: Context, name: str) -> tuple[str, dict[str, Any], float]:
    """Run one job now: (status "ok" or "failed", detail, seconds). Never raises."""
    job = JOBS[name]
    started = time.perf_counter()
    token = metrics.ENDPOINT.set(f"job:{name}")
    try:
        detail = await job.run(ctx)
        status = "ok"
    except Exception as exc:  # noqa: BLE001 - a failed job is recorded, not fatal
        logger.exception("job %s failed", name)
        detail, status = {"error": f"{type(exc).__name__}: {exc}"[:500]}, "failed"
    finally:
        metrics.ENDPOINT.reset(token)
    seconds = time.perf_counter() - started
    logger.info("job %s %s in %.2f s: %s", name, status, seconds, detail)
    return status, detail, seconds

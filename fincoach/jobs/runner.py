"""The background jobs and how each one runs.

Each job is an async function of the app's state (``engine``, ``sessions``, ``models``,
``cache``, ``settings``: the ingress replica's own, or the CLI's in-process app), returns a
small JSON-able detail dict, and is idempotent: running it twice in a row leaves the same
result. ``jobs.scheduler`` runs them when due; ``fincoach jobs run NAME`` runs one now.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select, union

from fincoach.db.queries.features import load_snapshot
from fincoach.db.queries.segments import upsert_segment
from fincoach.db.tables import (
    BehavioralEvent,
    ModelPerformance,
    RecommendationFeedback,
    RecommendationHistory,
    Transaction,
    UserSegment,
)
from fincoach.features.state import behavior_features
from fincoach.features.vocab import SEGMENT_NAMES

logger = logging.getLogger("fincoach.jobs")
HOUR = 3600.0
DAY = 24 * HOUR
MAX_USERS_PER_RUN = 2000
EVAL_USERS = 200


async def active_users(state: Any, since: timedelta) -> list[int]:
    """Users with a transaction or an event since ``now - since`` (most recent first)."""
    start = datetime.now(UTC) - since
    q = union(
        select(Transaction.user_id).where(Transaction.occurred_at >= start),
        select(BehavioralEvent.user_id).where(BehavioralEvent.timestamp >= start),
    ).subquery()
    async with state.sessions() as session:
        ids = (await session.scalars(select(q.c.user_id).distinct().limit(MAX_USERS_PER_RUN))).all()
    return sorted(int(i) for i in ids)


async def refresh_active_segments(state: Any) -> dict[str, Any]:
    """Recompute and store the segment of every user active in the last 30 days."""
    from fincoach.usecases.clients import ModelCallFailed

    users = await active_users(state, timedelta(days=30))
    done = failed = 0
    for start in range(0, len(users), 100):
        async with state.sessions() as session:
            for user_id in users[start : start + 100]:
                features = behavior_features(await load_snapshot(session, user_id))
                try:
                    assigned = await state.models.assign_segment(features)
                except ModelCallFailed:
                    failed += 1
                    continue
                await upsert_segment(session, user_id, assigned, features)
                done += 1
            await session.commit()
    if failed and not done:
        raise RuntimeError(f"the segmentation model failed for all {failed} users")
    return {"active_users": len(users), "assigned": done, "failed": failed}


async def evaluate_models(state: Any) -> dict[str, Any]:
    """Score the served models on what happened last week and write ``model_performance``:
    the forecaster's 1-week-ahead forecasts made as of 7 days ago against the spending since
    (MAE, against the naive last-week forecast, and 80% interval coverage), the recommendations'
    helpful rate per strategy, and the segment mix."""
    from fincoach.features.state import weekly_matrix
    from fincoach.http.routes.coaching import spend_history
    from fincoach.usecases.clients import ModelCallFailed

    now = datetime.now(UTC)
    users = (await active_users(state, timedelta(days=30)))[:EVAL_USERS]
    errors, naive, covered, versions = [], [], [], set()
    async with state.sessions() as session:
        for user_id in users:
            past = await load_snapshot(session, user_id, as_of=now - timedelta(days=7))
            history = spend_history(past)
            if history.shape[0] < 2:
                continue
            try:
                quantiles, version = await state.models.forecast(
                    history, None, 1, (now - timedelta(days=7)).isocalendar().week
                )
            except ModelCallFailed:
                continue
            versions.add(version)
            actual = weekly_matrix(await load_snapshot(session, user_id, as_of=now), 1)[0]
            actual = actual[: quantiles.shape[1]]
            errors.append(float(np.abs(quantiles[0, :, 1] - actual).sum()))
            naive.append(float(np.abs(history[-1] - actual).sum()))
            covered.append(
                float(((actual >= quantiles[0, :, 0]) & (actual <= quantiles[0, :, 2])).mean())
            )
        rows = (
            await session.execute(
                select(
                    RecommendationHistory.strategy,
                    func.count(),
                    func.avg(RecommendationFeedback.reward),
                )
                .join(
                    RecommendationFeedback,
                    RecommendationFeedback.recommendation_id == RecommendationHistory.id,
                )
                .where(RecommendationFeedback.created_at >= now - timedelta(days=7))
                .group_by(RecommendationHistory.strategy)
            )
        ).all()
        segments = (
            await session.execute(
                select(
                    UserSegment.segment_id, func.count(), func.avg(UserSegment.confidence)
                ).group_by(UserSegment.segment_id)
            )
        ).all()
        written = []
        if errors:
            mae, mae_naive = float(np.mean(errors)), float(np.mean(naive))
            session.add(
                ModelPerformance(
                    model_name="forecast_online",
                    model_version=",".join(sorted(versions)),
                    accuracy_metric=mae / mae_naive if mae_naive > 0 else None,
                    metrics={
                        "mae_total": round(mae, 2),
                        "mae_naive_last_week": round(mae_naive, 2),
                        "relative_mae": round(mae / mae_naive, 4) if mae_naive > 0 else None,
                        "coverage_80": round(float(np.mean(covered)), 4),
                        "horizon_weeks": 1,
                    },
                    sample_count=len(errors),
                )
            )
            written.append("forecast_online")
        if rows:
            total = sum(int(n) for _, n, _ in rows)
            session.add(
                ModelPerformance(
                    model_name="recommender_online",
                    model_version=None,
                    accuracy_metric=sum(float(r or 0) * int(n) for _, n, r in rows) / total,
                    metrics={
                        s: {"feedback": int(n), "mean_reward": round(float(r or 0), 4)}
                        for s, n, r in rows
                    },
                    sample_count=total,
                )
            )
            written.append("recommender_online")
        if segments:
            total = sum(int(n) for _, n, _ in segments)
            session.add(
                ModelPerformance(
                    model_name="segmentation_online",
                    model_version=None,
                    accuracy_metric=sum(float(c) * int(n) for _, n, c in segments) / total,
                    metrics={
                        SEGMENT_NAMES[int(s)]: {
                            "share": round(int(n) / total, 4),
                            "mean_confidence": round(float(c), 4),
                        }
                        for s, n, c in segments
                    },
                    sample_count=total,
                )
            )
            written.append("segmentation_online")
        await session.commit()
    return {"users_scored": len(errors), "rows_written": written}


async def cleanup_cache(state: Any) -> dict[str, Any]:
    """Delete expired prediction-cache rows (Redis expires its own keys)."""
    if state.cache is None:
        return {"cache": "off", "deleted": 0}
    return {"deleted": await state.cache.cleanup_expired()}


async def warm_cache(state: Any) -> dict[str, Any]:
    """Compute (and cache) the 4-week spending forecast of users active in the last 7 days
    whose entry is missing or expired, so their next visit is served from the cache."""
    from fincoach.http.routes.coaching import spending_prediction

    if state.cache is None:
        return {"cache": "off", "warmed": 0}
    users = await active_users(state, timedelta(days=7))
    warmed = fresh = fallbacks = 0
    for user_id in users:
        async with state.sessions() as session:
            answer = await spending_prediction(state, session, user_id, 4)
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
    run: Callable[[Any], Awaitable[dict[str, Any]]]
    description: str


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("segments", DAY, refresh_active_segments, "daily segment recalculation"),
        Job("evaluation", 7 * DAY, evaluate_models, "weekly model evaluation"),
        Job("cache_cleanup", HOUR, cleanup_cache, "hourly cleanup of expired cache rows"),
        Job("cache_warm", HOUR, warm_cache, "hourly cache warming for users active in 7 days"),
    )
}


async def run_job(state: Any, name: str) -> tuple[str, dict[str, Any], float]:
    """Run one job now: (status "ok" or "failed", detail, seconds). Never raises."""
    job = JOBS[name]
    started = time.perf_counter()
    try:
        detail = await job.run(state)
        status = "ok"
    except Exception as exc:  # noqa: BLE001 - a failed job is recorded, not fatal
        logger.exception("job %s failed", name)
        detail, status = {"error": f"{type(exc).__name__}: {exc}"[:500]}, "failed"
    seconds = time.perf_counter() - started
    logger.info("job %s %s in %.2f s: %s", name, status, seconds, detail)
    return status, detail, seconds

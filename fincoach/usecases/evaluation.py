"""Online evaluation: the served models scored on what happened since, into model_performance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from fincoach.db.queries.features import HISTORY_WEEKS, load_snapshot
from fincoach.db.queries.recommendations import strategy_rewards_since
from fincoach.db.queries.segments import segment_mix
from fincoach.db.tables import ModelPerformance
from fincoach.features.state import weekly_matrix
from fincoach.features.vocab import SEGMENT_NAMES
from fincoach.usecases.accounts import recently_active
from fincoach.usecases.clients import ModelCallFailed
from fincoach.usecases.context import Context
from fincoach.usecases.predictions import spend_history

EVAL_USERS = 200


def _weighted_mean(rows: list[tuple[int, float]]) -> float:
    """The mean of values weighted by counts: rows of (count, value)."""
    total = sum(n for n, _ in rows)
    return sum(n * v for n, v in rows) / total


async def _forecast_rows(ctx: Context, users: list[int], now: datetime) -> ModelPerformance | None:
    """The forecaster's 1-week-ahead forecasts made as of 7 days ago against the spending since
    (MAE, against the naive last-week forecast, and 80% interval coverage)."""
    errors, naive, covered, versions = [], [], [], set()
    week_ago = now - timedelta(days=7)
    async with ctx.sessions() as session:
        for user_id in users:
            history = spend_history(
                await load_snapshot(session, user_id, as_of=week_ago, weeks=HISTORY_WEEKS)
            )
            if history.shape[0] < 2:
                continue
            try:
                quantiles, version = await ctx.models.forecast(
                    history, None, 1, week_ago.isocalendar().week
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
    if not errors:
        return None
    mae, mae_naive = float(np.mean(errors)), float(np.mean(naive))
    return ModelPerformance(
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


async def evaluate(ctx: Context) -> dict[str, Any]:
    """Score the served models on what happened last week and write ``model_performance``: the
    forecaster's error, the recommendations' helpful rate per strategy, the segment mix."""
    now = datetime.now(UTC)
    users = (await recently_active(ctx.sessions, timedelta(days=30)))[:EVAL_USERS]
    forecast = await _forecast_rows(ctx, users, now)
    async with ctx.sessions() as session:
        rewards = await strategy_rewards_since(session, now - timedelta(days=7))
        mix = await segment_mix(session)
        rows = [] if forecast is None else [forecast]
        if rewards:
            rows.append(
                ModelPerformance(
                    model_name="recommender_online",
                    model_version=None,
                    accuracy_metric=_weighted_mean([(n, r) for _, n, r in rewards]),
                    metrics={s: {"feedback": n, "mean_reward": round(r, 4)} for s, n, r in rewards},
                    sample_count=sum(n for _, n, _ in rewards),
                )
            )
        if mix:
            total = sum(n for _, n, _ in mix)
            rows.append(
                ModelPerformance(
                    model_name="segmentation_online",
                    model_version=None,
                    accuracy_metric=_weighted_mean([(n, c) for _, n, c in mix]),
                    metrics={
                        SEGMENT_NAMES[s]: {
                            "share": round(n / total, 4),
                            "mean_confidence": round(c, 4),
                        }
                        for s, n, c in mix
                    },
                    sample_count=total,
                )
            )
        session.add_all(rows)
        await session.commit()
    return {
        "users_scored": 0 if forecast is None else forecast.sample_count,
        "rows_written": [r.model_name for r in rows],
    }

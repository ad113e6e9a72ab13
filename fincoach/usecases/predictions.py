"""Predictions: weekly spending per category (p10/p50/p90), the probability of reaching a goal,
and the balance projected from both. Spending and goal answers go through the prediction cache.
Fallbacks: a 4-week moving average for spending, no probability (null) for goals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.queries.features import load_snapshot
from fincoach.db.queries.goals import get_goal
from fincoach.features.frames import UserSnapshot
from fincoach.features.goal_inputs import goal_inputs
from fincoach.features.goals import goal_features
from fincoach.features.spending import SpendingHistory
from fincoach.features.state import enhanced_state, weekly_matrix
from fincoach.features.vocab import CATEGORY_INDEX, SPENDING_CATEGORIES
from fincoach.observability import metrics
from fincoach.usecases.clients import ModelCallFailed
from fincoach.usecases.context import Context
from models.names import FORECAST, GOAL_PROBABILITY, SEGMENTATION
from schemas.coaching import (
    BalanceWeek,
    CategoryForecast,
    FinancialForecastResponse,
    GoalProbabilityResponse,
    SpendingPredictionResponse,
    WeekForecast,
)

SPEND_COLS = np.array([CATEGORY_INDEX[c] for c in SPENDING_CATEGORIES])
INCOME, SAVINGS = CATEGORY_INDEX["income"], CATEGORY_INDEX["savings"]
HISTORY_WEEKS = 52


def active_weeks(snapshot: UserSnapshot) -> np.ndarray:
    """Weekly totals per category over the last year, from the first week with any activity."""
    weekly = weekly_matrix(snapshot, HISTORY_WEEKS)
    active = np.nonzero(weekly.any(axis=1))[0]
    return weekly[int(active[0]) :] if active.size else weekly[:0]


def spend_history(snapshot: UserSnapshot) -> np.ndarray:
    """Weekly spend per spending category, from the first week with any transaction."""
    return active_weeks(snapshot)[:, SPEND_COLS]


def moving_average_forecast(history: np.ndarray, weeks: int) -> np.ndarray:
    """The fallback: the last 4 weeks' mean, with a +-50% band."""
    mean = history[-4:].mean(axis=0) if history.size else np.zeros(len(SPENDING_CATEGORIES))
    band = np.stack([0.5 * mean, mean, 1.5 * mean], axis=-1)
    return np.repeat(band[None], weeks, axis=0)


async def forecast_or_fallback(
    ctx: Context, snapshot: UserSnapshot, weeks: int
) -> tuple[np.ndarray, np.ndarray, str | None, bool]:
    """(quantiles (weeks, categories, 3), total (weeks, 3), model version or None, fallback?).
    The model's total comes from its joint paths; the fallback's is the sum of its bands."""
    try:
        out, version = await ctx.models.forecast_total(
            SpendingHistory.from_snapshot(snapshot), weeks
        )
        return out["categories"], out["total"], version, False
    except ModelCallFailed:
        metrics.count_fallback(FORECAST)
        quantiles = moving_average_forecast(spend_history(snapshot), weeks)
        return quantiles, quantiles.sum(axis=1), None, True


async def spending(
    ctx: Context, session: AsyncSession, user_id: int, weeks: int, *, no_cache: bool = False
) -> SpendingPredictionResponse:
    """Weekly spending per category for the next ``weeks`` weeks, through the cache."""
    return await ctx.predictions.get_or_compute(
        user_id,
        "spending",
        SpendingPredictionResponse,
        lambda: _spending(ctx, session, user_id, weeks),
        models=(FORECAST, SEGMENTATION),
        no_cache=no_cache,
        weeks=weeks,
    )


async def _spending(
    ctx: Context, session: AsyncSession, user_id: int, weeks: int
) -> SpendingPredictionResponse:
    snapshot = await load_snapshot(session, user_id)
    now = datetime.now(UTC)
    quantiles, totals, version, fallback = await forecast_or_fallback(ctx, snapshot, weeks)
    return SpendingPredictionResponse(
        weeks=[
            WeekForecast(
                week_start=now + timedelta(weeks=w),
                categories=[
                    CategoryForecast(
                        category=c,
                        p10=round(float(q[0]), 2),
                        p50=round(float(q[1]), 2),
                        p90=round(float(q[2]), 2),
                    )
                    for c, q in zip(SPENDING_CATEGORIES, quantiles[w], strict=True)
                ],
                total_p50=round(float(totals[w, 1]), 2),
            )
            for w in range(weeks)
        ],
        model_version=version,
        fallback=fallback,
        method="4-week moving average (fallback)"
        if fallback
        else "own history first: recurring payments as lumps, sampled weeks",
    )


async def goal_probability(
    ctx: Context, session: AsyncSession, user_id: int, goal_id: int, *, no_cache: bool = False
) -> GoalProbabilityResponse:
    """Probability of reaching the goal by its date, the main risks, and the weekly saving that
    would lift it to 75%, through the cache."""
    return await ctx.predictions.get_or_compute(
        user_id,
        "goal",
        GoalProbabilityResponse,
        lambda: _goal_probability(ctx, session, user_id, goal_id),
        models=(GOAL_PROBABILITY,),
        no_cache=no_cache,
        goal=goal_id,
    )


async def _goal_probability(
    ctx: Context, session: AsyncSession, user_id: int, goal_id: int
) -> GoalProbabilityResponse:
    goal = await get_goal(session, user_id, goal_id)
    snapshot = await load_snapshot(session, user_id)
    now = datetime.now(UTC)
    inputs: dict[str, Any] = goal_inputs(
        snapshot,
        target_amount=float(goal.target_amount),
        current_amount=float(goal.current_amount),
        target_date=goal.target_date,
        created_at=goal.created_at,
        now=now,
    )
    try:
        result = await ctx.models.goal(goal_features(**inputs), inputs)
    except ModelCallFailed:
        metrics.count_fallback(GOAL_PROBABILITY)
        result = {"probability": None, "risk_factors": []}
    return GoalProbabilityResponse(
        goal_id=goal.id,
        probability=result["probability"],
        risk_factors=result["risk_factors"],
        weekly_saving_for_75=result.get("weekly_saving_for_75"),
        model_version=result.get("model_version"),
        fallback="model_version" not in result,
    )


async def financial_forecast(
    ctx: Context, session: AsyncSession, user_id: int
) -> FinancialForecastResponse:
    """The balance projected 4 weeks ahead from the spending forecast and recent income."""
    snapshot = await load_snapshot(session, user_id)
    balance = current = float(enhanced_state(snapshot)[0])
    weekly = weekly_matrix(snapshot, 4)
    income = float(weekly[:, INCOME].mean())
    savings = float(weekly[:, SAVINGS].mean())
    _, totals, _, fallback = await forecast_or_fallback(ctx, snapshot, 4)
    weeks = []
    for w in range(4):
        spend = totals[w]  # p10, p50, p90 of the total
        balance += income - savings - float(spend[1])
        weeks.append(
            BalanceWeek(
                week=w + 1,
                spending_p50=round(float(spend[1]), 2),
                spending_p90=round(float(spend[2]), 2),
                balance_p50=round(balance, 2),
            )
        )
    return FinancialForecastResponse(
        current_balance=round(current, 2),
        weekly_income=round(income, 2),
        weeks=weeks,
        fallback=fallback,
    )

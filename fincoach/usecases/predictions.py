"""Predictions: weekly spending per category (p10/p50/p90), the probability of reaching a goal,
and the balance projected from both. Spending and goal answers go through the prediction cache.
Fallbacks: a 4-week moving average for spending, no probability (null) for goals."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from fincoach.db.queries.features import HISTORY_WEEKS, load_snapshot
from fincoach.db.queries.goals import get_goal
from fincoach.db.tables import Goal
from fincoach.features.frames import UserSnapshot
from fincoach.features.goal_inputs import goal_inputs
from fincoach.features.goals import goal_features
from fincoach.features.spending import SpendingHistory
from fincoach.features.state import enhanced_state, weekly_matrix
from fincoach.features.vocab import CATEGORY_INDEX, SPENDING_CATEGORIES
from fincoach.observability import metrics
from fincoach.usecases.clients import ModelCallFailed
from fincoach.usecases.context import Context
from models.names import FORECAST, GOAL_PROBABILITY
from schemas.original import GoalAchievementProbability
from schemas.predictions import (
    BalanceWeek,
    CategoryForecast,
    FinancialForecastResponse,
    GoalProbabilityResponse,
    SpendingPredictionResponse,
    WeekForecast,
)

SPEND_COLS = np.array([CATEGORY_INDEX[c] for c in SPENDING_CATEGORIES])
INCOME, SAVINGS = CATEGORY_INDEX["income"], CATEGORY_INDEX["savings"]


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


@dataclass(frozen=True)
class SpendingForecast:
    """``quantiles`` (weeks, categories, 3); ``total`` and ``cumulative`` (weeks, 3): each week's
    spending and the spending from now to the end of each week."""

    quantiles: np.ndarray
    total: np.ndarray
    cumulative: np.ndarray
    version: str | None
    fallback: bool


async def forecast_or_fallback(
    ctx: Context, snapshot: UserSnapshot, weeks: int
) -> SpendingForecast:
    """The model's totals come from its joint paths; the fallback's are sums of its bands."""
    try:
        out, version = await ctx.models.forecast_total(
            SpendingHistory.from_snapshot(snapshot), weeks
        )
        return SpendingForecast(
            out["categories"], out["total"], out["cumulative"], version, fallback=False
        )
    except ModelCallFailed:
        metrics.count_fallback(FORECAST)
        quantiles = moving_average_forecast(spend_history(snapshot), weeks)
        total = quantiles.sum(axis=1)
        return SpendingForecast(quantiles, total, total.cumsum(axis=0), None, fallback=True)


async def spending(
    ctx: Context, session: AsyncSession, user_id: int, weeks: int, *, no_cache: bool = False
) -> SpendingPredictionResponse:
    """Weekly spending per category for the next ``weeks`` weeks, through the cache."""
    return await ctx.predictions.get_or_compute(
        user_id,
        "spending",
        SpendingPredictionResponse,
        lambda: _spending(ctx, session, user_id, weeks),
        models=(FORECAST,),
        no_cache=no_cache,
        weeks=weeks,
    )


async def _spending(
    ctx: Context, session: AsyncSession, user_id: int, weeks: int
) -> SpendingPredictionResponse:
    snapshot = await load_snapshot(session, user_id, raw_weeks=HISTORY_WEEKS, weeks=HISTORY_WEEKS)
    now = datetime.now(UTC)
    forecast = await forecast_or_fallback(ctx, snapshot, weeks)
    quantiles, totals, cumulative = forecast.quantiles, forecast.total, forecast.cumulative
    first = quantiles[0]
    return SpendingPredictionResponse(
        user_id=str(user_id),
        prediction_date=now,
        total_predicted=round(float(totals[0, 1]), 2),
        category_predictions={
            c: round(float(q[1]), 2) for c, q in zip(SPENDING_CATEGORIES, first, strict=True)
        },
        confidence_intervals={
            c: [round(float(q[0]), 2), round(float(q[2]), 2)]
            for c, q in zip(SPENDING_CATEGORIES, first, strict=True)
        },
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
                total_p10=round(float(totals[w, 0]), 2),
                total_p50=round(float(totals[w, 1]), 2),
                total_p90=round(float(totals[w, 2]), 2),
                cumulative_p10=round(float(cumulative[w, 0]), 2),
                cumulative_p50=round(float(cumulative[w, 1]), 2),
                cumulative_p90=round(float(cumulative[w, 2]), 2),
            )
            for w in range(weeks)
        ],
        model_version=forecast.version,
        fallback=forecast.fallback,
        method="4-week moving average (fallback)"
        if forecast.fallback
        else "own history first: recurring payments as lumps, sampled weeks",
    )


def goal_version(goal: Goal) -> str:
    """A digest of everything about the goal row an answer depends on, its creation time
    included: an edited goal, or a new goal that reuses a deleted one's id (SQLite does), has
    another version and so never reaches the old entry."""
    fields = (
        goal.id,
        goal.created_at.isoformat() if goal.created_at else "",
        goal.updated_at.isoformat() if goal.updated_at else "",
        repr(float(goal.target_amount)),
        repr(float(goal.current_amount)),
        goal.target_date.isoformat(),
        goal.status,
    )
    return hashlib.sha256("\x1f".join(map(str, fields)).encode()).hexdigest()[:16]


async def goal_probability(
    ctx: Context, session: AsyncSession, user_id: int, goal_id: int, *, no_cache: bool = False
) -> GoalProbabilityResponse:
    """Probability of reaching the goal by its date, the main risks, and the weekly saving that
    would lift it to 75%, through the cache.

    The goal is read (scoped to its owner: another user's id is a 404) before the cache is
    looked at, and its version is part of the key; the answer is computed from that same row,
    so an entry always matches the goal version it is stored under."""
    goal = await get_goal(session, user_id, goal_id)
    return await ctx.predictions.get_or_compute(
        user_id,
        "goal",
        GoalProbabilityResponse,
        lambda: _goal_probability(ctx, session, user_id, goal),
        models=(GOAL_PROBABILITY,),
        no_cache=no_cache,
        goal=goal_id,
        gv=goal_version(goal),
    )


async def _goal_probability(
    ctx: Context, session: AsyncSession, user_id: int, goal: Goal
) -> GoalProbabilityResponse:
    snapshot = await load_snapshot(session, user_id, weeks=HISTORY_WEEKS)
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
    ctx: Context, session: AsyncSession, user_id: int, days: int = 30
) -> FinancialForecastResponse:
    """The balance projected 4 weeks ahead from the (cached) spending forecast and recent
    income, and ``days`` ahead at the first week's pace (the original API's projection)."""
    snapshot = await load_snapshot(session, user_id)
    balance = current = float(enhanced_state(snapshot)[0])
    weekly = weekly_matrix(snapshot, 4)
    income = float(weekly[:, INCOME].mean())
    savings = float(weekly[:, SAVINGS].mean())
    prediction = await spending(ctx, session, user_id, 4)
    weeks = []
    spent = 0.0
    for w, week in enumerate(prediction.weeks):
        p50, p90 = week.total_p50, week.total_p90
        # The median balance is the balance less the median spending to date (the running sum
        # of the paths); an answer cached before that field falls back to adding weekly medians.
        spent = week.cumulative_p50 if week.cumulative_p50 is not None else spent + p50
        balance = current + (w + 1) * (income - savings) - spent
        weeks.append(
            BalanceWeek(
                week=w + 1,
                spending_p50=round(p50, 2),
                spending_p90=round(p90, 2),
                balance_p50=round(balance, 2),
            )
        )
    weekly_net = income - prediction.total_predicted
    return FinancialForecastResponse(
        current_balance=round(current, 2),
        weekly_income=round(income, 2),
        weeks=weeks,
        fallback=prediction.fallback,
        projected_balance=round(current + weekly_net * days / 7, 2),
        projection_days=days,
        weekly_predicted_spending=prediction.total_predicted,
        weekly_net=round(weekly_net, 2),
        spending_prediction=prediction,
        generated_at=prediction.generated_at,
    )


async def adhoc_goal_probability(
    ctx: Context, session: AsyncSession, user_id: int, goal_amount: float, timeline_days: int
) -> GoalAchievementProbability:
    """The probability of saving ``goal_amount`` within ``timeline_days`` from now, for a goal
    not stored (the original API's ``POST /coaching/goal-probability``)."""
    snapshot = await load_snapshot(session, user_id, weeks=HISTORY_WEEKS)
    weekly = active_weeks(snapshot)
    inputs: dict[str, Any] = {
        "target_amount": goal_amount,
        "current_amount": 0.0,
        "weeks_left": timeline_days / 7.0,
        "weeks_elapsed": 0.0,
        "weekly_savings": weekly[:, SAVINGS],
        "weekly_income": weekly[:, INCOME],
        "n_goals": 1 + sum(1 for g in snapshot.goals if g.status == "active"),
        "monthly_income": snapshot.profile.monthly_income or None,
    }
    try:
        result = await ctx.models.goal(goal_features(**inputs), inputs)
    except ModelCallFailed:
        metrics.count_fallback(GOAL_PROBABILITY)
        result = {"probability": None, "risk_factors": []}
    needed = result.get("weekly_saving_for_75")
    suggestions = [str(r.get("message")) for r in result["risk_factors"] if r.get("message")]
    if needed is not None:
        suggestions.append(f"Save {needed:,.2f} a week to reach a 75% chance")
    return GoalAchievementProbability(
        goal_id=f"{goal_amount:g}-{timeline_days}d",
        probability=result["probability"],
        expected_completion_date=None,
        risk_factors=[{k: str(v) for k, v in r.items()} for r in result["risk_factors"]],
        improvement_suggestions=suggestions,
        fallback="model_version" not in result,
        model_version=result.get("model_version"),
    )

"""Predictions: weekly spending per category, the probability of reaching a goal, and the
balance projected from both. Answers carry the original FinCoach API's fields
(``total_predicted``, ``category_predictions``, ``projected_balance``...) beside this
backend's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from schemas.coaching import CachedAnswer


class CategoryForecast(BaseModel):
    category: str
    p10: float
    p50: float
    p90: float


class WeekForecast(BaseModel):
    week_start: datetime
    categories: list[CategoryForecast]
    # The week's total: quantiles of the sum, not sums of the categories' quantiles.
    total_p10: float
    total_p50: float
    total_p90: float
    # Spending from now to the end of this week, all categories: quantiles of the paths' running
    # sums (a sum of weekly medians runs under what is spent when spending is lumpy).
    cumulative_p10: float | None = None
    cumulative_p50: float | None = None
    cumulative_p90: float | None = None


class SpendingPredictionResponse(CachedAnswer):
    weeks: list[WeekForecast]
    model_version: str | None
    fallback: bool
    method: str
    user_id: str
    prediction_date: datetime
    total_predicted: float
    category_predictions: dict[str, float]
    confidence_intervals: dict[str, list[float]]
    previous_accuracy: float | None = None


class GoalProbabilityResponse(CachedAnswer):
    goal_id: int
    probability: float | None
    risk_factors: list[dict[str, Any]]
    weekly_saving_for_75: float | None
    model_version: str | None
    fallback: bool


class BalanceWeek(BaseModel):
    week: int
    spending_p50: float
    spending_p90: float
    balance_p50: float


class FinancialForecastResponse(BaseModel):
    current_balance: float
    weekly_income: float
    weeks: list[BalanceWeek]
    fallback: bool
    projected_balance: float
    projection_days: int
    weekly_predicted_spending: float
    weekly_net: float
    spending_prediction: SpendingPredictionResponse
    generated_at: datetime

"""Coaching: recommendations, feedback, segments, predictions, strategies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.common import BodyBool, BodyInt, RequestModel, ResponseModel

FeedbackType = Literal["helpful", "not_helpful", "implemented", "dismissed"]


def _now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


class CachedAnswer(BaseModel):
    """Fields of answers served from the prediction cache."""

    cached: bool = Field(default=False, description="True when served from the prediction cache")
    generated_at: datetime = Field(default_factory=_now, description="When the answer was computed")


class RecommendationResponse(ResponseModel):
    """The legacy shape of `GET /coaching/recommendation`."""

    id: int
    action_id: int
    action: str
    recommendation: str
    confidence: float
    model_version: str
    fallback: bool
    created_at: datetime


class EnhancedRecommendationResponse(RecommendationResponse, CachedAnswer):
    strategy: str
    strategy_source: Literal["bandit", "default"]
    segment_id: int | None
    segment_name: str | None
    model_versions: dict[str, str]


class FeedbackRequest(RequestModel):
    recommendation_id: BodyInt = Field(gt=0, le=2**63 - 1)
    helpful: BodyBool
    feedback_text: str | None = Field(default=None, max_length=2000)
    feedback_type: FeedbackType | None = None


class FeedbackResponse(ResponseModel):
    id: int
    recommendation_id: int
    reward: float
    duplicate: bool = Field(description="True when this recommendation already had feedback")
    bandit_updated: bool


class HistoryItem(ResponseModel):
    id: int
    action_id: int
    action: str
    recommendation: str
    strategy: str
    segment_id: int | None
    model_version: str
    confidence: float
    fallback: bool
    created_at: datetime
    feedback: dict[str, Any] | None = None


class SegmentResponse(ResponseModel):
    segment_id: int
    segment_name: str
    confidence: float
    model_version: str | None
    updated_at: datetime
    fallback: bool = False


class SegmentInsightsResponse(BaseModel):
    segment: SegmentResponse
    description: str
    share_of_users: float
    centroid: dict[str, float]
    you: dict[str, float]
    differences: list[dict[str, Any]]


class SegmentComparisonResponse(BaseModel):
    segment: SegmentResponse
    peers: int
    you: dict[str, float]
    segment_average: dict[str, float]


class CategoryForecast(BaseModel):
    category: str
    p10: float
    p50: float
    p90: float


class WeekForecast(BaseModel):
    week_start: datetime
    categories: list[CategoryForecast]
    total_p50: float


class SpendingPredictionResponse(CachedAnswer):
    weeks: list[WeekForecast]
    model_version: str | None
    fallback: bool
    method: str


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


class StrategiesResponse(BaseModel):
    available: bool
    algorithm: str | None
    segments: dict[str, dict[str, dict[str, float]]]

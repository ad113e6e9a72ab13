"""Answers of the original FinCoach coaching API that this backend serves as they were
(``/coaching/financial-state``, ``insights``, ``actions``, ``model-info``, ``health``,
``enhanced-health``, ``behavioral-events``, ``behavior-changes``, the ``POST`` goal probability)
and the original's blocks that our richer answers carry beside their own fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.common import RequestModel

Priority = Literal["low", "medium", "high"]


class FinancialState(BaseModel):
    """The last 7 days, as the legacy recommendation's ``state_summary`` and
    ``GET /coaching/financial-state`` give them."""

    current_balance: float
    weekly_spending: float
    weekly_income: float
    transaction_count: int
    savings_rate: float
    daily_spending_avg: float
    category_spending: dict[str, float] = Field(description="Debits of the week by category")


class FinancialStateResponse(FinancialState):
    financial_health_score: float = Field(
        ge=0, le=100, description="0-100: spending control, savings rate, stability and pace"
    )


class SegmentInfo(BaseModel):
    """The original API's ``UserSegmentInfo``."""

    segment_id: int
    segment_name: str
    confidence: float
    characteristics: dict[str, float] = Field(description="The behavioral features by name")
    peer_comparison: dict[str, float] | None = None


class RecommendationStrategy(BaseModel):
    """The bandit's arm that chose an enhanced recommendation."""

    strategy_id: int
    strategy_name: str
    parameters: dict[str, float]
    performance_metrics: dict[str, float]
    selection_count: int
    last_updated: datetime


class Insight(BaseModel):
    type: str
    title: str
    message: str
    priority: Priority


class InsightsResponse(BaseModel):
    insights: list[Insight]
    generated_at: datetime


class CoachingAction(BaseModel):
    id: int
    type: str
    name: str
    description: str
    priority: Priority
    category: Literal["spending", "saving", "budgeting", "general"]


class ActionsResponse(BaseModel):
    actions: list[CoachingAction]


class ModelInfoResponse(BaseModel):
    model_loaded: bool
    model_path: str = Field(description="Registry name and version of the legacy CQL model")
    state_dimensions: int
    action_dimensions: int
    available_actions: list[str]
    model_version: str | None


class CoachingHealthResponse(BaseModel):
    status: Literal["healthy", "degraded"]
    model_loaded: bool
    fallback_available: bool
    last_check: str
    inference_test: Literal["passed", "failed", "skipped"]


class ServiceHealth(BaseModel):
    status: Literal["healthy", "degraded"]
    model_loaded: bool
    version: str | None = None


class EnhancedHealthResponse(BaseModel):
    enhanced_cql_service: ServiceHealth
    segmentation_service: ServiceHealth
    behavioral_service: ServiceHealth
    spending_prediction_service: ServiceHealth
    goal_prediction_service: ServiceHealth
    overall_status: Literal["healthy", "degraded"]


class GoalPredictionRequest(RequestModel):
    """``POST /coaching/goal-probability``: a goal not stored, by amount and timeline."""

    goal_amount: float = Field(gt=0, lt=1_000_000_000, allow_inf_nan=False)
    timeline_days: int = Field(ge=1, le=36_500)


class GoalAchievementProbability(BaseModel):
    goal_id: str
    probability: float | None
    expected_completion_date: datetime | None
    risk_factors: list[dict[str, str]]
    improvement_suggestions: list[str]
    fallback: bool = False
    model_version: str | None = None


class BehaviorAggregate(BaseModel):
    """The user's events over a period, by type and by interaction."""

    user_id: str
    period_days: int
    total_events: int
    event_counts: dict[str, int]
    interaction_patterns: dict[str, dict[str, int]]
    behavior_diversity: int
    engagement_score: float = Field(ge=0, le=1)
    generated_at: str


class BehaviorChangesResponse(BaseModel):
    user_id: str
    behavior_changes: list[dict[str, Any]]
    change_count: int
    analysis_date: str

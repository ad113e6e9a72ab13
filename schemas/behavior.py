"""Behavior analysis responses: the 30-day summary, engagement and change detection."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.original import BehaviorAggregate


class BehaviorSummaryOut(BaseModel):
    window_days: int
    total_events: int
    events_by_type: dict[str, int] = Field(description="Every event type, zero included")
    active_days: int
    events_per_active_day: float
    sessions: int
    avg_session_events: float
    last_event_at: datetime | None
    most_common_type: str | None
    recommendation_interaction_rate: float = Field(
        description="Recommendation interactions per page view"
    )
    daily_counts: list[int] = Field(description="Events per day, oldest first, ending today")


class TypeChangeOut(BaseModel):
    event_type: str
    recent_count: int
    baseline_count: int
    rate_ratio: float | None
    direction: Literal["increase", "decrease", "none"]
    p_value: float
    significant: bool


class BehaviorChangeOut(BaseModel):
    recent_days: int
    baseline_days: int
    recent_count: int
    baseline_count: int
    recent_rate_per_day: float
    baseline_rate_per_day: float
    rate_ratio: float | None
    direction: Literal["increase", "decrease", "none"]
    p_value: float
    significant: bool
    alpha: float
    test: str = Field(description="The statistical test behind p_value")
    by_type: list[TypeChangeOut]


class EventSummaryResponse(BaseModel):
    """What ``GET /events/summary`` and ``GET /coaching/behavioral-insights`` share."""

    summary: BehaviorSummaryOut
    engagement_score: float = Field(ge=0, le=100, description="0-100")
    engagement_components: dict[str, float]
    behavior_change: BehaviorChangeOut


class BehavioralInsightsResponse(BaseModel):
    """``GET /coaching/behavioral-insights``: app activity and spending behavior together."""

    activity: EventSummaryResponse
    spending_behavior: dict[str, float] = Field(
        description="The behavioral features the segmentation model uses, by name"
    )
    insights: list[str] = Field(description="Plain-language observations, most important first")
    user_id: str
    behavior_data: BehaviorAggregate = Field(description="The original API's 30-day aggregate")
    behavior_changes: list[dict[str, Any]]
    segment_info: dict[str, Any] | None
    summary_generated_at: str

"""Coaching: recommendations, feedback, history and the bandit's strategies.

Answers are a superset of the original FinCoach API's (``action_type``, ``state_summary``,
``generated_at``...): its fields kept, this backend's beside them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from schemas.common import BodyBool, BodyInt, RequestModel, ResponseModel
from schemas.original import RecommendationStrategy, SegmentInfo

FeedbackType = Literal["helpful", "not_helpful", "implemented", "dismissed"]
FeedbackStatus = Literal["pending", "helpful", "not_helpful", "implemented", "dismissed"]


def _now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


class CachedAnswer(BaseModel):
    """Fields of answers served from the prediction cache."""

    cached: bool = Field(default=False, description="True when served from the prediction cache")
    generated_at: datetime = Field(default_factory=_now, description="When the answer was computed")


class RecommendationResponse(ResponseModel):
    """``GET /coaching/recommendation``: the original ``AIRecommendation`` (action ids 0-4,
    ``action_type``, ``confidence`` as a probability, ``state_summary``) and the recorded row."""

    action_id: int
    action_type: str = Field(description="The action's name (the original API's field)")
    recommendation: str
    confidence: float = Field(
        ge=0, le=1, description="The policy's probability of this action among those offered"
    )
    state_summary: dict[str, Any] = Field(description="The financial state it was chosen from")
    generated_at: datetime
    id: int
    action: str
    recommendation_text: str = Field(description="Same as recommendation (history's name)")
    confidence_score: float = Field(description="Same as confidence (history's name)")
    model_version: str
    fallback: bool
    created_at: datetime


class EnhancedRecommendationResponse(RecommendationResponse, CachedAnswer):
    """``GET /coaching/enhanced-recommendation``: the original ``EnhancedAIRecommendation``
    fields and this backend's (strategy chosen by the bandit, segment, model versions)."""

    segment_context: SegmentInfo | None = None
    strategy_used: RecommendationStrategy | None = None
    behavioral_triggers: list[str] | None = None
    personalization_score: float | None = None
    strategy: str
    strategy_source: Literal["bandit", "default"]
    segment_id: int | None
    segment_name: str | None
    model_versions: dict[str, str]


# An id of this backend is a number; the original web client sends ids as strings.
RecommendationId = Annotated[
    BodyInt | Annotated[str, Field(min_length=1, max_length=64)],
    AfterValidator(str),
]


class FeedbackRequest(RequestModel):
    """Feedback on a recommendation. ``recommendation_id`` is a number or a string (the original
    web client's form); an id this backend never issued (not a number) is a legacy one."""

    recommendation_id: RecommendationId
    helpful: BodyBool
    feedback_text: str | None = Field(default=None, max_length=2000)
    feedback_type: FeedbackType | None = None


class FeedbackResponse(BaseModel):
    message: str = Field(description='"Feedback submitted successfully"')
    feedback_id: str = Field(description="The recommendation's id (the original API's field)")
    id: int | None = Field(description="The stored feedback's id; null for a legacy id")
    recommendation_id: int | None
    reward: float
    duplicate: bool = Field(description="True when this recommendation already had feedback")
    bandit_updated: bool


class HistoryItem(BaseModel):
    id: str
    recommendation_text: str
    action_type: str
    confidence_score: float
    created_at: str = Field(description="ISO 8601")
    feedback_status: FeedbackStatus
    action_id: int
    action: str
    recommendation: str
    strategy: str
    segment_id: int | None
    model_version: str
    confidence: float
    fallback: bool
    feedback: dict[str, Any] | None = None


class HistoryResponse(BaseModel):
    recommendations: list[HistoryItem]
    total: int
    page: int
    limit: int


class StrategiesResponse(BaseModel):
    available: bool
    algorithm: str | None
    segments: dict[str, dict[str, dict[str, float]]]


__all__ = [
    "CachedAnswer",
    "EnhancedRecommendationResponse",
    "FeedbackRequest",
    "FeedbackResponse",
    "HistoryItem",
    "HistoryResponse",
    "RecommendationResponse",
    "StrategiesResponse",
]

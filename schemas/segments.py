"""Segments: the user's behavioral segment, its profile, and the user beside its peers.
Answers carry the original FinCoach API's fields (``segment_info``, ``characteristics``,
``peer_count``...) beside this backend's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from schemas.common import ResponseModel
from schemas.original import SegmentInfo


class SegmentResponse(ResponseModel):
    segment_id: int
    segment_name: str
    confidence: float
    model_version: str | None
    updated_at: datetime
    fallback: bool = False
    characteristics: dict[str, float] = Field(
        default_factory=dict, description="The behavioral features it was assigned from"
    )
    peer_comparison: dict[str, float] | None = None


class RefreshSegmentResponse(SegmentResponse):
    message: str
    segment_info: SegmentInfo


class SegmentInsightsResponse(BaseModel):
    segment: SegmentResponse
    description: str
    share_of_users: float
    centroid: dict[str, float]
    you: dict[str, float]
    differences: list[dict[str, Any]]
    segment_info: SegmentInfo
    characteristics: dict[str, Any] = Field(description="The segment's profile")
    peer_comparison: list[dict[str, Any]] = Field(
        description="Always empty: no single peer's data is shown (see segment-comparison for "
        "aggregates)"
    )
    generated_at: datetime


class PeerAverages(BaseModel):
    current_balance: float
    savings_rate: float
    spending_volatility: float


class SegmentComparisonResponse(BaseModel):
    """The user beside the average of the segment's other users. With fewer than the minimum
    number of peers, ``message`` says so and the averages are null (the original API's answer
    for no peer data)."""

    message: str | None = None
    segment: SegmentResponse
    peer_count: int
    peer_averages: PeerAverages | None
    peers: list[dict[str, Any]] = Field(
        description="Always empty: aggregates only, never a single peer's data"
    )
    you: dict[str, float]
    segment_average: dict[str, float] | None

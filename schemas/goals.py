"""Savings goals."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from schemas.common import NonNegativeAmount, PositiveAmount, RequestModel, ResponseModel

GoalStatus = Literal["active", "achieved", "abandoned"]


class GoalCreateRequest(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    target_amount: PositiveAmount
    current_amount: NonNegativeAmount = 0.0
    target_date: date


class GoalUpdateRequest(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    target_amount: PositiveAmount | None = None
    current_amount: NonNegativeAmount | None = None
    target_date: date | None = None
    status: GoalStatus | None = None


class GoalResponse(ResponseModel):
    id: int
    name: str
    target_amount: float
    current_amount: float
    target_date: date
    status: GoalStatus
    created_at: datetime
    updated_at: datetime

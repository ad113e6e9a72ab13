"""Savings goals."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field

from schemas.common import (
    IsoDate,
    NonNegativeAmount,
    PositiveAmount,
    RequestModel,
    ResponseModel,
    Settable,
)

GoalStatus = Literal["active", "achieved", "abandoned"]


class GoalCreateRequest(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    target_amount: PositiveAmount
    current_amount: NonNegativeAmount = 0.0
    target_date: IsoDate


class GoalUpdateRequest(RequestModel):
    """Partial update: only the fields sent change (none of them can be null)."""

    name: Settable[Annotated[str, Field(min_length=1, max_length=200)]] = None
    target_amount: Settable[PositiveAmount] = None
    current_amount: Settable[NonNegativeAmount] = None
    target_date: Settable[IsoDate] = None
    status: Settable[GoalStatus] = None


class GoalResponse(ResponseModel):
    id: int
    name: str
    target_amount: float
    current_amount: float
    target_date: date
    status: GoalStatus
    created_at: datetime
    updated_at: datetime

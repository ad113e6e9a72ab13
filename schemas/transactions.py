"""Transactions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, field_validator

from fincoach.features.vocab import CATEGORIES
from schemas.common import IsoDatetime, PositiveAmount, RequestModel, ResponseModel

Category = Literal[CATEGORIES]  # type: ignore[valid-type]
TransactionKind = Literal["expense", "income", "transfer"]


class TransactionCreateRequest(RequestModel):
    amount: PositiveAmount = Field(description="Positive; the direction is given by `kind`")
    category: Category
    kind: TransactionKind = "expense"
    merchant: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=500)
    occurred_at: IsoDatetime | None = Field(
        default=None, description="ISO-8601 with a timezone; defaults to now"
    )

    @field_validator("occurred_at")
    @classmethod
    def _not_far_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and (value - datetime.now(UTC)).days > 1:
            raise ValueError("occurred_at lies more than a day in the future")
        return value


class TransactionResponse(ResponseModel):
    id: int
    amount: float
    category: str
    kind: TransactionKind
    merchant: str | None
    description: str | None
    occurred_at: datetime
    created_at: datetime
    transaction_type: Literal["debit", "credit"] = Field(
        description="credit: money in (kind income); debit: money out"
    )
    balance_after: float = Field(description="The wallet's balance right after it")
    location_city: str | None
    location_country: str

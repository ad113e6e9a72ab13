"""The wallet and transactions as the original FinCoach API has them (``/financial/...``).

Money in these answers is a JSON number with cents, as the original web client's types declare
it and its charts need it; amounts in requests may be a JSON number or a decimal string (the
original API's Decimal).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, PlainSerializer

from fincoach.features.vocab import CATEGORIES, TRANSACTION_TYPES
from schemas.common import RequestModel
from schemas.limits import MAX_AMOUNT

CENTS = Decimal("0.01")
Category = Literal[CATEGORIES]  # type: ignore[valid-type]
TransactionType = Literal[TRANSACTION_TYPES]  # type: ignore[valid-type]


def to_cents(value: Any) -> Decimal:
    """A finite amount rounded to cents; booleans and non-numbers are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError("expected a number or a decimal string")
    try:
        amount = Decimal(str(value).strip()).quantize(CENTS)
    except (InvalidOperation, ValueError) as exc:
        raise ValueError("expected a number or a decimal string") from exc
    if not amount.is_finite() or abs(amount) >= MAX_AMOUNT:
        raise ValueError(f"the amount must be finite and below {MAX_AMOUNT:,} in size")
    return amount


# In answers: an amount rounded to cents, sent as a JSON number (the web client's charts sum
# and scale these values; a decimal string would draw nothing).
Money = Annotated[
    Decimal,
    BeforeValidator(to_cents),
    PlainSerializer(float, return_type=float, when_used="json"),
]


def _nonzero(value: Any) -> Decimal:
    amount = to_cents(value)
    if amount == 0:
        raise ValueError("Transaction amount cannot be zero")
    return amount


SignedMoney = Annotated[Decimal, BeforeValidator(_nonzero)]


class TransactionCreate(RequestModel):
    """A transaction as the original API takes it: the sign of ``amount`` is its direction
    (positive: a credit, money in; negative: a debit, money out)."""

    amount: SignedMoney = Field(description="Positive: credit (money in); negative: debit")
    category: Category
    description: str = Field(max_length=500)
    merchant_name: str | None = Field(default=None, max_length=200)
    location_city: str | None = Field(default="Unknown", max_length=100)
    location_country: str = Field(default="US", max_length=100)


class TransactionOut(BaseModel):
    """A transaction as the original API shows it, with this backend's own fields beside."""

    id: str
    transaction_type: TransactionType
    amount: Money = Field(description="Positive; the direction is transaction_type")
    category: str
    description: str
    merchant_name: str | None
    location_city: str | None
    location_country: str
    balance_after: Money
    transaction_date: datetime
    kind: str = Field(description="expense, income or transfer (this backend's own field)")


class WalletResponse(BaseModel):
    id: str
    balance: Money
    currency: str
    updated_at: datetime


class SpendingAnalytics(BaseModel):
    category: str
    total_amount: Money
    transaction_count: int
    percentage: float


class FinancialHealthSummary(BaseModel):
    current_balance: Money
    weekly_spending: Money
    weekly_income: Money
    transaction_count: int
    savings_rate: float
    daily_spending_avg: Money
    top_spending_categories: list[SpendingAnalytics]


class BalancePoint(BaseModel):
    date: str = Field(description="ISO 8601 date-time of the transaction")
    balance: float
    transaction_type: TransactionType
    amount: float


class BalanceHistoryResponse(BaseModel):
    balance_history: list[BalancePoint]


class MonthlySummary(BaseModel):
    month: int
    year: int
    total_income: float
    total_spending: float
    net_change: float
    transaction_count: int
    average_transaction: float


class CategoryInfo(BaseModel):
    value: str
    label: str
    description: str


class CategoriesResponse(BaseModel):
    categories: list[CategoryInfo]


class TrackedTransactionEvent(BaseModel):
    message: str
    transaction_id: str
    event_type: str

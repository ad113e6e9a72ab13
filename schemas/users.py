"""Users, authentication and profiles."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from schemas.common import (
    NonNegativeAmount,
    RequestModel,
    ResponseModel,
    Settable,
    SignedAmount,
)

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("not a valid e-mail address")
    return value.lower()


Email = Annotated[str, Field(max_length=320), AfterValidator(_email)]
RiskTolerance = Literal["low", "medium", "high"]


class RegisterRequest(RequestModel):
    email: Email
    password: str = Field(min_length=8, max_length=128)
    full_name: str | None = Field(default=None, max_length=200)


class UserResponse(ResponseModel):
    id: int
    email: str
    full_name: str | None
    is_active: bool
    created_at: datetime


class TokenResponse(ResponseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires")


class ProfileResponse(ResponseModel):
    monthly_income: float
    opening_balance: float
    currency: str
    risk_tolerance: RiskTolerance
    monthly_budget: float | None
    updated_at: datetime


class ProfileUpdateRequest(RequestModel):
    """Partial update: only the fields sent change."""

    monthly_income: Settable[NonNegativeAmount] = None
    opening_balance: Settable[SignedAmount] = None
    currency: Settable[Annotated[str, Field(pattern=r"^[A-Z]{3}$")]] = None
    risk_tolerance: Settable[RiskTolerance] = None
    monthly_budget: NonNegativeAmount | None = Field(default=None, description="null: no budget")

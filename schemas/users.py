"""Users, authentication and profiles."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

from schemas.common import (
    IsoDate,
    NonNegativeAmount,
    RequestModel,
    ResponseModel,
    Settable,
    SignedAmount,
)

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(?:\.[^@\s.]+)+$")


def normalize_email(value: str) -> str:
    """The form an e-mail address is stored, looked up and throttled under: NFKC (full-width
    letters, composed accents), invisible characters (zero-width, format controls) removed,
    surrounding spaces stripped, case folded. Look-alikes of one address become that address."""
    value = unicodedata.normalize("NFKC", value)
    value = "".join(ch for ch in value if unicodedata.category(ch) not in ("Cf", "Cc"))
    return unicodedata.normalize("NFKC", value.strip().casefold())


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else "?"


def _mixes_scripts(part: str) -> bool:
    """Whether letters of more than one script share a label ("pаypal" with a Cyrillic "а"):
    such a label is a look-alike of another address, never a real one."""
    scripts = {_script(ch) for ch in part if ch.isalpha()}
    return len(scripts) > 1


def _email(value: str) -> str:
    value = normalize_email(value)
    if not _EMAIL.match(value):
        raise ValueError("not a valid e-mail address")
    local, domain = value.split("@", 1)
    if any(_mixes_scripts(part) for part in (local, *domain.split("."))):
        raise ValueError("not a valid e-mail address: it mixes alphabets (a look-alike)")
    return value


Email = Annotated[str, Field(max_length=320), AfterValidator(_email)]
RiskTolerance = Literal["low", "medium", "high"]


Name = Annotated[str, Field(max_length=100)]


class RegisterRequest(RequestModel):
    """The original FinCoach registration (first and last name, optional date of birth), and
    ours (``full_name``, split into first and last name when those are not given). The original
    web client also sends ``confirmPassword``: when present it must equal ``password``."""

    email: Email
    password: Annotated[
        str, StringConstraints(strip_whitespace=False, min_length=8, max_length=128)
    ]
    first_name: Name = ""
    last_name: Name = ""
    date_of_birth: IsoDate | None = None
    full_name: str | None = Field(default=None, max_length=200)
    confirmPassword: (  # noqa: N815 - the web client's own field name
        Annotated[str, StringConstraints(strip_whitespace=False, max_length=128)] | None
    ) = Field(default=None, description="If sent, must equal password")

    @model_validator(mode="after")
    def _confirmed(self) -> Self:
        if self.confirmPassword is not None and self.confirmPassword != self.password:
            raise ValueError("confirmPassword does not match password")
        return self

    def names(self) -> tuple[str, str]:
        """(first name, last name): as given, else split from ``full_name``."""
        if self.first_name or self.last_name or not self.full_name:
            return self.first_name, self.last_name
        first, _, last = self.full_name.partition(" ")
        return first[:100], last.strip()[:100]


class LoginRequest(RequestModel):
    """The original FinCoach JSON login."""

    email: Email
    password: Annotated[
        str, StringConstraints(strip_whitespace=False, min_length=1, max_length=128)
    ]


class UserResponse(ResponseModel):
    """A user as ``/users/me`` shows it."""

    id: int
    email: str
    full_name: str | None
    first_name: str
    last_name: str
    date_of_birth: date | None
    is_active: bool
    created_at: datetime


class AccountUser(BaseModel):
    """A user as the original FinCoach API shows it (``/auth/me``, ``user`` of a token)."""

    id: str = Field(description="The user's id, as a string (the original API's type)")
    email: str
    first_name: str
    last_name: str
    created_at: datetime
    is_active: bool


class MeResponse(AccountUser):
    full_name: str | None


class AuthTokenResponse(BaseModel):
    """The original FinCoach token answer: the token and the user it belongs to."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    user: AccountUser
    expires_in: int = Field(description="Seconds until the token expires")


class RegisterResponse(AuthTokenResponse):
    """The token and the user (the original API), and the new user's fields at the top level
    (what ``/auth/register`` answered before the original API was served)."""

    id: int
    email: str
    full_name: str | None
    is_active: bool
    created_at: datetime


class MessageResponse(BaseModel):
    message: str


class OriginalProfileUpdate(RequestModel):
    """``PUT /auth/profile`` of the original API: only the fields sent change."""

    monthly_income: Settable[NonNegativeAmount] = None
    savings_goal: Settable[NonNegativeAmount] = None
    risk_tolerance: Settable[Literal["low", "medium", "high"]] = None
    financial_goals: Settable[
        Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=50)]
    ] = None


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
    savings_goal: float
    financial_goals: list[str] | None
    updated_at: datetime


class ProfileUpdateRequest(RequestModel):
    """Partial update: only the fields sent change."""

    monthly_income: Settable[NonNegativeAmount] = None
    opening_balance: Settable[SignedAmount] = None
    currency: Settable[Annotated[str, Field(pattern=r"^[A-Z]{3}$")]] = None
    risk_tolerance: Settable[RiskTolerance] = None
    monthly_budget: NonNegativeAmount | None = Field(default=None, description="null: no budget")

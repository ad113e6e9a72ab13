"""Building blocks shared by the request/response schemas."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    field_validator,
)

from schemas.limits import MAX_AMOUNT

T = TypeVar("T")


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return False


class RequestModel(BaseModel):
    """Request bodies refuse unknown fields, so a typo is a 422 instead of a silent drop."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text and jsonb cannot hold U+0000 (a 500 there, stored on SQLite):
        # refused in every string, key and nested value, on every backend alike.
        if _has_nul(value):
            raise ValueError("must not contain NUL (U+0000) characters")
        return value


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _cents(value: float) -> float:
    return round(value, 2)


# The bounds hold after rounding to cents, as the database checks them: a positive amount is at
# least a cent (0.001 would be stored as 0) and none rounds up to MAX_AMOUNT.
CENT = 0.01
LARGEST_AMOUNT = MAX_AMOUNT - CENT

# A finite money amount (NaN, inf and absurd values are refused), kept to cents. Strict: a
# JSON number only (FastAPI validates the decoded body in Python mode, where pydantic would
# also take true, false and numeric strings).
PositiveAmount = Annotated[
    float,
    Strict(),
    Field(ge=CENT, le=LARGEST_AMOUNT, allow_inf_nan=False),
    AfterValidator(_cents),
]
NonNegativeAmount = Annotated[
    float, Strict(), Field(ge=0, le=LARGEST_AMOUNT, allow_inf_nan=False), AfterValidator(_cents)
]
SignedAmount = Annotated[
    float,
    Strict(),
    Field(ge=-LARGEST_AMOUNT, le=LARGEST_AMOUNT, allow_inf_nan=False),
    AfterValidator(_cents),
]
# Ids and flags in bodies: a JSON integer or boolean only ("12", 12.5, 1 or "yes" are refused).
BodyInt = Annotated[int, Strict()]
BodyBool = Annotated[bool, Strict()]

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        return value
    raise ValueError("expected a date as YYYY-MM-DD")


def _iso_datetime(value: Any) -> Any:
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATETIME.match(value)):
        return value
    raise ValueError("expected an ISO 8601 date-time with a timezone")


# The dates any body or filter may name. Outside, a date is a typo or a probe (year 1 with a
# +14:00 offset overflows when converted to UTC, a 500 once), and it is a 422.
MIN_YEAR, MAX_YEAR = 1900, 2200


def _sane_date(value: date) -> date:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"the year must lie between {MIN_YEAR} and {MAX_YEAR}")
    return value


def _sane_datetime(value: datetime) -> datetime:
    try:
        in_utc = value.astimezone(UTC) if value.tzinfo is not None else value
    except (OverflowError, ValueError) as exc:
        raise ValueError("the date-time cannot be converted to UTC") from exc
    _sane_date(value.date())
    _sane_date(in_utc.date())
    return value


# Dates and datetimes in bodies as the document says (format date / date-time): pydantic alone
# would also take numbers (Unix seconds) and, for a date, a whole date-time.
IsoDate = Annotated[date, BeforeValidator(_iso_date), AfterValidator(_sane_date)]
IsoDatetime = Annotated[
    AwareDatetime, BeforeValidator(_iso_datetime), AfterValidator(_sane_datetime)
]


def _iso_date_or_datetime(value: Any) -> Any:
    if isinstance(value, datetime) or (
        isinstance(value, str) and _ISO_DATE_OR_DATETIME.match(value)
    ):
        return value
    raise ValueError("expected an ISO 8601 date-time or a date (YYYY-MM-DD)")


_ISO_DATE_OR_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}.*)?$")
# A date-time in a query string: ISO 8601, or a date alone (midnight); not a number.
QueryDatetime = Annotated[
    datetime, BeforeValidator(_iso_date_or_datetime), AfterValidator(_sane_datetime)
]


def _present(value: Any) -> Any:
    if value is None:
        raise ValueError("leave the field out to keep its value; it cannot be null")
    return value


def _documented_without_null(schema: dict[str, Any]) -> None:
    options = [s for s in schema.pop("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    schema.pop("default", None)


# A field of a partial update whose column holds no null: it may be left out, not sent as null
# (which reached the database's NOT NULL constraint as a 500), and its documented schema has no
# null either. (``T | None`` inside keeps error locations plain: ``body.name``.)
Settable = Annotated[
    T | None, AfterValidator(_present), Field(json_schema_extra=_documented_without_null)
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int

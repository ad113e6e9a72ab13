"""Building blocks shared by the request/response schemas."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from db.tables import MAX_AMOUNT

T = TypeVar("T")


class RequestModel(BaseModel):
    """Request bodies refuse unknown fields, so a typo is a 422 instead of a silent drop."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _cents(value: float) -> float:
    return round(value, 2)


# A finite money amount (NaN, inf and absurd values are refused), kept to cents.
PositiveAmount = Annotated[
    float, Field(gt=0, lt=MAX_AMOUNT, allow_inf_nan=False), AfterValidator(_cents)
]
NonNegativeAmount = Annotated[
    float, Field(ge=0, lt=MAX_AMOUNT, allow_inf_nan=False), AfterValidator(_cents)
]
SignedAmount = Annotated[
    float, Field(gt=-MAX_AMOUNT, lt=MAX_AMOUNT, allow_inf_nan=False), AfterValidator(_cents)
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int

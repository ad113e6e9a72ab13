"""RFC 9457 problem details, the body of every error response."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    """One invalid input: where it is (``body.amount``) and what is wrong with it."""

    field: str
    message: str
    type: str


class Problem(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="URI naming the problem type")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    code: str = Field(description="Stable machine-readable error code (UPPER_SNAKE)")
    request_id: str | None = None
    errors: list[FieldError] | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem bodies for the given statuses."""
    return {
        s: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": "Problem"}
        for s in statuses
    }

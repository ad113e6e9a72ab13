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


DESCRIPTIONS = {
    401: "Missing, expired or invalid token",
    404: "Not found (or not yours)",
    409: "Conflict",
    422: "Invalid input",
    429: "Rate limited: retry after the Retry-After header's seconds",
    503: "Unavailable for now (database or model down): retry after Retry-After",
}
# Every route behind a token: the token is checked, its user's rate limit applied, and the user
# read from the database (which may be down).
AUTHENTICATED = (401, 429, 503)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem bodies for the given statuses."""
    return {
        s: {
            "model": Problem,
            "content": {PROBLEM_MEDIA_TYPE: {}},
            "description": DESCRIPTIONS.get(s, "Problem"),
        }
        for s in statuses
    }

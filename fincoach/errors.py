"""Domain exceptions and their problem-details codes.

Each ``CoachError`` subclass carries an HTTP status, a stable UPPER_SNAKE code and a title;
the API maps them to RFC 9457 problem responses (``schemas/problem.py``). Tests and OpenAPI
``responses=`` reuse the same constants.
"""

from __future__ import annotations

from typing import ClassVar

# Codes clients can switch on.
VALIDATION_ERROR = "VALIDATION_ERROR"
BAD_REQUEST = "BAD_REQUEST"
NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
INVALID_TOKEN = "INVALID_TOKEN"
INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
NOT_FOUND = "NOT_FOUND"
CONFLICT = "CONFLICT"
EMAIL_TAKEN = "EMAIL_TAKEN"
INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
BODY_TOO_LARGE = "BODY_TOO_LARGE"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
INTERNAL_ERROR = "INTERNAL_ERROR"
RATE_LIMITED = "RATE_LIMITED"


class CoachError(Exception):
    """Base of the errors the API turns into problem responses."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "BAD_REQUEST"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BadRequest(CoachError):
    status = 400
    code = BAD_REQUEST
    title = "Bad request"


class NotFound(CoachError):
    status = 404
    code = NOT_FOUND
    title = "Not found"


class Conflict(CoachError):
    status = 409
    code = CONFLICT
    title = "Conflict"


class EmailTaken(CoachError):
    """Registration with an e-mail that has an account: 400, as the original FinCoach API."""

    status = 400
    code = EMAIL_TAKEN
    title = "Bad request"


class InsufficientFunds(CoachError):
    """A debit the wallet cannot cover (the original FinCoach API's transactions route)."""

    status = 400
    code = INSUFFICIENT_FUNDS
    title = "Bad request"


class BalanceOutOfRange(CoachError):
    """A transaction that would take a balance past the largest amount stored."""

    status = 422
    code = VALIDATION_ERROR
    title = "Invalid request"


class NotAuthenticated(CoachError):
    status = 401
    code = NOT_AUTHENTICATED
    title = "Not authenticated"

    def __init__(self, detail: str = "Missing bearer token") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class InvalidToken(NotAuthenticated):
    code = INVALID_TOKEN
    title = "Invalid token"


class InvalidCredentials(NotAuthenticated):
    code = INVALID_CREDENTIALS
    title = "Invalid credentials"


class ModelUnavailable(CoachError):
    status = 503
    code = MODEL_UNAVAILABLE
    title = "Model unavailable"


class ServiceUnavailable(CoachError):
    status = 503
    code = SERVICE_UNAVAILABLE
    title = "Service unavailable"


class RateLimited(CoachError):
    status = 429
    code = RATE_LIMITED
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})

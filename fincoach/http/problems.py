"""Every error as an RFC 9457 problem response, plus the request-id and body-size middlewares."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fincoach import errors
from fincoach.observability import metrics
from fincoach.observability.logs import REQUEST_ID
from schemas.problem import PROBLEM_MEDIA_TYPE, FieldError, Problem

logger = logging.getLogger("fincoach.api")

_STATUS_CODES = {
    401: errors.NOT_AUTHENTICATED,
    404: errors.NOT_FOUND,
    405: errors.METHOD_NOT_ALLOWED,
    413: errors.BODY_TOO_LARGE,
    422: errors.VALIDATION_ERROR,
}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
RETRY_AFTER_SECONDS = "5"
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"
# The detail of the 400 FastAPI raises for a body it cannot decode (fastapi.routing).
FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"


def request_id_of(scope: Scope) -> str | None:
    return scope.get("state", {}).get("request_id")


def problem_response(
    request: Request | None,
    *,
    status: int,
    title: str,
    code: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = Problem(
        title=title,
        status=status,
        detail=detail,
        code=code,
        instance=request.url.path if request is not None else None,
        request_id=request_id_of(request.scope) if request is not None else None,
        **extra,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def _message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid value"))
    # Pydantic's messages for bad JSON and for our validators are clear already; strip the
    # "Value error, " prefix it adds to ValueError messages.
    return msg.removeprefix("Value error, ")


async def _coach_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.CoachError)
    return problem_response(
        request,
        status=exc.status,
        title=exc.title,
        code=exc.code,
        detail=exc.detail,
        headers=exc.headers or None,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    field_errors = [
        FieldError(field=_field_name(tuple(e.get("loc", ()))), message=_message(e), type=e["type"])
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e.field}: {e.message}" for e in field_errors[:5])
    if request.method == "POST" and request.url.path.startswith("/events"):
        metrics.count_events_rejected("validation")
    return problem_response(
        request,
        status=422,
        title="Invalid request",
        code=errors.VALIDATION_ERROR,
        detail=detail,
        errors=[e.model_dump() for e in field_errors],
    )


def _unparsable_body(request: Request) -> JSONResponse:
    # FastAPI answers 400 when a body it should decode is not UTF-8 JSON or form data; a body
    # that is not JSON at all is already its 422 json_invalid. Both are invalid input, which
    # every route documents as 422. The body itself is never echoed (it may hold a password).
    error = FieldError(
        field="body", message="the body could not be decoded", type="body_unparsable"
    )
    return problem_response(
        request,
        status=422,
        title="Invalid request",
        code=errors.VALIDATION_ERROR,
        detail=f"{error.field}: {error.message}",
        errors=[error.model_dump()],
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == FASTAPI_BODY_PARSE_ERROR:
        return _unparsable_body(request)
    code = _STATUS_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    return problem_response(
        request,
        status=exc.status_code,
        title=title,
        code=code,
        detail=str(exc.detail),
        headers=dict(exc.headers) if exc.headers else None,
    )


def database_unavailable(
    request: Request, detail: str = "The database is unavailable; retry shortly"
) -> JSONResponse:
    """The 503 problem, with Retry-After, of a database that does not answer."""
    return problem_response(
        request,
        status=503,
        title="Service unavailable",
        code=errors.SERVICE_UNAVAILABLE,
        detail=detail,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning(
        "database unavailable: %s (request %s)", type(exc).__name__, request_id_of(request.scope)
    )
    return database_unavailable(request)


# Driver errors that mean "the server is not there right now" (a restart, a failover), which
# SQLAlchemy raises as a bare DBAPIError rather than OperationalError.
_UNAVAILABLE_DRIVER_ERRORS = {
    "CannotConnectNowError",
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "AdminShutdownError",
    "CrashShutdownError",
    "TooManyConnectionsError",
}


def _database_gone(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    chain: list[BaseException] = []
    node: BaseException | None = exc.orig
    while node is not None and len(chain) < 5:
        chain.append(node)
        node = node.__cause__
    return any(
        type(e).__name__ in _UNAVAILABLE_DRIVER_ERRORS or isinstance(e, OSError) for e in chain
    )


async def _dbapi_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if _database_gone(exc):
        return await _database_unavailable(request, exc)
    return await _unhandled(request, exc)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # The body says nothing about the failure (no trace, no secret); the log has it all.
    logger.exception("unhandled error (request %s)", request_id_of(request.scope))
    return problem_response(
        request,
        status=500,
        title="Internal error",
        code=errors.INTERNAL_ERROR,
        detail="An internal error occurred; quote the request id when reporting it",
    )


def _document_problem_media_type(app: FastAPI) -> None:
    """Problem bodies are sent as application/problem+json, but FastAPI documents the model of
    a ``responses=`` entry under the route's own media type (application/json), leaving the
    problem media type without a schema: move the schema to where the bodies are."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()  # cached by FastAPI: edited once, in place
        for item in spec.get("paths", {}).values():
            for operation in item.values():
                responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
                for response in responses.values():
                    content = response.get("content", {})
                    moved = content.get("application/json", {}).get("schema") == {
                        "$ref": PROBLEM_SCHEMA_REF
                    }
                    if PROBLEM_MEDIA_TYPE in content and moved:
                        content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def install_problem_handlers(app: FastAPI) -> None:
    _document_problem_media_type(app)
    app.add_exception_handler(errors.CoachError, _coach_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for exc_type in (OperationalError, InterfaceError, ConnectionError):
        app.add_exception_handler(exc_type, _database_unavailable)
    app.add_exception_handler(DBAPIError, _dbapi_error)
    app.add_exception_handler(Exception, _unhandled)


class RequestIdMiddleware:
    """Gives each request an id (the client's X-Request-ID if sane) and echoes it back. An id
    an outer layer put in ``scope["state"]`` is kept as it is, and that layer echoes it (the
    Serve ingress: Serve's own request id, which its proxy sends back)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        preset = state.get("request_id")
        if preset:
            # Serve's id, kept so that the proxy, the replicas' logs and the problem bodies all
            # carry one id; under `fincoach serve` HAProxy has already replaced a client's id
            # that is not 1-128 safe characters (deployments/controller.py).
            request_id, echo = str(preset), False
        else:
            incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
            request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
            state["request_id"], echo = request_id, True

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start" and echo:
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        token = REQUEST_ID.set(request_id)  # for the log lines of this request
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


class BodySizeLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413, whether announced or streamed (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        # Read the body up front (bounded by max_bytes) and replay it to the app.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = problem_response(
            request,
            status=413,
            title="Request body too large",
            code=errors.BODY_TOO_LARGE,
            detail=f"The request body exceeds the limit of {self.max_bytes} bytes",
        )
        await response(scope, receive, send)

"""Security headers on every response.

Each answer gets ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
``Referrer-Policy: no-referrer``, ``Content-Security-Policy: default-src 'none';
frame-ancestors 'none'`` (the API serves only data, never pages), ``Cache-Control: no-store``
(answers hold personal data; a route that sets its own Cache-Control keeps it) and, when
``FINCOACH_ENV=production``, ``Strict-Transport-Security``. A header the route set itself is
left alone.

The interactive docs (``/docs``, ``/docs/oauth2-redirect``, ``/redoc``) are HTML pages that
load Swagger UI and ReDoc from the jsDelivr CDN and start them with an inline script, so they
get a policy that allows exactly that (scripts and styles from the CDN plus inline ones, the
fonts ReDoc uses, workers from ``blob:``, fetching the spec from this origin) and keep the
browser cache. These pages show no user data.
"""

from __future__ import annotations

import inspect
from urllib.parse import urlsplit, urlunsplit

from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'none'; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "connect-src 'self'; "
    "worker-src blob:; "
    "frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
HSTS = "max-age=63072000; includeSubDomains"

_COMMON = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def security_headers(path: str, *, hsts: bool) -> dict[str, str]:
    """The headers an answer to ``path`` gets (unless the route set them itself)."""
    headers = dict(_COMMON)
    if path in DOCS_PATHS:
        headers["content-security-policy"] = DOCS_CSP
    else:
        headers["content-security-policy"] = API_CSP
        headers["cache-control"] = "no-store"
    if hsts:
        headers["strict-transport-security"] = HSTS
    return headers


def _apply(headers: MutableHeaders, path: str, *, hsts: bool) -> None:
    for name, value in security_headers(path, hsts=hsts).items():
        if name not in headers:
            headers[name] = value
    _relative_location(headers)


def _relative_location(headers: MutableHeaders) -> None:
    """A redirect to this app (Starlette's trailing-slash one) built from the request's Host
    header, which the client chose, keeps only its path and query: the browser resolves it
    against the address it really asked, never an attacker's host."""
    location = headers.get("location")
    if location and (urlsplit(location).netloc or location.startswith(("//", "/\\"))):
        parts = urlsplit(location)
        path = "/" + parts.path.lstrip("/\\")  # never "//host": that names a host again
        headers["location"] = urlunsplit(("", "", path, parts.query, ""))


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                _apply(MutableHeaders(scope=message), path, hsts=self.hsts)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_security_headers(app: FastAPI, *, hsts: bool) -> None:
    """Add the middleware (call it last, so that it wraps every other one) and the same
    headers on 500 answers: Starlette sends those from its outermost ServerErrorMiddleware,
    outside every middleware added here, through the ``Exception`` handler."""
    app.add_middleware(SecurityHeadersMiddleware, hsts=hsts)
    handler = app.exception_handlers.get(Exception)
    if handler is None:
        return

    async def with_headers(request: Request, exc: Exception) -> Response:
        answer = handler(request, exc)
        response = await answer if inspect.isawaitable(answer) else answer
        _apply(response.headers, request.url.path, hsts=hsts)
        return response

    app.exception_handlers[Exception] = with_headers

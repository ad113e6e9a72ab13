"""JSON log lines of the in-process app carry the request id of the request being served."""

from __future__ import annotations

import io
import json
import logging

import httpx
from fastapi import FastAPI

from fincoach.http.problems import RequestIdMiddleware
from fincoach.observability.logs import REQUEST_ID, JsonFormatter, RequestIdFilter


def _capture(name: str) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger(name)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return log, stream, handler


def test_json_formatter_writes_one_object_with_request_id_and_extras() -> None:
    log, stream, handler = _capture("fincoach.test.formatter")
    token = REQUEST_ID.set("req-12345678")
    try:
        log.info("scored %d users", 3, extra={"model": "forecast"})
    finally:
        REQUEST_ID.reset(token)
        log.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["message"] == "scored 3 users" and line["level"] == "INFO"
    assert line["request_id"] == "req-12345678" and line["model"] == "forecast"
    assert line["logger"] == "fincoach.test.formatter" and line["timestamp"].endswith("+00:00")


async def test_request_id_middleware_puts_the_client_id_on_log_lines() -> None:
    log, stream, handler = _capture("fincoach.test.middleware")
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        log.info("pong")
        return {"ok": "yes"}

    app.add_middleware(RequestIdMiddleware)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/ping", headers={"X-Request-ID": "test-req-abcdef01"})
            bad = await c.get("/ping", headers={"X-Request-ID": "no spaces allowed"})
    finally:
        log.removeHandler(handler)
    assert r.headers["x-request-id"] == "test-req-abcdef01"
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert [x["request_id"] for x in lines] == ["test-req-abcdef01", bad.headers["x-request-id"]]
    assert REQUEST_ID.get() is None  # reset after the request

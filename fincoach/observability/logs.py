"""Structured logs with the request id: JSON lines in-process, Serve's own logs under Serve.

In-process (uvicorn, tests, the CLI) ``configure_logging()`` gives the ``fincoach.*`` loggers a
handler writing one JSON object per line to stderr: ``timestamp``, ``level``, ``logger``,
``message``, ``request_id`` (the request's X-Request-ID, or the id the app made for it) and any
``extra=`` fields. In a Serve replica it forwards them to the ``ray.serve`` logger instead, so
they land in the replica's file under ``/tmp/ray/session_latest/logs/serve/`` in the encoding of
serve_config.yaml's ``logging_config`` (JSON), with Serve's ``request_id``, ``deployment``,
``replica`` and ``application`` fields.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from fincoach.observability.metrics import ray_is_running

APP_LOGGER = "fincoach"
SERVE_LOGGER = "ray.serve"
# The id of the request being served in this task (set by api.problems.RequestIdMiddleware).
REQUEST_ID: ContextVar[str | None] = ContextVar("fincoach_request_id", default=None)
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
}
_OURS = "_fincoach_handler"


class RequestIdFilter(logging.Filter):
    """Puts the current request id on the record (``%(request_id)s`` in text formats)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or REQUEST_ID.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class ForwardToServeLogger(logging.Handler):
    """Hands records to Serve's logger, whose handlers Serve (re)configures per replica."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logging.getLogger(SERVE_LOGGER).handle(record)
        except Exception:  # noqa: BLE001 - logging must never fail the caller
            self.handleError(record)


def configure_logging(fmt: Literal["json", "text"] = "json", level: str | int = "INFO") -> None:
    """Set up the ``fincoach`` loggers for this process (idempotent: replaces its own handler)."""
    log = logging.getLogger(APP_LOGGER)
    for handler in list(log.handlers):
        if getattr(handler, _OURS, False):
            log.removeHandler(handler)
    new: logging.Handler
    if ray_is_running():
        new = ForwardToServeLogger()
        log.propagate = False  # the root logger would print them a second time
    else:
        new = StderrHandler(sys.stderr)
        new.addFilter(RequestIdFilter())
        log.propagate = True
        new.setFormatter(
            JsonFormatter()
            if fmt == "json"
            else logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
            )
        )
    setattr(new, _OURS, True)
    log.addHandler(new)
    log.setLevel(level)

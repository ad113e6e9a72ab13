"""Behavioral events: ``POST /events`` and ``POST /events/batch`` bodies and answers."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import BaseModel, Field, StringConstraints, field_validator

from fincoach.features.vocab import EVENT_TYPES
from schemas.common import IsoDatetime, RequestModel

MAX_BATCH: Final = 500
MAX_EVENT_DATA_BYTES: Final = 8192
MAX_EVENT_DATA_DEPTH: Final = 5
MAX_FUTURE: Final = timedelta(minutes=5)
MAX_AGE: Final = timedelta(days=30)

EventType = Literal[
    "page_view", "recommendation_interaction", "purchase", "goal_modification", "search", "filter"
]
if get_args(EventType) != EVENT_TYPES:  # fail at import, not on the first odd request
    raise RuntimeError("schemas.events.EventType is out of sync with features.vocab.EVENT_TYPES")

# Client-chosen ids: safe in logs, URLs and the stored "<user>:<id>" key.
ClientId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
]
# Event ids are stored as "<user id>:<client id>" in a 64-character column.
MAX_EVENT_ID_LENGTH = 48
EventId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_EVENT_ID_LENGTH, pattern=r"^[A-Za-z0-9_.:-]+$"),
]


def _json_depth(value: Any) -> int:
    """Nesting depth: an object of scalars is 1, each nested object or array adds one."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _has_non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def event_data_bytes(data: dict[str, Any]) -> int:
    """Size of ``data`` as compact UTF-8 JSON, the form the size limit applies to."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return len(text.encode("utf-8"))


class EventRequest(RequestModel):
    event_type: EventType
    event_id: EventId | None = Field(
        default=None,
        description="Idempotency key: a retried event with the same id is stored once; "
        "the server generates one when it is missing",
    )
    timestamp: IsoDatetime | None = Field(
        default=None,
        description="When it happened, ISO-8601 with a timezone; at most 5 minutes ahead and "
        "30 days old; defaults to now",
    )
    session_id: ClientId | None = Field(
        default=None, description="Defaults to the X-Session-ID of the request"
    )
    event_data: dict[str, Any] = Field(
        default_factory=dict,
        description="A JSON object of at most 8192 bytes (compact UTF-8) nesting at most 5 levels; "
        "keys and values that look like personal data are removed before storage",
    )

    @field_validator("timestamp")
    @classmethod
    def _recent(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        now = datetime.now(UTC)
        if value - now > MAX_FUTURE:
            minutes = int(MAX_FUTURE.total_seconds() // 60)
            raise ValueError(f"timestamp is more than {minutes} minutes in the future")
        if now - value > MAX_AGE:
            raise ValueError(f"timestamp is more than {MAX_AGE.days} days old")
        return value

    @field_validator("event_data")
    @classmethod
    def _bounded_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        depth = _json_depth(value)
        if depth > MAX_EVENT_DATA_DEPTH:
            raise ValueError(
                f"event_data nests {depth} levels deep, the limit is {MAX_EVENT_DATA_DEPTH}"
            )
        if _has_non_finite(value):
            raise ValueError("event_data must not contain NaN or infinity")
        try:
            size = event_data_bytes(value)
        except (TypeError, ValueError) as exc:
            raise ValueError("event_data must hold only JSON values") from exc
        if size > MAX_EVENT_DATA_BYTES:
            raise ValueError(f"event_data is {size} bytes, the limit is {MAX_EVENT_DATA_BYTES}")
        return value


class EventBatchRequest(RequestModel):
    events: list[EventRequest] = Field(min_length=1, max_length=MAX_BATCH)

    @field_validator("events", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> Any:
        # Checked before the events themselves, so an oversized batch is refused cheaply.
        if isinstance(value, list | tuple):
            if not value:
                raise ValueError("a batch needs at least one event")
            if len(value) > MAX_BATCH:
                raise ValueError(f"a batch holds at most {MAX_BATCH} events, got {len(value)}")
        return value


class EventAccepted(BaseModel):
    event_id: str = Field(description="The client's event id, or the one the server generated")
    stored: bool = Field(description="False when an event with this id was already stored")
    status: Literal["accepted"] = "accepted"


class EventBatchAccepted(BaseModel):
    accepted: int = Field(description="Events stored now")
    duplicates: int = Field(description="Events whose id was already stored")
    event_ids: list[str] = Field(description="The events' ids, in request order")

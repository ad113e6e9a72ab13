"""Event request validation: each refusal names its field and problem; the limits' own
boundaries (8192 bytes, depth 5, 5 minutes ahead, 30 days old, 500 events) are accepted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from fincoach.features.vocab import EVENT_TYPES
from schemas.events import (
    MAX_BATCH,
    MAX_EVENT_DATA_BYTES,
    MAX_EVENT_DATA_DEPTH,
    EventAccepted,
    EventBatchAccepted,
    EventBatchRequest,
    EventRequest,
    EventType,
    event_data_bytes,
)


def _now() -> datetime:
    return datetime.now(UTC)


def _sized(n_bytes: int) -> dict[str, Any]:
    """An object whose compact UTF-8 JSON is exactly ``n_bytes`` long (a 2-byte character
    included, so bytes and not characters are counted)."""
    base = {"note": "é"}
    pad = n_bytes - event_data_bytes(base)
    data = {"note": "é" + "x" * pad}
    assert event_data_bytes(data) == n_bytes
    return data


def _nested(depth: int) -> dict[str, Any]:
    """An object nesting ``depth`` levels, alternating objects and arrays."""
    value: Any = 1
    for level in range(depth - 1):
        value = [value] if level % 2 == 0 else {"k": value}
    return {"top": value}


def _event(**fields: Any) -> dict[str, Any]:
    return {"event_type": "page_view", **fields}


def _only_error(exc: pytest.ExceptionInfo[ValidationError]) -> tuple[tuple[Any, ...], str]:
    errors = exc.value.errors()
    assert len(errors) == 1, errors
    return errors[0]["loc"], errors[0]["msg"]


def test_event_type_matches_vocab() -> None:
    assert get_args(EventType) == EVENT_TYPES


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_event_request_accepts_every_event_type(event_type: str) -> None:
    event = EventRequest.model_validate({"event_type": event_type})
    assert event.event_type == event_type
    assert event.event_id is None and event.timestamp is None and event.session_id is None
    assert event.event_data == {}


BAD_EVENTS = [
    ("unknown-type", {"event_type": "click"}, ("event_type",), "page_view"),
    ("missing-type", {}, ("event_type",), "Field required"),
    (
        "future",
        # Built at collection time, checked minutes later in a long run: far enough ahead
        # to stay invalid (the 6-minute edge is checked at run time below).
        _event(timestamp=(_now() + timedelta(minutes=30)).isoformat()),
        ("timestamp",),
        "more than 5 minutes in the future",
    ),
    (
        "too-old",
        _event(timestamp=(_now() - timedelta(days=31)).isoformat()),
        ("timestamp",),
        "more than 30 days old",
    ),
    ("naive-timestamp", _event(timestamp="2026-11-24T10:00:00"), ("timestamp",), "timezone"),
    (
        "too-large",
        _event(event_data=_sized(MAX_EVENT_DATA_BYTES + 1)),
        ("event_data",),
        "event_data is 8193 bytes, the limit is 8192",
    ),
    (
        "too-deep",
        _event(event_data=_nested(MAX_EVENT_DATA_DEPTH + 1)),
        ("event_data",),
        "event_data nests 6 levels deep, the limit is 5",
    ),
    ("list-not-object", _event(event_data=[1, 2]), ("event_data",), "dictionary"),
    ("string-not-object", _event(event_data="{}"), ("event_data",), "dictionary"),
    ("nan", _event(event_data={"x": float("nan")}), ("event_data",), "NaN or infinity"),
    (
        "nested-inf",
        _event(event_data={"x": [{"y": float("inf")}]}),
        ("event_data",),
        "NaN or infinity",
    ),
    ("not-json", _event(event_data={"x": {1, 2}}), ("event_data",), "only JSON values"),
    ("extra-field", _event(user_id=7), ("user_id",), "Extra inputs are not permitted"),
    ("event-id-chars", _event(event_id="abc def"), ("event_id",), "pattern"),
    ("event-id-slash", _event(event_id="a/b"), ("event_id",), "pattern"),
    ("event-id-empty", _event(event_id=""), ("event_id",), "at least 1 character"),
    ("event-id-long", _event(event_id="a" * 49), ("event_id",), "at most 48 characters"),
    ("session-id-chars", _event(session_id="s;1"), ("session_id",), "pattern"),
]


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [case[1:] for case in BAD_EVENTS],
    ids=[case[0] for case in BAD_EVENTS],
)
def test_event_request_refuses(body: dict[str, Any], loc: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        EventRequest.model_validate(body)
    err_loc, err_msg = _only_error(exc)
    assert err_loc == loc
    assert message in err_msg


def test_event_request_refuses_nan_in_json_body() -> None:
    with pytest.raises(ValidationError) as exc:
        EventRequest.model_validate(
            json.loads('{"event_type": "search", "event_data": {"q": NaN}}')
        )
    assert "NaN or infinity" in _only_error(exc)[1]


GOOD_EVENTS = [
    ("exactly-8192-bytes", _event(event_data=_sized(MAX_EVENT_DATA_BYTES))),
    ("depth-5", _event(event_data=_nested(MAX_EVENT_DATA_DEPTH))),
    ("depth-1-scalars", _event(event_data={"a": 1, "b": "x", "c": None, "d": True})),
    ("4-minutes-ahead", _event(timestamp=(_now() + timedelta(minutes=4)).isoformat())),
    ("29-days-old", _event(timestamp=(_now() - timedelta(days=29)).isoformat())),
    ("other-timezone", _event(timestamp=_now().astimezone().isoformat())),
    ("ids", _event(event_id="client-1:retry_2.a", session_id="S-42")),
    ("event-id-48", _event(event_id="a" * 48)),
]


@pytest.mark.parametrize("body", [b for _, b in GOOD_EVENTS], ids=[i for i, _ in GOOD_EVENTS])
def test_event_request_accepts_boundaries(body: dict[str, Any]) -> None:
    event = EventRequest.model_validate(body)
    assert event.event_data == body.get("event_data", {})


def test_event_request_depth_counts_each_nested_container() -> None:
    assert EventRequest.model_validate(_event(event_data={"a": {"b": {"c": {"d": [1]}}}}))
    with pytest.raises(ValidationError, match="nests 6 levels"):
        EventRequest.model_validate(_event(event_data={"a": {"b": {"c": {"d": [[1]]}}}}))


def test_event_request_from_json_keeps_aware_timestamp() -> None:
    ts = (_now() - timedelta(hours=1)).replace(microsecond=0)
    event = EventRequest.model_validate_json(
        json.dumps({"event_type": "purchase", "timestamp": ts.isoformat()})
    )
    assert event.timestamp == ts


def test_event_batch_accepts_500_events() -> None:
    batch = EventBatchRequest.model_validate({"events": [_event()] * MAX_BATCH})
    assert len(batch.events) == MAX_BATCH


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([_event()] * (MAX_BATCH + 1), "at most 500 events, got 501"),
        ([], "at least one event"),
    ],
    ids=["501-events", "empty"],
)
def test_event_batch_refuses_size(events: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        EventBatchRequest.model_validate({"events": events})
    loc, msg = _only_error(exc)
    assert loc == ("events",)
    assert message in msg


def test_event_batch_error_names_the_bad_event() -> None:
    events = [_event(), _event(event_type="click"), _event()]
    with pytest.raises(ValidationError) as exc:
        EventBatchRequest.model_validate({"events": events})
    assert _only_error(exc)[0] == ("events", 1, "event_type")


def test_event_batch_refuses_extra_field() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        EventBatchRequest.model_validate({"events": [_event()], "user_id": 1})


def test_event_responses_shape() -> None:
    assert EventAccepted(event_id="e1", stored=False).model_dump() == {
        "event_id": "e1",
        "stored": False,
        "status": "accepted",
    }
    answer = EventBatchAccepted(accepted=2, duplicates=1, event_ids=["a", "b", "c"])
    assert answer.model_dump() == {"accepted": 2, "duplicates": 1, "event_ids": ["a", "b", "c"]}


def test_six_minutes_ahead_is_refused_when_checked_at_once() -> None:
    body = _event(timestamp=(_now() + timedelta(minutes=6)).isoformat())
    with pytest.raises(ValidationError, match="more than 5 minutes in the future"):
        EventRequest.model_validate(body)

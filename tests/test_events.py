"""Event parsing: what is accepted, and the dead-letter reasons for what is not."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.events import MAX_EVENT_BYTES, EventError, parse_event


def test_parse_bytes_str_and_dict() -> None:
    raw = '{"type": "post", "id": "e1", "time": "2026-01-01T00:00:00Z", "text": "hi"}'
    for value in (raw, raw.encode(), {"type": "post", "id": "e1", "time": "2026-01-01T00:00:00Z", "text": "hi"}):
        event = parse_event(value)
        assert (event.type, event.id, event.time, event.data["text"]) == ("post", "e1", 1767225600.0, "hi")


@pytest.mark.parametrize(
    ("time", "expected"),
    [
        (1767225600, 1767225600.0),
        (1767225600.5, 1767225600.5),
        (1767225600123, 1767225600.123),  # milliseconds
        ("2026-01-01T01:00:00+01:00", 1767225600.0),
        ("2026-01-01T00:00:00", 1767225600.0),  # no zone: UTC
        ("2026-01-01T00:00:00.250z", 1767225600.25),
    ],
)
def test_times(time: Any, expected: float) -> None:
    assert parse_event({"type": "t", "id": "1", "time": time}).time == pytest.approx(expected)


def test_integer_ids_become_strings() -> None:
    assert parse_event({"type": "t", "id": 42, "time": 0}).id == "42"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "an event is a JSON object, got list"),
        (b'"text"', "an event is a JSON object, got str"),
        (b'{"id": "1", "time": 0}', 'missing or invalid "type"'),
        (b'{"type": "", "id": "1", "time": 0}', 'missing or invalid "type"'),
        (b'{"type": 5, "id": "1", "time": 0}', 'missing or invalid "type"'),
        (b'{"type": "' + b"x" * 101 + b'", "id": "1", "time": 0}', 'missing or invalid "type"'),
        (b'{"type": "t", "time": 0}', 'missing or invalid "id"'),
        (b'{"type": "t", "id": true, "time": 0}', 'missing or invalid "id"'),
        (b'{"type": "t", "id": "' + b"x" * 201 + b'", "time": 0}', 'missing or invalid "id"'),
        (b'{"type": "t", "id": "1"}', 'missing "time"'),
        (b'{"type": "t", "id": "1", "time": null}', '"time" is null'),
        (b'{"type": "t", "id": "1", "time": "yesterday"}', 'invalid "time"'),
        (b'{"type": "t", "id": "1", "time": [1]}', 'invalid "time"'),
    ],
)
def test_invalid_events(raw: bytes, fragment: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(raw)
    assert fragment in str(info.value)


def test_oversized_event() -> None:
    raw = b'{"type": "t", "id": "1", "time": 0, "pad": "' + b"x" * MAX_EVENT_BYTES + b'"}'
    with pytest.raises(EventError) as info:
        parse_event(raw)
    assert "more than the limit" in str(info.value)
    assert parse_event(b'{"type": "t", "id": "1", "time": 0, "pad": "xx"}', max_bytes=100).id == "1"
    with pytest.raises(EventError):
        parse_event(b'{"type": "t", "id": "1", "time": 0, "pad": "xx"}', max_bytes=20)


def _nested(depth: int) -> bytes:
    return b'{"type": "post", "id": "e1", "time": 0, "meta": ' + b"[" * (depth - 1) + b"0" + b"]" * (depth - 1) + b"}"


def test_nesting_is_bounded() -> None:
    # The event object is level 1, so 64 levels in all pass and 65 are refused, saying how to fix it.
    assert parse_event(_nested(64)).data["meta"]
    with pytest.raises(EventError, match="more than 64 levels deep; flatten"):
        parse_event(_nested(65))
    with pytest.raises(EventError, match="more than 10 levels"):
        parse_event(_nested(11), max_depth=10)


@pytest.mark.parametrize("when", [1e300, -5, 253_402_300_800_000, "0001-01-01T00:00:00Z"])
def test_times_outside_the_accepted_range_are_refused(when: Any) -> None:
    with pytest.raises(EventError, match="outside the accepted range"):
        parse_event({"type": "post", "id": "e", "time": when})


def test_skew_against_the_clock_only_when_serving_live() -> None:
    future = {"type": "post", "id": "e", "time": 4_102_444_800}  # 2100
    assert parse_event(future).time == 4_102_444_800  # a replay decides it
    with pytest.raises(EventError, match="ahead of this server's clock"):
        parse_event(future, now=1_767_225_600)
    assert parse_event(future, now=4_102_444_800 - 200, max_future_skew=300).time == 4_102_444_800

"""Events: JSON objects with a type, an id and a time, and any nested payload. Parsed once, here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from vigil.dsl.runtime import FieldTypeError, parse_time

MAX_EVENT_BYTES = 1 << 20  # 1 MiB: larger events are dead-lettered, not parsed
MAX_TYPE_LENGTH = 100
MAX_ID_LENGTH = 200
# Objects and arrays nested deeper than this are refused: real payloads stay far below it, and deeper
# values break what reads them later (repr and the JSON encoder recurse; orjson stops at 254 levels).
MAX_EVENT_DEPTH = 64
# Accepted event times: 1970-01-01T00:00:00Z up to (not including) 10000-01-01T00:00:00Z, what every
# store and RFC 3339 can hold. Serving live, an event may also be at most this far ahead of the wall clock
# (`max_event_skew`): a far-future time would otherwise hold its entity's windows in place.
MIN_EVENT_TIME = 0.0
MAX_EVENT_TIME = 253_402_300_800.0
DEFAULT_MAX_FUTURE_SKEW = 300.0


class EventError(ValueError):
    """An event that cannot be decided. The message says what is wrong and how to fix it."""


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    id: str
    time: float  # epoch seconds, from the event itself: replays give the same results as live
    data: dict[str, Any]
    # Who sent it (the service: "http:TOKEN"). Ids are the sender's own: two senders may reuse one.
    source: str = ""

    @property
    def key(self) -> str:
        """The id as state knows it (redelivery of counter updates, label changes once per event, recent
        decisions): scoped by source, so that one sender's id never stands for another's event."""
        return event_key(self.source, self.id)


def event_key(source: str, event_id: str) -> str:
    """How state names the event `event_id` of `source` (Event.key)."""
    return f"{source}\x1f{event_id}" if source else event_id


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply `value` nests objects and arrays, counting stops once it passes `limit` (iterative,
    so no depth can overflow the stack).

    >>> nesting_depth({"a": [1, {"b": []}]}, 64), nesting_depth("text", 64), nesting_depth([[[[]]]], 2)
    (3, 0, 3)
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        container, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        for item in container.values() if isinstance(container, dict) else container:
            if isinstance(item, (dict, list)):
                stack.append((item, depth + 1))
    return deepest


def parse_event(raw: bytes | str | dict[str, Any], max_bytes: int = MAX_EVENT_BYTES,
                max_depth: int = MAX_EVENT_DEPTH, *, now: float | None = None,
                max_future_skew: float = DEFAULT_MAX_FUTURE_SKEW) -> Event:
    """Validate and parse one event. `now` (the wall clock, given when serving live) refuses an event
    dated more than `max_future_skew` seconds after it; replays (`vigil run`, tests) give no `now`.

    >>> parse_event(b'{"type": "post", "id": "e1", "time": "2026-01-01T00:00:00Z", "text": "hi"}').time
    1767225600.0
    """
    if isinstance(raw, dict):
        data = raw
    else:
        if len(raw) > max_bytes:
            raise EventError(f"event is {len(raw)} bytes, more than the limit of {max_bytes}; split or trim it")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise EventError(f"not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise EventError(f"an event is a JSON object, got {type(data).__name__}")
    if nesting_depth(data, max_depth) > max_depth:
        raise EventError(f"the event nests objects or arrays more than {max_depth} levels deep; "
                         "flatten the payload")
    etype = data.get("type")
    if not isinstance(etype, str) or not etype or len(etype) > MAX_TYPE_LENGTH:
        raise EventError('missing or invalid "type": give a non-empty string such as "post"')
    event_id = data.get("id")
    if isinstance(event_id, int) and not isinstance(event_id, bool):
        event_id = str(event_id)
    if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_LENGTH:
        raise EventError('missing or invalid "id": give a unique string (at most 200 characters)')
    if "time" not in data:
        raise EventError('missing "time": give RFC 3339 ("2026-01-01T12:00:00Z") or epoch seconds')
    try:
        time = parse_time(data["time"])
    except FieldTypeError:
        raise EventError(f'invalid "time" {data["time"]!r}: give RFC 3339 or epoch seconds') from None
    if time is None:
        raise EventError('"time" is null: give RFC 3339 or epoch seconds')
    check_time(time, data["time"], now, max_future_skew)
    return Event(etype, event_id, time, data)


def check_time(time: float, given: Any, now: float | None, max_future_skew: float) -> None:
    """Refuse an event time outside the accepted range, or (with `now`) too far in the future.

    >>> check_time(1e297, 1e300, None, 300)
    Traceback (most recent call last):
    ...
    vigil.events.EventError: "time" 1e+300 is outside the accepted range 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z: give RFC 3339 or epoch seconds (or milliseconds)
    """
    if not MIN_EVENT_TIME <= time < MAX_EVENT_TIME:  # NaN fails this too
        raise EventError(f'"time" {given!r} is outside the accepted range 1970-01-01T00:00:00Z to '
                         '9999-12-31T23:59:59Z: give RFC 3339 or epoch seconds (or milliseconds)')
    if now is not None and time > now + max_future_skew:
        raise EventError(f'"time" {given!r} is {time - now:.0f} s ahead of this server\'s clock, more than the '
                         f'allowed {max_future_skew:g} s: fix the sender\'s clock, or raise max_event_skew')

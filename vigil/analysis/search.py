"""Running a search over the record: matching events newest first and paged, the top values of an
expression, and counts per hour or day.

The record applies what the query implies through its indexes (time, type, verdict, rule, entity keys:
`Pushdown`), the compiled query decides each event it returns. Every request is bounded: a page holds at
most `max_rows`, a request reads at most `max_scanned` stored events and runs at most `time_budget`
seconds; a search that would go past either is refused with a hint to add a filter (`SearchRefused`),
never left to run. docs/record.md lists the limits and their defaults.
"""

from __future__ import annotations

import datetime as dt
import re
import time as wall
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import orjson

from vigil.analysis.query import CompiledQuery, Pushdown
from vigil.events import Event
from vigil.record.base import Query, Record, StoredEvent

DEFAULT_ROWS = 50
MAX_ROWS = 1000
MAX_SCANNED = 200_000
TIME_BUDGET_S = 10.0
MAX_TOP = 100
READ_BATCH = 1000
AGGREGATE_BATCH = 5000
BUCKETS = {"hour": 3600, "day": 86400}


@dataclass(frozen=True, slots=True)
class SearchLimits:
    """What one search request may cost (docs/record.md, "Limits"): the `[search]` settings
    (vigil.settings.SearchSettings.limits) give them to the CLI and the service; these are their defaults."""

    max_rows: int = MAX_ROWS  # events in one page
    max_scanned: int = MAX_SCANNED  # stored events read (after the indexed filters) in one request
    time_budget: float = TIME_BUDGET_S  # seconds one request may run
    max_top: int = MAX_TOP  # values `top` may list
    read_batch: int = READ_BATCH  # stored events read from the record at once
    aggregate_batch: int = AGGREGATE_BATCH  # … by `top` and counts, which read only what they evaluate


class SearchRefused(Exception):
    """A search past a limit: what was exceeded, and how to narrow it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Window:
    """The event times searched (`since` inclusive, `until` exclusive; None: open) and the sources a
    caller may read (None: every one)."""

    since: float | None = None
    until: float | None = None
    sources: tuple[str, ...] | None = None


@dataclass(slots=True)
class Page:
    events: list[StoredEvent]
    cursor: str | None  # pass as `after` for the next page; None: no more
    scanned: int
    pushdown: Pushdown

    def to_json(self) -> dict[str, Any]:
        return {"events": [e.to_json() for e in self.events], "cursor": self.cursor, "scanned": self.scanned,
                "filters": _pushdown_json(self.pushdown)}


@dataclass(slots=True)
class Aggregate:
    """`top` values or counts per bucket, over every matching event in the window."""

    rows: list[tuple[Any, int]]
    matched: int
    scanned: int
    pushdown: Pushdown
    by: str = ""  # "hour" or "day" for counts; "" for top values

    def to_json(self) -> dict[str, Any]:
        key = "bucket" if self.by else "value"
        return {("buckets" if self.by else "top"): [{key: k, "count": n} for k, n in self.rows],
                "matched": self.matched, "scanned": self.scanned, "filters": _pushdown_json(self.pushdown),
                **({"by": self.by} if self.by else {})}


def _pushdown_json(p: Pushdown) -> dict[str, Any]:
    return {"types": list(p.types), "verdicts": list(p.verdicts), "rules": list(p.rules),
            "entities": [list(e) for e in p.entities]}


@dataclass(slots=True)
class _Scan:
    """One request's reading of the record, within its limits."""

    record: Record
    query: CompiledQuery
    window: Window
    limits: SearchLimits
    newest_first: bool = True
    # Aggregates read only what the query evaluates (the event, its verdict and rules: Query.replay_only),
    # not the stored decisions and entity keys a page shows.
    light: bool = False
    scanned: int = 0
    last_cursor: str | None = None
    started: float = field(default_factory=wall.monotonic)

    def rows(self, after: str | None = None, first: int | None = None) -> Generator[tuple[StoredEvent, Any], None, None]:
        """Each matching stored event with the `top` value, in order, from `after` on. The first read asks
        for `first` events (a page's worth), each next one for four times as many up to `read_batch`, so a
        page the indexes fill exactly reads no more than it shows."""
        p = self.query.pushdown
        cursor = after
        most = self.limits.aggregate_batch if self.light else self.limits.read_batch
        size = min(first or most, most)
        while True:
            batch = list(self.record.scan(Query(
                since=self.window.since, until=self.window.until, types=p.types, verdicts=p.verdicts,
                rules=p.rules, entities=p.entities, sources=self.window.sources, newest_first=self.newest_first,
                limit=size, after=cursor, replay_only=self.light)))
            for stored in batch:
                self._count_one()
                self.last_cursor = stored.cursor
                event = Event(stored.type, stored.event_id, stored.time, stored.event or {}, stored.source)
                matched, value = self.query.evaluate(event, stored.rules, stored.verdict)
                if matched:
                    yield stored, value
            if len(batch) < size:
                return
            cursor = batch[-1].cursor
            size = min(size * 4, most)
            if wall.monotonic() - self.started > self.limits.time_budget:
                raise SearchRefused(
                    f"the search ran past its time budget of {self.limits.time_budget:g} s after reading "
                    f"{self.scanned:,} stored events", _narrow_hint(self.query.pushdown))

    def _count_one(self) -> None:
        self.scanned += 1
        if self.scanned > self.limits.max_scanned:
            raise SearchRefused(
                f"the search would read more than {self.limits.max_scanned:,} stored events", _narrow_hint(
                    self.query.pushdown))


def _narrow_hint(p: Pushdown) -> str:
    used = [what for what, on in (("event type", p.types), ("verdict", p.verdicts), ("rule", p.rules),
                                  ("entity", p.entities)) if on]
    hint = ("add a filter the record's indexes answer: `event is \"login\"`, `verdict is block`, "
            "`rule \"…\" fired` or `event.FIELD == \"key\"` for an entity's field, joined with `and`; "
            "or search a shorter time (--since/--until)")
    return hint + (f" (filters used now: {', '.join(used)})" if used else "")


def search(record: Record, query: CompiledQuery, window: Window, *, limit: int = DEFAULT_ROWS,
           after: str | None = None, limits: SearchLimits | None = None) -> Page:
    """One page of the events `query` matches, newest first; `after` continues from a page's cursor."""
    limits = limits or SearchLimits()
    if not 1 <= limit <= limits.max_rows:
        raise SearchRefused(f"a page holds 1 to {limits.max_rows:,} events, not {limit:,}",
                            "page through the rest with the cursor each page returns")
    scan = _Scan(record, query, window, limits)
    found: list[StoredEvent] = []
    rows = scan.rows(after, first=limit)
    for stored, _value in rows:
        found.append(stored)
        if len(found) == limit:
            rows.close()
            return Page(found, stored.cursor, scan.scanned, query.pushdown)
    return Page(found, None, scan.scanned, query.pushdown)


def top(record: Record, query: CompiledQuery, window: Window, *, n: int = 10,
        limits: SearchLimits | None = None) -> Aggregate:
    """The `n` most frequent values of the query's `top` expression over the events it matches (a list
    value counts each of its items; unknown values are not counted)."""
    limits = limits or SearchLimits()
    if not query.has_top:
        raise ValueError("the query has no `top EXPR`")
    if not 1 <= n <= limits.max_top:
        raise SearchRefused(f"top lists 1 to {limits.max_top} values, not {n}", "ask for fewer")
    scan = _Scan(record, query, window, limits, light=True)
    counts: Counter[Any] = Counter()
    matched = 0
    for _stored, value in scan.rows():
        matched += 1
        for item in value if isinstance(value, list) else (value,):
            if item is not None:
                counts[_hashable(item)] += 1
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:n]
    return Aggregate(rows, matched, scan.scanned, query.pushdown)


def counts(record: Record, query: CompiledQuery, window: Window, *, by: str,
           limits: SearchLimits | None = None) -> Aggregate:
    """How many events the query matches per hour or per UTC day, oldest first, empty buckets included
    between the first and the last (for charts)."""
    limits = limits or SearchLimits()
    if by not in BUCKETS:
        raise ValueError(f"count by hour or day, not {by!r}")
    width = BUCKETS[by]
    scan = _Scan(record, query, window, limits, newest_first=False, light=True)
    per: Counter[int] = Counter()
    for stored, _value in scan.rows():
        per[int(stored.time // width) * width] += 1
    rows: list[tuple[Any, int]] = []
    if per:
        first, last = min(per), max(per)
        rows = [(_iso(start), per.get(start, 0)) for start in range(first, last + width, width)]
    return Aggregate(rows, sum(per.values()), scan.scanned, query.pushdown, by)


def _hashable(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return value


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(text: str, now: float) -> float:
    """A time given on the command line or in a query string: `7d`, `24h`, `30m` before `now`, an RFC
    3339 time, or epoch seconds. Raises ValueError saying what it accepts.

    >>> parse_when("2d", 200000.0), parse_when("1970-01-02T00:00:00Z", 0)
    (27200.0, 86400.0)
    """
    from vigil.dsl.runtime import FieldTypeError, parse_time

    relative = _RELATIVE.match(text)
    if relative is not None:
        return now - float(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        value = parse_time(float(text) if re.fullmatch(r"\d+(\.\d+)?", text.strip()) else text.strip())
    except FieldTypeError:
        value = None
    if value is None:
        raise ValueError(f"{text!r} is no time: give 7d, 24h or 30m (before now), an RFC 3339 time or epoch "
                         "seconds")
    return value

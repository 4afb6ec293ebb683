"""Stored events for the analysis tests: events decided by a real engine, kept as the record keeps them.

`ListRecord` is the record's read side over a list, for tests of the query and replay cores that need no
store; the tests against the record's SQLite store use vigil.record itself."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from vigil.dsl.loader import RuleSet
from vigil.effects import Decision
from vigil.engine import Engine
from vigil.events import parse_event
from vigil.record.base import Query, StoredEvent, make_cursor, parse_cursor


def stored_events(ruleset: RuleSet, lines: Iterable[bytes | dict[str, Any]], source: str = "test") -> list[StoredEvent]:
    """Each event decided by `ruleset` in order, as a stored event with its decision."""
    engine = Engine(ruleset)
    out: list[StoredEvent] = []
    entities = ruleset.program.entities
    try:
        for row, line in enumerate(lines, 1):
            raw = orjson.dumps(line) if isinstance(line, dict) else line
            event = parse_event(raw)
            decision = engine.decide(event)
            assert isinstance(decision, Decision)
            keys = []
            for name, decl in entities.items():
                if len(decl.fields) == 1:
                    value: Any = event.data
                    for part in decl.fields[0].path:
                        value = value.get(part) if isinstance(value, dict) else None
                    if isinstance(value, str) and value:
                        keys.append((name, value))
            out.append(StoredEvent(make_cursor(event.time, row), source, event.id, event.time, event.type,
                                   decision.verdict, ruleset.version, event.time, orjson.loads(raw),
                                   (decision.to_json(),), tuple(h.rule for h in decision.hits), tuple(keys)))
    finally:
        engine.close()
    return out


class ListRecord:
    """The record's `scan` over a list of stored events (time order, then row)."""

    def __init__(self, events: Sequence[StoredEvent]) -> None:
        self.events = sorted(events, key=lambda e: parse_cursor(e.cursor))
        self.scans = 0

    def scan(self, query: Query) -> Iterator[StoredEvent]:
        self.scans += 1
        rows = self.events[::-1] if query.newest_first else self.events
        after = parse_cursor(query.after) if query.after is not None else None
        taken = 0
        for e in rows:
            place = parse_cursor(e.cursor)
            if after is not None and (place >= after if query.newest_first else place <= after):
                continue
            if query.since is not None and e.time < query.since or query.until is not None and e.time >= query.until:
                continue
            if query.types and e.type not in query.types or query.verdicts and e.verdict not in query.verdicts:
                continue
            if query.rules and not set(query.rules) & set(e.rules):
                continue
            if any(pair not in e.entities for pair in query.entities):
                continue
            if query.sources is not None and e.source not in query.sources:
                continue
            yield e
            taken += 1
            if taken == query.limit:
                return

"""What the record keeps, and the protocol every record store implements.

One stored event is one row: the event's JSON as received (after size limits and redaction), the
decision of each stage as `Decision.to_json()` gives it (verdict, rules fired with the feature values
they used, effects applied, rules version), the final verdict, when it was recorded, and indexes on
time, type, verdict, the rules that fired and the entity keys the event carries. A second-stage
decision is added to the row of its first stage. Events are named by (source, event id): ids are the
sender's own (vigil.events.Event.key)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson


@dataclass(frozen=True, slots=True)
class RecordEntry:
    """One decision as the writer hands it to a store. Stage 1 carries the event; stage 2 only its
    decision, joined to the stage-1 row of the same (source, event_id)."""

    source: str
    event_id: str
    time: float  # the event's own time
    type: str
    stage: int
    verdict: str
    ruleset: str
    decision: bytes  # Decision.to_json() as JSON
    recorded_at: float
    event: bytes | None = None  # the event's JSON, redacted (stage 1 only)
    rules: tuple[tuple[str, str], ...] = ()  # (rule, mode) of every hit, live and shadow
    entities: tuple[tuple[str, str], ...] = ()  # (entity type, key), redacted as the event is


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the record holds it. `cursor` names its place in the record's order (event time,
    then order written): pass the last one of a page as `Query.after` to read the next."""

    cursor: str
    source: str
    event_id: str
    time: float
    type: str
    verdict: str  # the final one: the second stage's when it ran
    ruleset: str
    recorded_at: float
    event: dict[str, Any] | None
    decisions: tuple[dict[str, Any], ...]  # stage 1, then stage 2 when it ran
    rules: tuple[str, ...] = ()  # every rule that fired (either stage, live or shadow)
    entities: tuple[tuple[str, str], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "source": self.source, "event_id": self.event_id, "time": self.time,
                "type": self.type, "verdict": self.verdict, "ruleset": self.ruleset,
                "recorded_at": self.recorded_at, "event": self.event, "decisions": list(self.decisions),
                "rules": list(self.rules), "entities": [list(e) for e in self.entities]}


@dataclass(frozen=True, slots=True)
class Neighbour:
    """Another entity seen on the same events as the one asked about: how often, and when last."""

    entity_type: str
    key: str
    events: int
    last_seen: float

    def to_json(self) -> dict[str, Any]:
        return {"entity": self.entity_type, "key": self.key, "events": self.events, "last_seen": self.last_seen}


@dataclass(frozen=True, slots=True)
class Query:
    """A filtered read of the record. Every filter uses an index; empty tuples filter nothing.
    `entities`: events carrying every one of these (entity type, key) pairs."""

    since: float | None = None  # event time, inclusive
    until: float | None = None  # event time, exclusive
    types: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()  # any of these rules fired
    entities: tuple[tuple[str, str], ...] = ()
    sources: tuple[str, ...] | None = None  # None: every source
    newest_first: bool = True
    limit: int = 100
    after: str | None = None  # a StoredEvent.cursor: the rows after it in the order asked
    # What a replay reads (backtests): the event, its final verdict, rules version and the rules that fired,
    # without the stored decisions (decisions=()) or entity keys (entities=()), which it decodes only for
    # the few events it shows (Record.at).
    replay_only: bool = False


def make_cursor(time: float, row: int) -> str:
    return f"{time!r}:{row}"


def parse_cursor(cursor: str) -> tuple[float, int]:
    """(event time, row) from a cursor; ValueError names what is wrong.

    >>> parse_cursor(make_cursor(1.5, 7))
    (1.5, 7)
    """
    time, sep, row = cursor.rpartition(":")
    try:
        if not sep:
            raise ValueError
        return float(time), int(row)
    except ValueError:
        raise ValueError(f"invalid cursor {cursor!r}: pass the cursor of the last event of a page as given") from None


class Record(Protocol):
    """A store of the record. Writes come from one writer (vigil.record.writer) per process; reads
    from anywhere (CLI, API, search, backtests)."""

    def write(self, entries: Sequence[RecordEntry]) -> None:
        """Store a batch in one transaction: stage-1 entries as new rows, stage-2 ones joined to theirs."""
        ...

    def get(self, source: str, event_id: str) -> StoredEvent | None:
        """The newest stored event of that source and id (a redelivered event is stored again)."""
        ...

    def find(self, event_id: str, sources: Sequence[str] | None = None) -> list[StoredEvent]:
        """Every stored event with that id, of any source (or of `sources`), newest first."""
        ...

    def scan(self, query: Query) -> Iterator[StoredEvent]:
        """The events `query` selects, in its order, at most `query.limit`."""
        ...

    def at(self, cursors: Sequence[str]) -> list[StoredEvent]:
        """The stored events these cursors name (as scan gave them), whole, in no particular order."""
        ...

    def neighbours(self, entity_type: str, key: str, *, limit: int = 50,
                   sources: Sequence[str] | None = None) -> list[Neighbour]:
        """The other entities seen on the events of this one, most frequent first."""
        ...

    def rule_hits(self, rule: str, *, since: float, until: float, bucket: float) -> list[tuple[float, str, int]]:
        """How often `rule` fired in [since, until), per `bucket` seconds of event time and mode (live,
        shadow): (bucket start, mode, hits), oldest first; buckets without hits are left out."""
        ...

    def count(self) -> int: ...

    def prune(self, *, recorded_before: float | None, max_events: int | None) -> int:
        """Forget events recorded before that time and the oldest beyond `max_events`; returns how many."""
        ...

    def close(self) -> None: ...


def decode_json(data: bytes | memoryview | None) -> Any:
    return None if data is None else orjson.loads(bytes(data))

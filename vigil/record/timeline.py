"""An entity's timeline: its recent events and their decisions from the record, its labels with their
whole history, its counters now, and the other entities seen on its events (`vigil entity`, and
GET /v1/entities/{type}/{key}). Bounded: one page of events, at most `neighbours` neighbours."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from vigil.record.base import Neighbour, Query, Record, StoredEvent
from vigil.record.redact import Redactor
from vigil.stores.base import LabelBackend, LabelRecord

MAX_PAGE = 500


class CounterReader(Protocol):
    def counter_values(self, entity_type: str, key: str, at: float) -> list[tuple[str, float]]: ...


@dataclass(frozen=True, slots=True)
class Timeline:
    entity_type: str
    key: str
    stored_key: str  # the key as the record holds it: its keyed hash when the field is redacted so
    events: tuple[StoredEvent, ...]
    next_cursor: str | None  # None: no older events
    labels: tuple[LabelRecord, ...]  # every label's latest record (active or not)
    label_history: tuple[LabelRecord, ...]  # every change, oldest first
    counters: tuple[tuple[str, float], ...]
    counters_at: float | None  # the time the counters are read at: the entity's newest event
    neighbours: tuple[Neighbour, ...]

    def to_json(self) -> dict[str, Any]:
        return {"entity": self.entity_type, "key": self.key, "stored_key": self.stored_key,
                "events": [e.to_json() for e in self.events], "next_cursor": self.next_cursor,
                "labels": [label_json(r) for r in self.labels],
                "label_history": [label_json(r) for r in self.label_history],
                "counters": [{"counter": text, "value": value} for text, value in self.counters],
                "counters_at": self.counters_at, "neighbours": [n.to_json() for n in self.neighbours]}


def label_json(record: LabelRecord) -> dict[str, Any]:
    return {"label": record.label, "present": record.present, "source": record.source, "actor": record.actor,
            "reason": record.reason, "at": record.updated_at, "expires_at": record.expires_at}


def entity_timeline(record: Record, entity_type: str, key: str, *, labels: LabelBackend | None = None,
                    counters: CounterReader | None = None, redactor: Redactor | None = None, limit: int = 50,
                    after: str | None = None, sources: Sequence[str] | None = None,
                    neighbours: int = 50) -> Timeline:
    """The timeline of `entity_type`:`key`. Where the record keeps that entity's field as a keyed hash,
    the key is looked up by its hash (`redactor`)."""
    limit = max(1, min(limit, MAX_PAGE))
    stored_key = key
    query = Query(entities=((entity_type, key),), sources=tuple(sources) if sources is not None else None,
                  limit=limit + 1, after=after)
    events = list(record.scan(query))
    if not events and after is None and redactor is not None and redactor.keyed:
        hashed = redactor.hash(key)
        events = list(record.scan(Query(entities=((entity_type, hashed),), sources=query.sources,
                                        limit=limit + 1)))
        if events:
            stored_key = hashed
    more = len(events) > limit
    events = events[:limit]
    history = labels.history(entity_type, key) if labels is not None else []
    latest: dict[str, LabelRecord] = {}
    for change in history:
        if change.label not in latest or change.updated_at >= latest[change.label].updated_at:
            latest[change.label] = change
    newest = max((e.time for e in events), default=None) if after is None else None
    values = counters.counter_values(entity_type, key, newest) if counters is not None and newest is not None else []
    near = record.neighbours(entity_type, stored_key, limit=neighbours, sources=sources)
    return Timeline(entity_type, key, stored_key, tuple(events), events[-1].cursor if more else None,
                    tuple(sorted(latest.values(), key=lambda r: r.label)), tuple(history), tuple(values),
                    newest, tuple(near))


def iso(epoch: float | None) -> str:
    """RFC 3339 in UTC, to the second.

    >>> iso(0.0), iso(None)
    ('1970-01-01T00:00:00Z', '-')
    """
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timeline_text(timeline: Timeline) -> str:
    """The timeline as `vigil entity` prints it."""
    t = timeline
    shown = t.key if t.stored_key == t.key else f"{t.key} (stored as {t.stored_key})"
    lines = [f"{t.entity_type} {shown}"]
    lines.append(f"labels ({len(t.labels)}):" if t.labels else "labels: none")
    for label in t.labels:
        state = "present" if label.present else "removed"
        until = f", until {iso(label.expires_at)}" if label.expires_at is not None else ""
        lines.append(f"  {label.label}: {state} since {iso(label.updated_at)}{until}, by {label.source} "
                     f"{label.actor!r}" + (f": {label.reason}" if label.reason else ""))
    if t.label_history:
        lines.append(f"label history ({len(t.label_history)} changes):")
        for change in t.label_history:
            until = f" until {iso(change.expires_at)}" if change.expires_at is not None else ""
            lines.append(f"  {iso(change.updated_at)} {'+' if change.present else '-'}{change.label}{until} by "
                         f"{change.source} {change.actor!r}" + (f": {change.reason}" if change.reason else ""))
    if t.counters:
        lines.append(f"counters at {iso(t.counters_at)}:")
        lines += [f"  {text} = {value:g}" for text, value in t.counters]
    lines.append(f"events ({len(t.events)}{', more: --after ' + t.next_cursor if t.next_cursor else ''}):"
                 if t.events else "events: none recorded")
    for event in t.events:
        rules = ", ".join(f'"{r}"' for r in event.rules) or "no rule fired"
        source = f" [{event.source}]" if event.source else ""
        lines.append(f"  {iso(event.time)} {event.type} {event.event_id}{source}: {event.verdict.upper()} ({rules})")
    if t.neighbours:
        lines.append("seen with:")
        lines += [f"  {n.entity_type} {n.key}: {n.events} events, last {iso(n.last_seen)}" for n in t.neighbours]
    return "\n".join(lines)

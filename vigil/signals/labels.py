"""Entity labels: an in-memory working set over a StateStore, with manual labels outranking rules.

One time model (docs/language.md, "Labels"): every change takes effect at its own time (a rule's at
the event's time, a person's when it is made) and holds until the label's next change; asked about
time t, every answer is the labels as they were at t, so a replay decides as live did. The working set
keeps each label's latest change; a question about a time before it reads the history from the store.

A label set or removed by a person ("manual") can only be changed by a person while it is in force:
a rule that would add a label a person removed, or remove one a person added, changes nothing. A
person's change with an expiry stops holding at that time; releasing it ends it at once. A rule that
re-adds an active label extends it to the later of the two expiries.

The working set is bounded: labels are read from the store per entity when first asked about and kept
for the `max_entities` entities asked about most recently (nothing is loaded at start). Over a store that
other processes write too (PostgreSQL: `store.shared`), every question reads the store, so a label one
instance writes is seen by the next event another instance decides.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from vigil.effects import OutboxMessage
from vigil.signals.seen import MaybeStored
from vigil.stores.base import LabelBackend, LabelRecord, StateStore, label_at

# Entities whose labels stay in memory (a few hundred bytes each): docs/operations.md, "Memory".
DEFAULT_LABEL_CACHE_ENTITIES = 100_000

MANUAL, RULE = "manual", "rule"


def next_record(current: LabelRecord | None, entity_type: str, key: str, label: str, *, present: bool,
                now: float, source: str, actor: str, expires_at: float | None = None,
                reason: str = "") -> LabelRecord | None:
    """The record a change at `now` leads to from `current` (the label's record in effect at `now`), or
    None when nothing changes (shared by every labels backend, so that they agree exactly)."""
    record = LabelRecord(entity_type, key, label, present, source, expires_at, now, actor, reason)
    if source != MANUAL:
        if current is not None and current.held(now):
            return None  # a person's change outranks rules while it is in force
        if not present:
            return record if current is not None and current.active(now) else None  # else already absent
        if current is not None and current.active(now) and (
            current.expires_at is None or (expires_at is not None and expires_at <= current.expires_at)
        ):
            return None  # already present for at least as long
        return record
    if current is not None and current.held(now) and (current.present, current.expires_at) == (present, expires_at):
        return None  # a person already made exactly this change
    return record


class Labels:
    """The in-process LabelBackend: each entity's latest change per label, read from `store` on demand and
    kept for the `max_entities` entities used most recently (None: no limit); the history stays in `store`."""

    def __init__(self, store: StateStore | None = None, *,
                 max_entities: int | None = DEFAULT_LABEL_CACHE_ENTITIES) -> None:
        from vigil.stores.memory import MemoryStore

        if max_entities is not None and max_entities < 1:
            raise ValueError(f"max_entities must be at least 1 (or None for no limit), got {max_entities}")
        self.store: StateStore = store if store is not None else MemoryStore()
        self.max_entities = max_entities
        # Another process may change a shared store's labels at any time: a cached entity would go stale.
        self._read_through = bool(getattr(self.store, "shared", False))
        self._latest: OrderedDict[tuple[str, str], dict[str, LabelRecord]] = OrderedDict()
        # The entities the store may hold labels of (read at start, keys only; each commit adds its own):
        # a question about any other entity needs no store read.
        self._maybe_labelled = None if self._read_through else MaybeStored(self.store.labelled_entities())
        # The engine's thread and the service's (label API, second stage) share the working set; the lock
        # also spans a miss's store read, so a commit in between cannot be overwritten by what it read.
        self._lock = threading.Lock()

    def _labels(self, entity_type: str, key: str) -> dict[str, LabelRecord]:
        """The entity's latest record per label (from the working set, else from the store)."""
        if self._read_through:
            return {r.label: r for r in self.store.entity_labels(entity_type, key)}
        entity = (entity_type, key)
        with self._lock:
            labels = self._latest.get(entity)
            if labels is not None:
                self._latest.move_to_end(entity)
                return labels
            labels = {}
            maybe = self._maybe_labelled
            stored = self.store.entity_labels(entity_type, key) if maybe is None or entity in maybe else []
            for record in stored:
                latest = labels.get(record.label)
                if latest is None or latest.updated_at <= record.updated_at:
                    labels[record.label] = record
            self._latest[entity] = labels
            if self.max_entities is not None and len(self._latest) > self.max_entities:
                self._latest.popitem(last=False)  # stored already: it is read again when next asked about
            return labels

    def _keep(self, record: LabelRecord) -> None:
        """Make a committed `record` its label's latest in the working set unless a later change is known
        (an entity not held is read from the store when next asked about)."""
        with self._lock:
            if self._maybe_labelled is not None:
                self._maybe_labelled.add((record.entity_type, record.key))
            labels = self._latest.get((record.entity_type, record.key))
            if labels is None:
                return
            latest = labels.get(record.label)
            if latest is None or latest.updated_at <= record.updated_at:
                labels[record.label] = record

    def cached_entities(self) -> int:
        """How many entities' labels the working set holds now."""
        return len(self._latest)

    def _at(self, entity_type: str, key: str, label: str, now: float) -> LabelRecord | None:
        record = self._labels(entity_type, key).get(label)
        if record is None or record.updated_at <= now:
            return record
        # Asked about a time before the label's latest change (a replay, a late event): the history knows.
        return label_at(self.store.label_history(entity_type, key), label, now)

    def has(self, entity_type: str, key: str, label: str, now: float) -> bool:
        record = self._at(entity_type, key, label, now)
        return record is not None and record.active(now)

    def has_manual(self, entity_type: str, key: str, label: str, now: float) -> bool:
        record = self._at(entity_type, key, label, now)
        return record is not None and record.source == MANUAL and record.active(now)

    def get(self, entity_type: str, key: str, now: float | None = None) -> list[LabelRecord]:
        """The active labels at `now`; without `now`, every label's latest record."""
        if now is None:
            return sorted(self._labels(entity_type, key).values(), key=lambda r: r.label)
        return [r for r in self.as_of(entity_type, key, now) if r.active(now)]

    def as_of(self, entity_type: str, key: str, at: float) -> list[LabelRecord]:
        records = (self._at(entity_type, key, label, at) for label in list(self._labels(entity_type, key)))
        return sorted((r for r in records if r is not None), key=lambda r: r.label)

    def history(self, entity_type: str, key: str) -> list[LabelRecord]:
        return self.store.label_history(entity_type, key)

    def change(self, entity_type: str, key: str, label: str, *, present: bool, now: float, source: str,
               actor: str, expires_at: float | None = None, reason: str = "") -> LabelRecord | None:
        """Decide the new state of a label; returns the record to store, or None when nothing changes
        (already so, or a rule trying to override a person)."""
        return next_record(self._at(entity_type, key, label, now), entity_type, key, label, present=present,
                           now=now, source=source, actor=actor, expires_at=expires_at, reason=reason)

    def commit(self, records: list[LabelRecord], event_id: str = "",
               outbox: Sequence[OutboxMessage] = ()) -> list[LabelRecord]:
        """Store the records durably, then make them visible; returns them. (`event_id` matters to shared
        backends, which apply one event's changes at most once.) `outbox`: messages the same event sends
        to sinks, stored in the same transaction."""
        if outbox:
            self.store.commit_effects(records, list(outbox))
        elif records:
            self.store.write_labels(records)
        if records:
            for r in records:
                self._keep(r)
        return records

    def set(self, entity_type: str, key: str, label: str, *, present: bool, now: float, source: str,
            actor: str, expires_at: float | None = None, reason: str = "") -> LabelRecord | None:
        """Change one label and commit it at once (manual changes, API calls)."""
        return set_label(self, entity_type, key, label, present=present, now=now, source=source, actor=actor,
                         expires_at=expires_at, reason=reason)


def set_label(labels: LabelBackend, entity_type: str, key: str, label: str, *, present: bool, now: float,
              source: str, actor: str, expires_at: float | None = None, reason: str = "") -> LabelRecord | None:
    """`change` then `commit` on any label backend: what `set` means for every one of them."""
    record = labels.change(entity_type, key, label, present=present, now=now, source=source, actor=actor,
                           expires_at=expires_at, reason=reason)
    if record is None:
        return None
    stored = labels.commit([record])
    return stored[0] if stored else None

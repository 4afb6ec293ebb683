"""Entity labels: an in-memory working set over a StateStore, with manual labels outranking rules.

A label set or removed by a person ("manual") can only be changed by a person: a rule that would add
a manually removed label, or remove a manually added one, is ignored (the decision still records it).
Expiry is judged against the event's time, so a replay gives the same answers as live. Re-applying an
active label extends its expiry only by steps of at least a minute (MIN_EXTENSION_SECONDS).
"""

from __future__ import annotations

from vigil.stores.base import LabelBackend, LabelRecord, StateStore

MANUAL, RULE = "manual", "rule"

# A rule that fires on every event of a burst re-applies its label each time. Moving the expiry by a few
# seconds is not worth a durable write per event, so an active label's expiry only moves when it would
# extend it by more than this many seconds, or 1% of the label's duration if that is longer.
MIN_EXTENSION_SECONDS = 60.0


def _min_extension(current: LabelRecord, now: float) -> float:
    if current.expires_at is None:
        return 0.0
    return max(MIN_EXTENSION_SECONDS, 0.01 * (current.expires_at - current.updated_at))


def next_record(current: LabelRecord | None, entity_type: str, key: str, label: str, *, present: bool,
                now: float, source: str, actor: str, expires_at: float | None = None,
                reason: str = "") -> LabelRecord | None:
    """The record a change leads to from `current`, or None when nothing changes (shared by every labels
    backend, so that they agree exactly)."""
    if current is not None and current.source == MANUAL and source == RULE:
        return None
    if current is not None and current.source == source:
        if not present and not current.active(now):
            return None  # already absent
        if present and current.active(now) and (
            current.expires_at is None
            or (expires_at is not None and expires_at <= current.expires_at + _min_extension(current, now))
        ):
            return None  # already present for (about) as long
    elif current is None and not present and source != MANUAL:
        return None  # nothing to remove; a person's removal is kept, so that rules cannot add it
    return LabelRecord(entity_type, key, label, present, source, expires_at, now, actor, reason)


class Labels:
    def __init__(self, store: StateStore | None = None) -> None:
        self.store = store
        self._by_entity: dict[tuple[str, str], dict[str, LabelRecord]] = {}
        if store is not None:
            for record in store.load_labels():
                self._by_entity.setdefault((record.entity_type, record.key), {})[record.label] = record

    def has(self, entity_type: str, key: str, label: str, now: float) -> bool:
        labels = self._by_entity.get((entity_type, key))
        if labels is None:
            return False
        record = labels.get(label)
        return record is not None and record.active(now)

    def get(self, entity_type: str, key: str, now: float | None = None) -> list[LabelRecord]:
        """Labels of an entity (active ones only when `now` is given)."""
        records = self._by_entity.get((entity_type, key), {}).values()
        return sorted((r for r in records if now is None or r.active(now)), key=lambda r: r.label)

    def history(self, entity_type: str, key: str) -> list[LabelRecord]:
        return self.store.label_history(entity_type, key) if self.store is not None else []

    def change(self, entity_type: str, key: str, label: str, *, present: bool, now: float, source: str,
               actor: str, expires_at: float | None = None, reason: str = "") -> LabelRecord | None:
        """Decide the new state of a label; returns the record to store, or None when nothing changes
        (already so, or a rule trying to override a person)."""
        current = self._by_entity.get((entity_type, key), {}).get(label)
        return next_record(current, entity_type, key, label, present=present, now=now, source=source,
                           actor=actor, expires_at=expires_at, reason=reason)

    def commit(self, records: list[LabelRecord], event_id: str = "") -> None:
        """Store the records durably, then make them visible. (`event_id` matters to shared backends,
        which apply one event's changes at most once.)"""
        if not records:
            return
        if self.store is not None:
            self.store.write_labels(records)
        for r in records:
            self._by_entity.setdefault((r.entity_type, r.key), {})[r.label] = r

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
    if record is not None:
        labels.commit([record])
    return record

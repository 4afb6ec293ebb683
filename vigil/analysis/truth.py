"""Ground truth for backtests: whether a stored event was truly abuse, from a field of the event or from
reviewers' decisions.

Reviewers' decisions are in the record as events of type `review.decision` (docs/review.md, "Every
decision is an event"): each names its subject (an entity of the rules: `{"entity": "user", "key": "u1"}`)
and what it did (`effects`: the kinds of its actions). A decision that labels the subject or sends it to a
sink (`label`, `output`) says the subject's events were abuse; one that removes a label or dismisses the
item (`unlabel`, none) says they were not; an escalation says nothing yet (the next queue decides). The
subject's latest decision stands, and it covers the subject's events up to the time it was made (later
events were not before the reviewer). The events of a subject are found by the record's entity index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from vigil.dsl.runtime import get
from vigil.record.base import Query, Record, StoredEvent

DEFAULT_TRUTH_FIELD = "truth.attack"  # what the demo's generator writes (vigil/demo/generator.py)
DECISION_EVENT = "review.decision"  # vigil.review.core.DECISION_EVENT (the core does not import it here)
POSITIVE_EFFECTS = frozenset({"label", "output"})
UNDECIDED_EFFECTS = frozenset({"escalate"})
MAX_REVIEW_DECISIONS = 100_000  # review decisions one backtest reads, oldest first
MAX_SUBJECT_EVENTS = 100_000  # events of one decided subject that take its decision as their truth


class GroundTruth(Protocol):
    """Whether a stored event is truly a positive (abuse), or None where unknown."""

    @property
    def description(self) -> str: ...

    def __call__(self, stored: StoredEvent) -> bool | None: ...


@dataclass(frozen=True, slots=True)
class FieldTruth:
    """Ground truth from a field of the event (`truth.attack`): positive when it holds a value other than
    null, false, 0 or ""; negative when it holds one of those; unknown when the field is absent."""

    path: str = DEFAULT_TRUTH_FIELD

    @property
    def description(self) -> str:
        return f"the event field `{self.path}`"

    def __call__(self, stored: StoredEvent) -> bool | None:
        if stored.event is None:
            return None
        parts = tuple(self.path.split("."))
        parent = get(stored.event, parts[:-1]) if len(parts) > 1 else stored.event
        if not isinstance(parent, dict) or parts[-1] not in parent:
            return None
        return bool(parent[parts[-1]])


@dataclass(slots=True)
class ReviewTruth:
    """Ground truth from reviewers' decisions in the record: the stored events (by cursor) of each decided
    subject, positive or negative as its latest decision says (module docstring). `decisions`: how many
    decisions were read; `subjects`: how many subjects they decided either way."""

    labels: dict[str, bool] = field(default_factory=dict)
    decisions: int = 0
    subjects: int = 0

    @property
    def description(self) -> str:
        return (f"reviewers' decisions ({self.decisions:,} review.decision events, {self.subjects:,} subjects: "
                "label or output = abuse, unlabel or dismiss = not)")

    def __call__(self, stored: StoredEvent) -> bool | None:
        return self.labels.get(stored.cursor)

    @classmethod
    def from_record(cls, record: Record, since: float, until: float,
                    sources: Sequence[str] | None = None) -> ReviewTruth:
        """The decisions made since `since` (up to now: a decision comes after the events it is about) and
        the events of [since, until) they cover."""
        latest: dict[tuple[str, str], tuple[float, bool | None]] = {}
        truth = cls()
        for stored in record.scan(Query(since=since, types=(DECISION_EVENT,), newest_first=False,
                                        limit=MAX_REVIEW_DECISIONS, replay_only=True)):
            subject = get(stored.event or {}, ("subject",))
            if not isinstance(subject, dict) or not isinstance(subject.get("entity"), str) \
                    or not isinstance(subject.get("key"), str):
                continue
            truth.decisions += 1
            latest[(subject["entity"], subject["key"])] = (stored.time, verdict_of(stored.event or {}))
        for (entity, key), (decided_at, positive) in latest.items():
            if positive is None:
                continue
            truth.subjects += 1
            end = min(until, decided_at + 1e-6)  # the events the reviewer could have seen
            for event in record.scan(Query(since=since, until=end, entities=((entity, key),), newest_first=False,
                                           limit=MAX_SUBJECT_EVENTS, replay_only=True,
                                           sources=tuple(sources) if sources is not None else None)):
                if event.type != DECISION_EVENT:
                    truth.labels[event.cursor] = positive or truth.labels.get(event.cursor, False)
        return truth


def verdict_of(decision_event: dict[str, object]) -> bool | None:
    """What one review.decision event says of its subject: True (abuse), False (not), None (not yet)."""
    effects = decision_event.get("effects")
    kinds = {str(k) for k in effects} if isinstance(effects, list) else set()
    if kinds & POSITIVE_EFFECTS:
        return True
    if kinds and kinds <= UNDECIDED_EFFECTS:
        return None
    return False

"""What the engine needs from durable storage, as Protocols: SQLite is the embedded default;
PostgreSQL and Redis implement the same interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol

from vigil.effects import DeadLetter

# (counter id, entity key, second, value for distinct counters or "", amount)
CounterRow = tuple[str, str, int, str, float]


@dataclass(frozen=True, slots=True)
class LabelRecord:
    """The current state of one label on one entity. A removed label is kept with present=False,
    so that a person's removal still outranks a rule that would add it again."""

    entity_type: str
    key: str
    label: str
    present: bool
    source: str  # "rule" or "manual"
    expires_at: float | None
    updated_at: float
    actor: str  # the rule's name, or the person/token that set it
    reason: str = ""

    def active(self, now: float) -> bool:
        return self.present and (self.expires_at is None or self.expires_at > now)


class StateStore(Protocol):
    """Durable state behind the in-memory working set."""

    def write_counter_rows(self, rows: list[CounterRow]) -> None: ...

    def load_counter_rows(self, cid: str, since_sec: int | None) -> Iterable[CounterRow]: ...

    def latest_counter_sec(self, cid: str) -> int | None: ...

    def prune_counter_rows(self, cid: str, before_sec: int) -> None: ...

    def write_labels(self, records: list[LabelRecord]) -> None:
        """Store the new state of each label and append it to the label history, in one transaction."""
        ...

    def load_labels(self) -> Iterable[LabelRecord]: ...

    def label_history(self, entity_type: str, key: str) -> list[LabelRecord]: ...

    def add_dead_letter(self, letter: DeadLetter) -> None: ...

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]: ...

    def count_dead_letters(self) -> int: ...

    def close(self) -> None: ...

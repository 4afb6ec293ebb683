"""A StateStore that keeps everything in process memory: for tests, `vigil test` and dry runs."""

from __future__ import annotations

from typing import Iterable

from vigil.effects import DeadLetter
from vigil.stores.base import CounterRow, LabelRecord


class MemoryStore:
    def __init__(self) -> None:
        self.counter_rows: list[CounterRow] = []
        self.labels: dict[tuple[str, str, str], LabelRecord] = {}
        self.history: list[LabelRecord] = []
        self.letters: list[DeadLetter] = []

    def write_counter_rows(self, rows: list[CounterRow]) -> None:
        self.counter_rows.extend(rows)

    def load_counter_rows(self, cid: str, since_sec: int | None) -> Iterable[CounterRow]:
        return [r for r in self.counter_rows if r[0] == cid and (since_sec is None or r[2] > since_sec)]

    def latest_counter_sec(self, cid: str) -> int | None:
        return max((r[2] for r in self.counter_rows if r[0] == cid), default=None)

    def prune_counter_rows(self, cid: str, before_sec: int) -> None:
        self.counter_rows = [r for r in self.counter_rows if r[0] != cid or r[2] > before_sec]

    def write_labels(self, records: list[LabelRecord]) -> None:
        for r in records:
            self.labels[(r.entity_type, r.key, r.label)] = r
            self.history.append(r)

    def load_labels(self) -> Iterable[LabelRecord]:
        return list(self.labels.values())

    def label_history(self, entity_type: str, key: str) -> list[LabelRecord]:
        return [r for r in self.history if r.entity_type == entity_type and r.key == key]

    def add_dead_letter(self, letter: DeadLetter) -> None:
        self.letters.append(letter)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return self.letters[-limit:]

    def count_dead_letters(self) -> int:
        return len(self.letters)

    def close(self) -> None:
        pass

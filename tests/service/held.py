"""Test doubles that hold a slow operation until the test lets it go: a classifier (also usable as a
policy model) and a SQLite store whose counter loading or label writes wait. Each signals when it is
reached, so a test knows the slow operation is under way without sleeping."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.classifiers.base import Classification
from vigil.stores.base import LabelRecord
from vigil.stores.sqlite import SqliteStore

HOLD_LIMIT = 60.0  # a held operation gives up after this long, so a broken test fails instead of hanging


@dataclass
class Gate:
    """`reached` is set when the held operation starts; it waits until `release` (or HOLD_LIMIT)."""

    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    armed: bool = True

    def hold(self) -> None:
        if self.armed:
            self.reached.set()
            self.release.wait(HOLD_LIMIT)


@dataclass
class HeldClassifier:
    """Flags every text (score 0.99), once its gate lets it. A classifier or a policy model by name."""

    name: str
    gate: Gate = field(default_factory=Gate)
    version: str = "held-1"
    labels: tuple[str, ...] = ("ok", "flagged")
    asked: list[str] = field(default_factory=list)

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        self.asked.extend(texts)
        self.gate.hold()
        return [Classification(label="flagged", score=0.99, flagged=True, version=self.version, status="ok")
                for _ in texts]

    async def aclassify(self, texts: Sequence[str], *, deadline_s: float | None = None) -> list[Classification]:
        return self.classify(texts)


class HeldStore(SqliteStore):
    """A SQLite store whose reads for a new counter (`counters`), token look-ups (`tokens`) or writes of rules'
    label changes (`rule_labels`) wait at their gates; `writes` records each label write's start and end,
    in order."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.counters = Gate(armed=False)
        self.rule_labels = Gate(armed=False)
        self.tokens = Gate(armed=False)
        self.writes: list[str] = []

    def latest_counter_sec(self, *args: Any, **kwargs: Any) -> Any:
        self.counters.hold()  # binding a counter new to the engine (a rules version's activation) reads this
        return super().latest_counter_sec(*args, **kwargs)

    def find_token(self, *args: Any, **kwargs: Any) -> Any:
        self.tokens.hold()
        return super().find_token(*args, **kwargs)

    def write_labels(self, records: list[LabelRecord]) -> None:
        kind = ",".join(sorted({r.source for r in records}))
        self.writes.append(f"{kind} start")
        if kind == "rule":
            self.rule_labels.hold()
        super().write_labels(records)
        self.writes.append(f"{kind} done")

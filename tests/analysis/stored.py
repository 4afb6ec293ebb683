"""Stored events for the analysis tests: events decided by a real engine and written by the record's own
writer into its SQLite store, as `vigil run` and `vigil serve` write them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from vigil.dsl.loader import RuleSet
from vigil.record.base import Query, StoredEvent
from vigil.record.settings import RecordSettings
from vigil.record.sqlite import SqliteRecord
from vigil.record.writer import Recorder
from vigil.runtime import build_engine

EXAMPLES = str(Path(__file__).parents[2] / "examples" / "rules")


def record_traffic(ruleset: RuleSet, events: Iterable[dict[str, Any]], path: Path | str,
                   source: str = "demo") -> SqliteRecord:
    """Decide `events` in order with `ruleset`, recording every decision; the record, open for reading."""
    engine = build_engine(ruleset)
    recorder = Recorder(SqliteRecord(path), RecordSettings(), lambda: ruleset)
    engine.recorder = recorder
    try:
        for event in events:
            engine.process(orjson.dumps(event), source=source)
    finally:
        engine.close()
        recorder.close()
    return SqliteRecord(path)


def every_event(record: SqliteRecord) -> list[StoredEvent]:
    """The whole record, oldest first."""
    out: list[StoredEvent] = []
    cursor = None
    while True:
        batch = list(record.scan(Query(newest_first=False, limit=5000, after=cursor)))
        out += batch
        if len(batch) < 5000:
            return out
        cursor = batch[-1].cursor

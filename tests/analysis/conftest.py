from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis.stored import EXAMPLES, every_event, record_traffic
from vigil.demo.generator import generate
from vigil.dsl.loader import RuleSet, load_ruleset
from vigil.record.base import StoredEvent
from vigil.record.sqlite import SqliteRecord

DEMO_EVENTS = 10_000  # enough for every example rule that counts to fire a few times


@pytest.fixture(scope="session")
def example_rules() -> RuleSet:
    return load_ruleset([EXAMPLES])


@pytest.fixture(scope="session")
def demo_record_path(tmp_path_factory: pytest.TempPathFactory, example_rules: RuleSet) -> Path:
    """The demo's traffic decided by the example rules, in the record's SQLite store."""
    path = tmp_path_factory.mktemp("record") / "record.sqlite"
    record_traffic(example_rules, generate(DEMO_EVENTS, 7), path).close()
    return path


@pytest.fixture()
def demo_record(demo_record_path: Path) -> Iterator[SqliteRecord]:
    record = SqliteRecord(demo_record_path)
    yield record
    record.close()


@pytest.fixture(scope="session")
def demo_stored(demo_record_path: Path) -> list[StoredEvent]:
    record = SqliteRecord(demo_record_path)
    try:
        return every_event(record)
    finally:
        record.close()

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from stored import ListRecord, stored_events  # noqa: E402

from vigil.demo.generator import generate  # noqa: E402
from vigil.dsl.loader import RuleSet, load_ruleset  # noqa: E402
from vigil.record.base import StoredEvent  # noqa: E402

EXAMPLES = str(Path(__file__).parents[2] / "examples" / "rules")
DEMO_EVENTS = 10000


@pytest.fixture(scope="session")
def example_rules() -> RuleSet:
    return load_ruleset([EXAMPLES])


@pytest.fixture(scope="session")
def demo_stored(example_rules: RuleSet) -> list[StoredEvent]:
    """The demo's traffic decided by the example rules, as the record keeps it."""
    return stored_events(example_rules, generate(DEMO_EVENTS, 7))


@pytest.fixture()
def demo_record(demo_stored: list[StoredEvent]) -> ListRecord:
    return ListRecord(demo_stored)

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vigil.hashing.sqlite import SqliteBankStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteBankStore]:
    with SqliteBankStore(tmp_path / "banks.sqlite", clock=lambda: datetime(2026, 1, 2, tzinfo=UTC)) as opened:
        yield opened

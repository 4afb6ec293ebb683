"""Fixtures for classifier tests: the loopback fake model server and the shared data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .fake_openai import FakeOpenAI

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A fake chat-completions server on 127.0.0.1 with a free port, stopped after the test."""
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def hatecheck_en() -> Path:
    """The English HateCheck CSV from ../shared/data."""
    path = DATA / "hatecheck" / "hatecheck_en.csv"
    if not path.is_file():
        pytest.skip(f"shared data not found at {path}")
    return path

"""Shared fixtures for the engine core's tests: build rules sets and engines from text."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vigil.diagnostics import Diagnostic, DiagnosticError
from vigil.dsl.loader import RuleSet, load_ruleset
from vigil.engine import Engine
from vigil.stores.base import StateStore

# Entities most tests use; prepend to a rules text with `HEADER + ...`.
HEADER = """
entity user = event.user
entity ip = event.ip
entity pair = (event.user, event.target)
"""

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a UTC midnight


def ruleset(text: str, files: dict[str, str] | None = None) -> RuleSet:
    """A rules set from one text (as r.vigil), with optional extra files beside it."""
    return load_ruleset("r.vigil", files={"r.vigil": text, **(files or {})})


def errors_of(text: str, files: dict[str, str] | None = None) -> list[Diagnostic]:
    """The diagnostics of a rules set that must fail to load."""
    with pytest.raises(DiagnosticError) as info:
        ruleset(text, files)
    return info.value.diagnostics


_ids = itertools.count(1)


def event(etype: str = "post", time: float = T0, **data: Any) -> dict[str, Any]:
    """An event dict with a fresh id."""
    return {"type": etype, "id": f"e{next(_ids)}", "time": time, **data}


@pytest.fixture
def make_engine() -> Iterator[Callable[..., Engine]]:
    """`make_engine(rules_text, store=None)`: an Engine over the text as r.vigil, closed after the test."""
    engines: list[Engine] = []

    def make(text: str, store: StateStore | None = None, files: dict[str, str] | None = None) -> Engine:
        engine = Engine(ruleset(text, files), store)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()

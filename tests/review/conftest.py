"""Fixtures for review tests: the review tables over a real SQLite file or a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends.servers import Server, fresh_database, postgres_server


class Clock:
    """A clock the test moves: leases and deadlines without sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with postgres_server(Path(tmp_path_factory.mktemp("pg"))) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def state_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A real state store; the review tables go into its database."""
    if request.param == "sqlite":
        from vigil.stores.sqlite import SqliteStore

        made: Any = SqliteStore(tmp_path / "state.sqlite")
    else:
        from vigil.stores.postgres import PostgresStore

        made = PostgresStore(fresh_database(request.getfixturevalue("postgres"), "review"), max_size=8)
    yield made
    made.close()


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def review_over(state_store: Any, clock: Clock) -> Iterator[Callable[..., Any]]:
    """Review objects over the one state store (each its own connection, as two processes would have)."""
    from vigil.review import Review, ReviewStore, validate

    made: list[Any] = []

    def build(queues: dict[str, Any] | None = None, review: dict[str, Any] | None = None) -> Any:
        r = Review(ReviewStore.over(state_store), validate(review or {}, queues or {}), clock=clock)
        made.append(r)
        return r

    yield build
    for r in made:
        r.close()

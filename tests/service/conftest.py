"""Fixtures for the HTTP service: an app over a temporary store and rules directory, tokens of each scope,
and an in-process client (Starlette's TestClient runs the lifespan, so the engine and tasks are real)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from vigil.service import ServiceSettings, create_app
from vigil.service.auth import create_token
from vigil.stores.sqlite import SqliteStore

from .helpers import Running, write_rules


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    root = tmp_path / "rules"
    write_rules(root)
    return root


@pytest.fixture
def make_service(tmp_path: Path, rules_dir: Path) -> Iterator[Callable[..., Running]]:
    """`make_service(**settings)`: a running app; tokens named after their scopes ("ingest", "read",
    "admin"), plus "ingest+read"."""
    stack: list[TestClient] = []

    def make(*, with_rules: bool = True, **overrides: Any) -> Running:
        store = SqliteStore(tmp_path / f"vigil-{len(stack)}.sqlite")
        secrets = {}
        for scopes in ("ingest", "read", "admin", "ingest,read"):
            _, secret = create_token(store, scopes.replace(",", "+"), scopes.split(","))
            secrets[scopes.replace(",", "+")] = secret.get_secret_value()
        settings = ServiceSettings(rules_dir=str(rules_dir) if with_rules else None, reload_interval=0.1,
                                   token_cache_seconds=0.0, **overrides)
        client = TestClient(create_app(settings, store), base_url="http://localhost")
        client.__enter__()
        stack.append(client)
        return Running(client, store, rules_dir, secrets)

    yield make
    for client in reversed(stack):
        client.__exit__(None, None, None)


@pytest.fixture
def svc(make_service: Callable[..., Running]) -> Running:
    """Following its rules directory (the default with one: rules source auto)."""
    return make_service()


@pytest.fixture
def store_svc(make_service: Callable[..., Running]) -> Running:
    """Following the store, which the rules directory seeds (version 1): the API manages versions."""
    return make_service(rules_source="store")

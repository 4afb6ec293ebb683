"""A real `vigil serve` process for end-to-end review tests: rules and vigil.toml in a temporary
directory, people with tokens of their own, on a free loopback port, stopped after."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from tests.backends.servers import free_port, stop
from vigil.audit import AuditLog
from vigil.people import People, parse_grants
from vigil.service.auth import create_token
from vigil.stores.sqlite import SqliteStore


@contextlib.contextmanager
def served(tmp_path: Path, rules: str, toml: str, people: Mapping[str, Sequence[str]],
           tokens: Mapping[str, Sequence[str]] = {"ingest": ["ingest"]}) -> Iterator[tuple[str, dict[str, str]]]:
    """(the service's URL, a token per person and per name in `tokens`). `people`: name → roles; each
    person gets a token of their own (scope review), the others belong to nobody (their scopes)."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "main.vigil").write_text(rules)
    (tmp_path / "vigil.toml").write_text(toml)
    db = tmp_path / "vigil.sqlite"
    store = SqliteStore(db)
    accounts = People.over(store, AuditLog.over(store), hasher=PasswordHasher.from_parameters(CHEAPEST))
    for name, roles in people.items():
        accounts.create(name, parse_grants(roles), actor="root")
    accounts.close()
    secrets = {name: create_token(store, name, ["review"], person=name)[1].get_secret_value() for name in people}
    secrets |= {name: create_token(store, name, scopes)[1].get_secret_value() for name, scopes in tokens.items()}
    store.close()
    port = free_port()
    env = {**os.environ, "VIGIL_CONFIG": str(tmp_path / "vigil.toml")}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from vigil.cli import main; main()", "serve", "--rules",
                                 str(rules_dir), "--db", str(db), "--port", str(port)],
                                env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"vigil serve did not start: {log.read_text()}")
        time.sleep(0.1)
    try:
        yield url, secrets
    finally:
        stop(proc)

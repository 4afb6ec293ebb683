"""People, sessions and the audit log on a real PostgreSQL server: the chain holds under appends from
two processes' worth of pools, and breaks visibly after a changed, deleted or reordered row."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from vigil.audit import AuditLog
from vigil.people import People, parse_grants
from vigil.service.auth import create_token, hash_secret

from .servers import Server, fresh_database


@pytest.fixture()
def url(postgres: Server) -> str:
    return fresh_database(postgres, "people")


@pytest.fixture()
def store(url: str) -> Iterator[Any]:
    from vigil.stores.postgres import PostgresStore

    made = PostgresStore(url)
    yield made
    made.close()


def _tamper(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        for sql in statements:
            conn.execute(sql)


def _filled(store: Any, n: int = 5) -> AuditLog:
    log = AuditLog.over(store)
    for i in range(n):
        log.append("alice", "label.add", f"user:{i}", {"score": 0.1 * i, "n": i}, at=1.7e9 + i / 3)
    return log


def test_the_chain_verifies_and_floats_survive_the_round_trip(store: Any) -> None:
    log = _filled(store)
    assert log.verify().ok and log.verify().checked == 5
    assert [e.at for e in log.entries()] == [1.7e9 + i / 3 for i in range(5)]


def test_the_table_refuses_updates(store: Any, url: str) -> None:
    import psycopg

    _filled(store, 1)
    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(psycopg.errors.RaiseException,
                                                                      match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'mallory'")


@pytest.mark.parametrize(("statements", "broken"), [
    (["UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"], 3),
    (["DELETE FROM audit_log WHERE seq = 2"], 2),
    (["UPDATE audit_log SET seq = -2 WHERE seq = 2", "UPDATE audit_log SET seq = 2 WHERE seq = 4",
      "UPDATE audit_log SET seq = 4 WHERE seq = -2"], 2),
], ids=["changed", "deleted", "reordered"])
def test_verify_names_the_first_broken_entry(store: Any, url: str, statements: list[str], broken: int) -> None:
    log = _filled(store)
    _tamper(url, *statements)
    result = log.verify()
    assert (result.ok, result.broken) == (False, broken)


def test_appends_from_two_pools_keep_one_chain(url: str) -> None:
    from vigil.stores.postgres import PostgresStore

    stores = [PostgresStore(url), PostgresStore(url)]
    logs = [AuditLog.over(s) for s in stores]
    start = threading.Barrier(2)

    def write(log: AuditLog, who: str) -> None:
        start.wait()
        for i in range(100):
            log.append(who, "review.decide", f"item:{who}{i}")

    threads = [threading.Thread(target=write, args=(log, who)) for log, who in zip(logs, "ab", strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = logs[0].verify()
    assert (result.ok, result.checked) == (True, 200)
    for s in stores:
        s.close()


def test_people_sessions_and_tokens_of_a_person(store: Any) -> None:
    people = People.over(store, AuditLog.over(store), hasher=PasswordHasher.from_parameters(CHEAPEST))
    alice = people.create("alice", parse_grants(["reviewer:spam", "analyst"]), actor="root",
                          password="correct horse battery")
    assert people.authenticate("alice", "correct horse battery") == alice
    secret, _ = people.open_session(alice, 60.0)
    assert people.session(secret) == alice
    people.set_disabled("alice", True, actor="root")
    assert people.session(secret) is None
    token, token_secret = create_token(store, "alice-laptop", ["read"], person="alice")
    found = store.find_token(hash_secret(token_secret.get_secret_value()))
    assert found is not None and found.person == "alice" and found.id == token.id
    assert people.audit.verify().ok

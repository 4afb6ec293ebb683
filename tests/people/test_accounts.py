"""Accounts: argon2 password hashes, roles, disabling, sessions with expiry; every change audited by
the person who made it."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from vigil.audit import AuditLog
from vigil.people import People, PeopleError, parse_grants
from vigil.stores.sqlite import SqliteStore

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def people(tmp_path: Path) -> People:
    store = SqliteStore(tmp_path / "s.sqlite")
    return People(People.over(store, AuditLog.over(store)).tables, AuditLog.over(store),
                  hasher=PasswordHasher.from_parameters(CHEAPEST), clock=Clock())


def test_a_password_is_stored_as_an_argon2id_hash(people: People, tmp_path: Path) -> None:
    import sqlite3

    people.create("alice", parse_grants(["reviewer"]), actor="root", password=PASSWORD)
    stored = sqlite3.connect(tmp_path / "s.sqlite").execute("SELECT password_hash FROM people").fetchone()[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert people.authenticate("alice", PASSWORD) is not None
    assert people.authenticate("alice", PASSWORD + "x") is None
    assert people.authenticate("nobody", PASSWORD) is None


def test_an_old_hash_is_replaced_at_login(people: People, tmp_path: Path) -> None:
    import sqlite3

    people.create("alice", (), actor="root", password=PASSWORD)
    people.hasher = PasswordHasher.from_parameters(CHEAPEST)
    people.hasher = PasswordHasher(time_cost=2, memory_cost=CHEAPEST.memory_cost * 2, parallelism=1)
    assert people.authenticate("alice", PASSWORD) is not None
    stored = sqlite3.connect(tmp_path / "s.sqlite").execute("SELECT password_hash FROM people").fetchone()[0]
    assert not people.hasher.check_needs_rehash(stored)


def test_names_and_passwords_are_checked(people: People) -> None:
    with pytest.raises(PeopleError, match="at least 12 characters"):
        people.create("alice", (), actor="root", password="short")
    with pytest.raises(PeopleError, match="not a usable name"):
        people.create("Alice Smith", (), actor="root")
    with pytest.raises(PeopleError, match="how a token of nobody is recorded"):
        people.create("token:x", (), actor="root")
    people.create("alice", (), actor="root")
    with pytest.raises(PeopleError, match="exists already"):
        people.create("alice", (), actor="root")
    assert people.authenticate("alice", "") is None  # no password: tokens only


def test_sessions_expire_and_end_with_logout_password_roles_and_disabling(people: People) -> None:
    clock = people.clock
    assert isinstance(clock, Clock)
    alice = people.create("alice", parse_grants(["reviewer"]), actor="root", password=PASSWORD)
    secret, expires = people.open_session(alice, 60.0)
    assert expires == 1060.0 and people.session(secret) == alice
    clock.now = 1060.0
    assert people.session(secret) is None
    ends = (lambda s: people.close_session(s),
            lambda s: people.set_password("alice", PASSWORD + "!", actor="root"),
            lambda s: people.set_roles("alice", parse_grants(["analyst"]), actor="root"),
            lambda s: people.set_disabled("alice", True, actor="root"))
    for end in ends:
        session, _ = people.open_session(people.require("alice"), 60.0)
        assert people.session(session) is not None
        end(session)
        assert people.session(session) is None
    assert people.authenticate("alice", PASSWORD + "!") is None  # disabled
    people.set_disabled("alice", False, actor="root")
    assert people.authenticate("alice", PASSWORD + "!") is not None


def test_every_change_is_audited_by_who_made_it(people: People) -> None:
    people.create("alice", parse_grants(["reviewer:spam"]), actor="root", password=PASSWORD)
    people.set_roles("alice", parse_grants(["review_lead"]), actor="bob")
    people.set_password("alice", None, actor="bob")
    people.set_disabled("alice", True, actor="root")
    entries = people.audit.entries()
    assert [(e.actor, e.action, e.target) for e in entries] == [
        ("root", "user.create", "user:alice"), ("bob", "user.roles", "user:alice"),
        ("bob", "user.password", "user:alice"), ("root", "user.disable", "user:alice")]
    assert entries[1].detail == {"before": ["reviewer:spam"], "after": ["review_lead"]}
    assert all("argon2" not in str(e.detail) for e in entries)
    assert people.audit.verify().ok

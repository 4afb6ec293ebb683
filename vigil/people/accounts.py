"""People: accounts with roles and argon2 password hashes, and console sessions, in the state store's
database. Every change is written to the audit log by the person who made it.

A password is kept only as its argon2id hash (argon2-cffi, its default parameters; a hash made with
older parameters is replaced at the next login). A session is 32 random bytes given to the browser once
(a cookie), kept as its SHA-256 with its person and expiry; logging out, a new password, a change of
roles and disabling the person end it. A person may have no password (a service account that only uses
API tokens).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from vigil.audit import AuditLog
from vigil.people.roles import Grant, Principal, parse_grant
from vigil.stores.tables import Tables

_PG_LOCK = 0x70656f70  # advisory lock for the migrations ("peop")
MIGRATIONS: dict[str, list[str]] = {dialect: ["""
CREATE TABLE people (
    name TEXT PRIMARY KEY, password_hash TEXT, grants TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE people_sessions (
    id_hash TEXT PRIMARY KEY, person TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX people_sessions_person ON people_sessions (person);
"""] for dialect in ("sqlite", "postgres")}

NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,99}$")
MIN_PASSWORD = 12  # characters at least
MAX_PASSWORD = 1024  # characters at most (hashing a megabyte on every login attempt is a denial of service)
SESSION_PREFIX = "vgs_"


class PeopleError(ValueError):
    """A change that cannot be made (unknown person, a name taken, a weak password): the message says
    what and how to fix it. `status` is the HTTP status a route answers with."""

    def __init__(self, message: str, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    grants: tuple[Grant, ...]
    disabled: bool
    created_at: float
    updated_at: float
    has_password: bool

    def principal(self, token: str | None = None) -> Principal:
        return Principal(self.name, self.grants, token=token)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "roles": [str(g) for g in self.grants], "disabled": self.disabled,
                "created_at": self.created_at, "updated_at": self.updated_at, "has_password": self.has_password}


_COLUMNS = "name, grants, disabled, created_at, updated_at, password_hash IS NOT NULL"


def _person(row: Any) -> Person:
    grants = tuple(parse_grant(g) for g in str(row[1]).split(",") if g)
    return Person(str(row[0]), grants, bool(row[2]), float(row[3]), float(row[4]), bool(row[5]))


def _grants_text(grants: Iterable[Grant]) -> str:
    return ",".join(str(g) for g in dict.fromkeys(grants))


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise PeopleError(f"{name!r} is not a usable name: 1 to 100 lower-case letters, digits and . _ @ -, "
                          "starting with a letter or digit (`token:NAME` is how a token of nobody is recorded)")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise PeopleError(f"a password needs at least {MIN_PASSWORD} characters (a passphrase of several words "
                          "is easiest)")
    if len(password) > MAX_PASSWORD:
        raise PeopleError(f"a password has at most {MAX_PASSWORD} characters")
    return password


def session_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class People:
    """Accounts and sessions over one database (`People.over(store, audit)`); changes go to `audit`."""

    def __init__(self, tables: Tables, audit: AuditLog, *, hasher: PasswordHasher | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.tables = tables
        self.audit = audit
        self.hasher = hasher if hasher is not None else PasswordHasher()
        self.clock = clock
        self._dummy: str | None = None  # checked against for an unknown name: a login takes as long either way

    @classmethod
    def over(cls, store: Any, audit: AuditLog, *, hasher: PasswordHasher | None = None) -> People:
        return cls(Tables.over(store, MIGRATIONS, "people_schema_version", _PG_LOCK), audit, hasher=hasher)

    # ---- reading ----
    def get(self, name: str) -> Person | None:
        with self.tables.tx() as tx:
            row = tx.execute(f"SELECT {_COLUMNS} FROM people WHERE name = ?", (name,)).fetchone()
        return _person(row) if row is not None else None

    def require(self, name: str) -> Person:
        person = self.get(name)
        if person is None:
            raise PeopleError(f"no person named {name!r}; `vigil user list` shows them", 404, "unknown_person")
        return person

    def list_people(self) -> list[Person]:
        with self.tables.tx() as tx:
            rows = tx.execute(f"SELECT {_COLUMNS} FROM people ORDER BY name").fetchall()
        return [_person(r) for r in rows]

    # ---- changes, each audited ----
    def create(self, name: str, grants: Iterable[Grant], *, actor: Any, password: str | None = None) -> Person:
        check_name(name)
        hashed = self.hasher.hash(check_password(password)) if password is not None else None
        grants = tuple(grants)
        now = self.clock()
        with self.tables.tx() as tx:
            if tx.execute("SELECT 1 FROM people WHERE name = ?", (name,)).fetchone() is not None:
                raise PeopleError(f"a person named {name!r} exists already", 409, "person_exists")
            tx.execute("INSERT INTO people (name, password_hash, grants, disabled, created_at, updated_at) "
                       "VALUES (?, ?, ?, 0, ?, ?)", (name, hashed, _grants_text(grants), now, now))
        self.audit.append(actor, "user.create", f"user:{name}",
                          {"roles": [str(g) for g in grants], "password": hashed is not None}, at=now)
        return self.require(name)

    def set_roles(self, name: str, grants: Iterable[Grant], *, actor: Any) -> Person:
        """Replace the person's grants; their sessions end (a browser holding fewer rights must log in again)."""
        before = self.require(name)
        grants = tuple(grants)
        now = self.clock()
        with self.tables.tx() as tx:
            tx.execute("UPDATE people SET grants = ?, updated_at = ? WHERE name = ?", (_grants_text(grants), now, name))
            tx.execute("DELETE FROM people_sessions WHERE person = ?", (name,))
        self.audit.append(actor, "user.roles", f"user:{name}",
                          {"before": [str(g) for g in before.grants], "after": [str(g) for g in grants]}, at=now)
        return self.require(name)

    def set_password(self, name: str, password: str | None, *, actor: Any) -> Person:
        """A new password (None: none, API tokens only); the person's sessions end."""
        self.require(name)
        hashed = self.hasher.hash(check_password(password)) if password is not None else None
        now = self.clock()
        with self.tables.tx() as tx:
            tx.execute("UPDATE people SET password_hash = ?, updated_at = ? WHERE name = ?", (hashed, now, name))
            tx.execute("DELETE FROM people_sessions WHERE person = ?", (name,))
        self.audit.append(actor, "user.password", f"user:{name}", {"password": hashed is not None}, at=now)
        return self.require(name)

    def set_disabled(self, name: str, disabled: bool, *, actor: Any) -> Person:
        """Disable (or enable again): a disabled person cannot log in, their sessions end and their
        tokens stop working (at once here, within the token cache's seconds in other processes)."""
        self.require(name)
        now = self.clock()
        with self.tables.tx() as tx:
            tx.execute("UPDATE people SET disabled = ?, updated_at = ? WHERE name = ?", (int(disabled), now, name))
            if disabled:
                tx.execute("DELETE FROM people_sessions WHERE person = ?", (name,))
        self.audit.append(actor, "user.disable" if disabled else "user.enable", f"user:{name}", at=now)
        return self.require(name)

    # ---- logging in ----
    def authenticate(self, name: str, password: str) -> Person | None:
        """The person if `password` is theirs and they are enabled; None otherwise (which of the two is
        not said). As slow for an unknown name as for a wrong password."""
        with self.tables.tx() as tx:
            row = tx.execute("SELECT password_hash FROM people WHERE name = ? AND disabled = 0", (name,)).fetchone()
        stored = str(row[0]) if row is not None and row[0] is not None else None
        if stored is None and self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        try:
            self.hasher.verify(stored or self._dummy or "", password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return None
        if stored is None:
            return None
        if self.hasher.check_needs_rehash(stored):
            with self.tables.tx() as tx:
                tx.execute("UPDATE people SET password_hash = ? WHERE name = ? AND password_hash = ?",
                           (self.hasher.hash(password), name, stored))
        return self.get(name)

    def open_session(self, person: Person, lifetime: float) -> tuple[str, float]:
        """A new session for `person`: (its secret, for the cookie; its expiry)."""
        secret = SESSION_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        expires = now + lifetime
        with self.tables.tx() as tx:
            tx.execute("DELETE FROM people_sessions WHERE expires_at <= ?", (now,))  # forget the expired
            tx.execute("INSERT INTO people_sessions (id_hash, person, created_at, expires_at) VALUES (?, ?, ?, ?)",
                       (session_hash(secret), person.name, now, expires))
        self.audit.append(person.principal(), "session.login", f"user:{person.name}", {"expires_at": expires}, at=now)
        return secret, expires

    def session(self, secret: str) -> Person | None:
        """The enabled person a live session belongs to; None for an unknown or expired one."""
        with self.tables.tx() as tx:
            row = tx.execute("SELECT p.name, p.grants, p.disabled, p.created_at, p.updated_at, p.password_hash IS NOT "
                             "NULL FROM people_sessions s JOIN people p ON p.name = s.person "
                             "WHERE s.id_hash = ? AND s.expires_at > ? AND p.disabled = 0",
                             (session_hash(secret), self.clock())).fetchone()
        return _person(row) if row is not None else None

    def close_session(self, secret: str) -> Person | None:
        """Log out: the session is forgotten; returns whose it was."""
        person = self.session(secret)
        with self.tables.tx() as tx:
            tx.execute("DELETE FROM people_sessions WHERE id_hash = ?", (session_hash(secret),))
        if person is not None:
            self.audit.append(person.principal(), "session.logout", f"user:{person.name}")
        return person

    def close(self) -> None:
        self.tables.close()

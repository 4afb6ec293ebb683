"""The audit log: who did what, append-only and tamper-evident, in the state store's database.

Each entry carries the SHA-256 of the entry before it (`prev`) and its own `hash`, the SHA-256 of the
canonical JSON (sorted keys, no spaces, UTF-8) of its fields without `hash`; the first entry's `prev` is
64 zeros. Entries are numbered 1, 2, … without gaps. So a changed entry no longer matches its hash, a
removed one leaves a gap, and entries moved about no longer follow each other: `verify` names the first
entry where the chain breaks. Removing entries from the end leaves a shorter chain that still holds: to
catch that, keep the head (`vigil audit verify` prints it) somewhere else and check against it later
(`verify(head=...)`).

Appends are serialised across threads and processes (SQLite: one writer; PostgreSQL: an advisory lock
held for the append's transaction), so every writer extends the one chain. Triggers refuse UPDATE and
DELETE on the table, against mistakes; against someone with write access to the database the chain is
the protection, not the triggers.

    log = AuditLog.over(store)
    log.append("alice", "rules.activate", "rules:7", {"previous": 6})
    assert log.verify().ok
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from vigil.stores.tables import Tables, Tx

GENESIS = "0" * 64
_PG_LOCK = 0x61756469  # advisory lock for appends and for the migrations ("audi")

MIGRATIONS: dict[str, list[str]] = {
    "sqlite": ["""
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY, at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
    detail TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""],
    "postgres": ["""
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT NOT NULL, detail TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);
CREATE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_refuse();
"""],
}

MAX_LIST = 1000  # entries one `list` call returns at most


def canonical(value: Any) -> bytes:
    """The canonical JSON of `value`: sorted keys, no spaces, UTF-8 (what an entry's hash is over).

    >>> canonical({"b": 1, "a": [1.5, "é"]})
    b'{"a":[1.5,"\\xc3\\xa9"],"b":1}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: float
    actor: str  # the person (or `token:NAME` for a token that belongs to nobody), never a token's name alone
    action: str  # e.g. "rules.activate", "label.add", "user.create", "review.decide", "review.view"
    target: str  # what it was done to, e.g. "rules:7", "user:alice", "item:item_ab12"
    detail: dict[str, Any] = field(default_factory=dict)
    prev: str = GENESIS
    hash: str = ""

    def body(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "actor": self.actor, "action": self.action, "target": self.target,
                "detail": self.detail, "prev": self.prev}

    def digest(self) -> str:
        """The SHA-256 this entry's fields give (equal to `hash` unless it was changed)."""
        return hashlib.sha256(canonical(self.body())).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash}


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of checking the chain: `ok`, the entries checked, the head (last seq and hash), and
    where it broke (`broken`: the first entry that does not hold, `problem`: how)."""

    ok: bool
    checked: int
    head_seq: int = 0
    head_hash: str = GENESIS
    broken: int | None = None
    problem: str = ""


_COLUMNS = "seq, at, actor, action, target, detail, prev, hash"


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(int(row[0]), float(row[1]), str(row[2]), str(row[3]), str(row[4]), json.loads(row[5]),
                      str(row[6]), str(row[7]))


def actor_name(actor: Any) -> str:
    """A principal's recorded name (vigil.people.roles.Principal.actor), or a plain string as given."""
    name = getattr(actor, "actor", actor)
    if not isinstance(name, str) or not name:
        raise ValueError("an audit entry needs the person who acted")
    return name


class AuditLog:
    """The chained entries over one database (`AuditLog.over(store)`)."""

    def __init__(self, tables: Tables, clock: Any = time.time) -> None:
        self.tables = tables
        self.clock = clock

    @classmethod
    def over(cls, store: Any) -> AuditLog:
        return cls(Tables.over(store, MIGRATIONS, "audit_schema_version", _PG_LOCK))

    def append(self, actor: Any, action: str, target: str = "", detail: Mapping[str, Any] | None = None, *,
               at: float | None = None) -> AuditEntry:
        """Add an entry at the end of the chain and return it. `actor`: a Principal or a person's name.
        `detail` must be JSON (it is stored as its canonical JSON text, exactly as hashed)."""
        if not action:
            raise ValueError("an audit entry needs an action")
        name = actor_name(actor)
        token = getattr(actor, "token", None)
        body = dict(detail or {})
        if token is not None and "token" not in body:
            body["token"] = token  # the token it came through, beside the person it is attributed to
        text = canonical(body).decode()
        when = float(self.clock() if at is None else at)
        with self.tables.tx() as tx:
            tx.lock(_PG_LOCK)
            last = tx.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (int(last[0]) + 1, str(last[1])) if last is not None else (1, GENESIS)
            entry = AuditEntry(seq, when, name, action, target, json.loads(text), prev)
            entry = AuditEntry(seq, when, name, action, target, entry.detail, prev, entry.digest())
            tx.execute(f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (seq, when, name, action, target, text, prev, entry.hash))
        return entry

    def head(self) -> tuple[int, str]:
        """The last entry's number and hash ((0, GENESIS) for an empty log)."""
        with self.tables.tx() as tx:
            row = tx.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row is not None else (0, GENESIS)

    def entries(self, *, after: int = 0, before: int | None = None, actor: str | None = None,
             action: str | None = None, target: str | None = None, limit: int = 100,
             newest_first: bool = False) -> list[AuditEntry]:
        """Entries after seq `after` (and before `before`), oldest first (or newest first), filtered by
        actor, action (exact, or a prefix ending in "." such as "review.") and target; at most MAX_LIST."""
        where: list[str] = ["seq > ?"]
        params: list[Any] = [after]
        if before is not None:
            where.append("seq < ?")
            params.append(before)
        if actor is not None:
            where.append("actor = ?")
            params.append(actor)
        if action is not None:
            if action.endswith("."):
                where.append("substr(action, 1, ?) = ?")
                params += [len(action), action]
            else:
                where.append("action = ?")
                params.append(action)
        if target is not None:
            where.append("target = ?")
            params.append(target)
        order = "DESC" if newest_first else "ASC"
        params.append(max(1, min(limit, MAX_LIST)))
        with self.tables.tx() as tx:
            rows = tx.execute(f"SELECT {_COLUMNS} FROM audit_log WHERE {' AND '.join(where)} ORDER BY seq {order}"
                              " LIMIT ?", params).fetchall()
        return [_entry(r) for r in rows]

    def _pages(self, page: int = 1000) -> Iterator[AuditEntry]:
        """Every entry in stored order (by seq), a page per transaction."""
        last = None
        while True:
            with self.tables.tx() as tx:
                rows = self._page(tx, last, page)
            yield from (_entry(r) for r in rows)
            if len(rows) < page:
                return
            last = int(rows[-1][0])

    @staticmethod
    def _page(tx: Tx, last: int | None, page: int) -> list[Any]:
        if last is None:
            return tx.execute(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq LIMIT ?", (page,)).fetchall()
        return tx.execute(f"SELECT {_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                          (last, page)).fetchall()

    def verify(self, *, head: tuple[int, str] | None = None) -> Verification:
        """Check the whole chain, oldest first; stop at the first entry that does not hold. `head`: a
        (seq, hash) kept from an earlier check, which the chain must still contain (a log cut short
        after it fails)."""
        expected_seq, prev, checked = 1, GENESIS, 0
        seen_head = head is None or head[0] == 0
        for entry in self._pages():
            if entry.seq != expected_seq:
                what = (f"entry {expected_seq} is missing (the next stored is {entry.seq})" if entry.seq > expected_seq
                        else f"entry {entry.seq} is out of order after entry {expected_seq - 1}")
                return Verification(False, checked, expected_seq - 1, prev, expected_seq, what)
            if entry.digest() != entry.hash:
                return Verification(False, checked, expected_seq - 1, prev, entry.seq,
                                    f"entry {entry.seq} was changed: its fields no longer give its hash")
            if entry.prev != prev:
                return Verification(False, checked, expected_seq - 1, prev, entry.seq,
                                    f"entry {entry.seq} does not follow entry {entry.seq - 1}: its prev is not "
                                    "that entry's hash (entries removed, replaced or moved)")
            if head is not None and entry.seq == head[0]:
                if entry.hash != head[1]:
                    return Verification(False, checked, expected_seq - 1, prev, entry.seq,
                                        f"entry {entry.seq} is not the one recorded as the head earlier")
                seen_head = True
            checked += 1
            prev = entry.hash
            expected_seq += 1
        if head is not None and not seen_head:
            return Verification(False, checked, expected_seq - 1, prev, expected_seq,
                                f"the log ends at entry {expected_seq - 1}, before the recorded head {head[0]}: "
                                "entries were removed from its end")
        return Verification(True, checked, expected_seq - 1, prev)

    def close(self) -> None:
        self.tables.close()

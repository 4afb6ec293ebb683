"""The review tables, in the state store's own database: items, their evidence, claims, decisions and
what happened to each item (its log). SQLite (its own connection to the store's file, WAL) or
PostgreSQL (the store's connection pool); the SQL is written once with `?` and given to psycopg with
`%s`. Every state change is one conditional UPDATE, so that two reviewers racing for one item (two
threads, two processes, two machines) can never both win: the row count says who did.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from vigil.stores import tables

# Migrations per dialect, applied in order; `review_schema_version` holds how many ran.
_COMMON = """
CREATE TABLE review_items (
    id TEXT PRIMARY KEY, queue TEXT NOT NULL, subject_type TEXT NOT NULL, subject_key TEXT NOT NULL,
    state TEXT NOT NULL, priority DOUBLE PRECISION NOT NULL, created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL, hits INTEGER NOT NULL, breached INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT, lease_until DOUBLE PRECISION, decided_at DOUBLE PRECISION, decision_id TEXT,
    open_key TEXT UNIQUE
);
CREATE INDEX review_items_queue ON review_items (queue, state, priority, created_at);
CREATE INDEX review_items_subject ON review_items (subject_type, subject_key);
CREATE TABLE review_evidence (
    item_id TEXT NOT NULL, key TEXT NOT NULL, added_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (item_id, key)
);
CREATE TABLE review_decisions (
    id TEXT PRIMARY KEY, item_id TEXT NOT NULL, queue TEXT NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL,
    reason TEXT NOT NULL, policy TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL,
    subject_type TEXT NOT NULL, subject_key TEXT NOT NULL, effects TEXT NOT NULL
);
CREATE INDEX review_decisions_item ON review_decisions (item_id);
CREATE TABLE review_skips (item_id TEXT NOT NULL, actor TEXT NOT NULL, PRIMARY KEY (item_id, actor));
CREATE TABLE review_breaches (item_id TEXT NOT NULL, queue TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE INDEX review_breaches_queue ON review_breaches (queue, at);
"""
MIGRATIONS = {
    "sqlite": [_COMMON + """
CREATE TABLE review_log (
    id INTEGER PRIMARY KEY, item_id TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX review_log_item ON review_log (item_id);
"""],
    "postgres": [_COMMON + """
CREATE TABLE review_log (
    id BIGSERIAL PRIMARY KEY, item_id TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX review_log_item ON review_log (item_id);
"""],
}
_PG_LOCK = 0x72657669  # advisory lock for the review migrations ("revi")


class ReviewStoreError(RuntimeError):
    """The state store cannot keep review items (an in-memory store): the message says what to use."""


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    queue: str
    subject_type: str
    subject_key: str
    state: str  # open | decided
    priority: float
    created_at: float
    updated_at: float
    hits: int
    breached: bool
    claimed_by: str | None
    lease_until: float | None
    decided_at: float | None
    decision_id: str | None

    def holder(self, now: float) -> str | None:
        """Who holds the item at `now`: a lease that ran out holds nothing."""
        if self.claimed_by is None or self.lease_until is None or self.lease_until <= now:
            return None
        return self.claimed_by


_ITEM_COLUMNS = ("id, queue, subject_type, subject_key, state, priority, created_at, updated_at, hits, breached, "
                 "claimed_by, lease_until, decided_at, decision_id")


def _item(row: Sequence[Any]) -> Item:
    return Item(str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), float(row[5]), float(row[6]),
                float(row[7]), int(row[8]), bool(row[9]), row[10], row[11], row[12], row[13])


@dataclass(frozen=True, slots=True)
class DecisionRow:
    id: str
    item_id: str
    queue: str
    action: str
    actor: str
    reason: str
    policy: str
    created_at: float
    state: str  # applying (effects not yet confirmed) | applied
    subject_type: str
    subject_key: str
    effects: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "item_id": self.item_id, "queue": self.queue, "action": self.action,
                "actor": self.actor, "reason": self.reason, "policy": self.policy, "created_at": self.created_at,
                "state": self.state, "subject": {"entity": self.subject_type, "key": self.subject_key},
                "effects": self.effects}


_DECISION_COLUMNS = ("id, item_id, queue, action, actor, reason, policy, created_at, state, subject_type, "
                     "subject_key, effects")


def _decision(row: Sequence[Any]) -> DecisionRow:
    return DecisionRow(str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), str(row[5]), str(row[6]),
                       float(row[7]), str(row[8]), str(row[9]), str(row[10]), orjson.loads(row[11]))


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def open_key(queue: str, subject_type: str, subject_key: str) -> str:
    return f"{queue}\x1f{subject_type}\x1f{subject_key}"


class Tx(tables.Tx):
    """A review transaction: the store's `Tx` that also writes the item's log."""

    def log(self, item_id: str, kind: str, actor: str, at: float, **detail: Any) -> None:
        self.execute("INSERT INTO review_log (item_id, kind, actor, at, detail) VALUES (?, ?, ?, ?, ?)",
                     (item_id, kind, actor, at, orjson.dumps(detail).decode()))


class ReviewStore:
    """The review tables over one state store: `ReviewStore.over(store)`."""

    def __init__(self, *, sqlite_path: str | None = None, pool: Any = None) -> None:
        if pool is None and sqlite_path is None:
            raise ReviewStoreError("a review store needs a SQLite file or a PostgreSQL pool")
        # The stores' own feature tables: one connection, migrations and transactions for every feature.
        self._tables = tables.Tables(MIGRATIONS, "review_schema_version", _PG_LOCK, sqlite_path=sqlite_path,
                                     pool=pool)

    @classmethod
    def over(cls, store: Any) -> ReviewStore:
        """The review tables in the database of the state store `store` (SQLite or PostgreSQL)."""
        pool = getattr(store, "pool", None)
        if pool is not None:
            return cls(pool=pool)
        path = getattr(store, "path", None)
        if path is not None and str(path) != ":memory:":
            return cls(sqlite_path=str(path))
        raise ReviewStoreError("review queues keep their items in the state store, and this one is in memory: "
                               "run with a SQLite file or PostgreSQL (--db vigil-data/vigil.sqlite or "
                               "--db postgresql://…)")

    @contextlib.contextmanager
    def tx(self) -> Iterator[Tx]:
        """A write transaction: SQLite's BEGIN IMMEDIATE (one writer at a time), or a PostgreSQL one."""
        with self._tables.tx() as tx:
            yield Tx(tx.conn, tx.postgres)

    def close(self) -> None:
        self._tables.close()

    # ---- items ----
    def add_hit(self, queue: str, subject_type: str, subject_key: str, evidence_key: str, body: dict[str, Any],
                priority: float, now: float) -> tuple[Item, bool]:
        """Open an item for the subject in `queue`, or add the evidence to the open one (raising its
        priority to `priority` if higher). The same evidence key twice (a redelivered message) is taken
        once. Returns the item and whether the evidence was new."""
        okey = open_key(queue, subject_type, subject_key)
        with self.tx() as tx:
            tx.execute("INSERT INTO review_items (id, queue, subject_type, subject_key, state, priority, created_at, "
                       "updated_at, hits, open_key) VALUES (?, ?, ?, ?, 'open', ?, ?, ?, 0, ?) "
                       "ON CONFLICT (open_key) DO NOTHING",
                       (new_id("item"), queue, subject_type, subject_key, priority, now, now, okey))
            item = _item(tx.execute(f"SELECT {_ITEM_COLUMNS} FROM review_items WHERE open_key = ?", (okey,)).fetchone())
            added = tx.execute("INSERT INTO review_evidence (item_id, key, added_at, body) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT (item_id, key) DO NOTHING",
                               (item.id, evidence_key, now, orjson.dumps(body).decode())).rowcount == 1
            if added:
                tx.execute("UPDATE review_items SET hits = hits + 1, updated_at = ?, priority = ? WHERE id = ?",
                           (now, max(item.priority, priority), item.id))
                if item.hits == 0:
                    tx.log(item.id, "opened", "rules", now, queue=queue)
            item = _item(tx.execute(f"SELECT {_ITEM_COLUMNS} FROM review_items WHERE id = ?", (item.id,)).fetchone())
        return item, added

    def get(self, item_id: str) -> Item | None:
        with self.tx() as tx:
            row = tx.execute(f"SELECT {_ITEM_COLUMNS} FROM review_items WHERE id = ?", (item_id,)).fetchone()
        return _item(row) if row is not None else None

    def items(self, queue: str, state: str = "open", limit: int = 100) -> list[Item]:
        """Items of `queue` in `state`, in the order they are handed out: priority, then age."""
        with self.tx() as tx:
            rows = tx.execute(f"SELECT {_ITEM_COLUMNS} FROM review_items WHERE queue = ? AND state = ? "
                              "ORDER BY priority DESC, created_at, id LIMIT ?", (queue, state, limit)).fetchall()
        return [_item(r) for r in rows]

    def evidence(self, item_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        with self.tx() as tx:
            rows = tx.execute("SELECT key, added_at, body FROM review_evidence WHERE item_id = ? "
                              "ORDER BY added_at, key LIMIT ?", (item_id, limit)).fetchall()
        return [{"key": r[0], "added_at": r[1], **orjson.loads(r[2])} for r in rows]

    def log(self, item_id: str) -> list[dict[str, Any]]:
        with self.tx() as tx:
            rows = tx.execute("SELECT kind, actor, at, detail FROM review_log WHERE item_id = ? ORDER BY id",
                              (item_id,)).fetchall()
        return [{"kind": r[0], "actor": r[1], "at": r[2], **orjson.loads(r[3])} for r in rows]

    # ---- claims ----
    def claim(self, item_id: str, actor: str, now: float, lease: float, *, by: str | None = None) -> Item | None:
        """Give `actor` the item for `lease` seconds, if it is open and nobody else holds it (a lapsed
        lease holds nothing; the holder claiming again renews). None if someone else holds it or it is
        closed. `by`: a lead assigning it to `actor`."""
        with self.tx() as tx:
            before = tx.execute("SELECT claimed_by, lease_until FROM review_items WHERE id = ?", (item_id,)).fetchone()
            won = tx.execute("UPDATE review_items SET claimed_by = ?, lease_until = ? WHERE id = ? AND state = 'open' "
                             "AND (claimed_by IS NULL OR lease_until <= ? OR claimed_by = ?)",
                             (actor, now + lease, item_id, now, actor)).rowcount == 1
            if not won:
                return None
            if before is not None and before[0] is not None and before[0] != actor:
                tx.log(item_id, "lease_expired", before[0], now, lease_until=before[1])
            if by is not None:
                tx.log(item_id, "assigned", by, now, to=actor, lease_until=now + lease)
            else:
                tx.log(item_id, "claimed", actor, now, lease_until=now + lease)
            row = tx.execute(f"SELECT {_ITEM_COLUMNS} FROM review_items WHERE id = ?", (item_id,)).fetchone()
        return _item(row)

    def claim_next(self, queue: str, actor: str, now: float, lease: float, batch: int = 20) -> Item | None:
        """The first free item of `queue` (priority, then age) that `actor` has not skipped, claimed."""
        while True:
            with self.tx() as tx:
                rows = tx.execute("SELECT id FROM review_items WHERE queue = ? AND state = 'open' "
                                  "AND (claimed_by IS NULL OR lease_until <= ?) "
                                  "AND id NOT IN (SELECT item_id FROM review_skips WHERE actor = ?) "
                                  "ORDER BY priority DESC, created_at, id LIMIT ?",
                                  (queue, now, actor, batch)).fetchall()
            if not rows:
                return None
            for (item_id,) in rows:
                item = self.claim(item_id, actor, now, lease)
                if item is not None:
                    return item
            # Every candidate was taken by someone else meanwhile: look again.

    def release(self, item_id: str, actor: str, now: float, *, skip: bool = False) -> bool:
        """Hand a held item back to the queue (`skip`: and never hand it to `actor` again)."""
        with self.tx() as tx:
            done = tx.execute("UPDATE review_items SET claimed_by = NULL, lease_until = NULL WHERE id = ? "
                              "AND state = 'open' AND claimed_by = ? AND lease_until > ?",
                              (item_id, actor, now)).rowcount == 1
            if done:
                tx.log(item_id, "skipped" if skip else "released", actor, now)
                if skip:
                    tx.execute("INSERT INTO review_skips (item_id, actor) VALUES (?, ?) ON CONFLICT DO NOTHING",
                               (item_id, actor))
        return done

    # ---- decisions ----
    def decide(self, item_id: str, actor: str, now: float, *, action: str, reason: str, policy: str,
               effects: list[dict[str, Any]]) -> DecisionRow | None:
        """Close the item with a decision, if `actor` holds it at `now`; None otherwise (nothing changed).
        The decision is stored `applying`: its effects are applied after, and `applied` marks them done, so
        a process that stops between the two applies them again at its next start."""
        decision_id = new_id("dec")
        with self.tx() as tx:
            row = tx.execute(f"SELECT {_ITEM_COLUMNS} FROM review_items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                return None
            item = _item(row)
            won = tx.execute("UPDATE review_items SET state = 'decided', decided_at = ?, decision_id = ?, "
                             "open_key = NULL, claimed_by = NULL, lease_until = NULL, updated_at = ? "
                             "WHERE id = ? AND state = 'open' AND claimed_by = ? AND lease_until > ?",
                             (now, decision_id, now, item_id, actor, now)).rowcount == 1
            if not won:
                return None
            decision = DecisionRow(decision_id, item_id, item.queue, action, actor, reason, policy, now, "applying",
                                   item.subject_type, item.subject_key, effects)
            tx.execute(f"INSERT INTO review_decisions ({_DECISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (decision.id, item_id, item.queue, action, actor, reason, policy, now, "applying",
                        item.subject_type, item.subject_key, orjson.dumps(effects).decode()))
            tx.log(item_id, "decided", actor, now, decision=decision_id, action=action)
        return decision

    def applied(self, decision_id: str, effects: list[dict[str, Any]]) -> None:
        with self.tx() as tx:
            tx.execute("UPDATE review_decisions SET state = 'applied', effects = ? WHERE id = ?",
                       (orjson.dumps(effects).decode(), decision_id))

    def decision(self, decision_id: str) -> DecisionRow | None:
        with self.tx() as tx:
            row = tx.execute(f"SELECT {_DECISION_COLUMNS} FROM review_decisions WHERE id = ?",
                             (decision_id,)).fetchone()
        return _decision(row) if row is not None else None

    def decisions_applying(self) -> list[DecisionRow]:
        with self.tx() as tx:
            rows = tx.execute(f"SELECT {_DECISION_COLUMNS} FROM review_decisions WHERE state = 'applying' "
                              "ORDER BY created_at").fetchall()
        return [_decision(r) for r in rows]

    # ---- deadlines and metrics ----
    def breach(self, queue: str, created_before: float, now: float, *, raise_by: float,
               move_to: str | None) -> list[Item]:
        """Mark the open items of `queue` created before `created_before` (past the queue's target) as
        breached, once each: priority raised by `raise_by`, and moved to `move_to` when given (merged into
        an item already open there for the subject). Returns them as they were before."""
        with self.tx() as tx:
            rows = tx.execute(f"SELECT {_ITEM_COLUMNS} FROM review_items WHERE queue = ? AND state = 'open' "
                              "AND breached = 0 AND created_at <= ?", (queue, created_before)).fetchall()
            late = [_item(r) for r in rows]
            for item in late:
                tx.execute("INSERT INTO review_breaches (item_id, queue, at) VALUES (?, ?, ?)", (item.id, item.queue, now))
                target = move_to or item.queue
                okey = open_key(target, item.subject_type, item.subject_key)
                if target != item.queue and tx.execute("SELECT 1 FROM review_items WHERE open_key = ?",
                                                        (okey,)).fetchone() is not None:
                    into = tx.execute("SELECT id FROM review_items WHERE open_key = ?", (okey,)).fetchone()[0]
                    tx.execute("UPDATE review_evidence SET item_id = ? WHERE item_id = ? AND key NOT IN "
                               "(SELECT key FROM review_evidence WHERE item_id = ?)", (into, item.id, into))
                    tx.execute("UPDATE review_items SET priority = CASE WHEN priority > ? THEN priority ELSE ? END, "
                               "breached = 1, updated_at = ? WHERE id = ?",
                               (item.priority + raise_by, item.priority + raise_by, now, into))
                    tx.execute("UPDATE review_items SET state = 'merged', open_key = NULL, breached = 1, "
                               "claimed_by = NULL, lease_until = NULL, updated_at = ? WHERE id = ?", (now, item.id))
                    tx.log(item.id, "breached", "deadline", now, moved_to=target, merged_into=into)
                    continue
                tx.execute("UPDATE review_items SET breached = 1, priority = priority + ?, queue = ?, open_key = ?, "
                           "updated_at = ? WHERE id = ?", (raise_by, target, okey, now, item.id))
                tx.log(item.id, "breached", "deadline", now, queue=item.queue,
                       **({"moved_to": target} if target != item.queue else {}))
        return late

    def queue_numbers(self, queue: str, now: float, since: float) -> dict[str, Any]:
        """Pending, the oldest pending item's age, handled since `since`, their median handling time (from
        opening to decision, seconds), breaches (items of this queue that passed its deadline, ever)."""
        with self.tx() as tx:
            pending, oldest = tx.execute("SELECT COUNT(*), MIN(created_at) FROM review_items WHERE queue = ? "
                                         "AND state = 'open'", (queue,)).fetchone()
            times = [float(r[0]) for r in tx.execute(
                "SELECT decided_at - created_at FROM review_items WHERE queue = ? AND state = 'decided' "
                "AND decided_at >= ? ORDER BY 1", (queue, since)).fetchall()]
            breaches = tx.execute("SELECT COUNT(*) FROM review_breaches WHERE queue = ?", (queue,)).fetchone()[0]
        median = None
        if times:
            mid = len(times) // 2
            median = times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2
        return {"pending": int(pending), "oldest_age": max(0.0, now - float(oldest)) if oldest is not None else 0.0,
                "handled": len(times), "median_handling_time": median, "breaches": int(breaches)}

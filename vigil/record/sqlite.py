"""The embedded record: its own SQLite file (WAL), by default `record.sqlite` beside the state store.

A file of its own rather than tables in vigil.sqlite: the log is written in large batches by its own
writer thread, and SQLite has one writer per file, so in the state store a batch would hold up the label
commit an event's decision waits for; the log also grows far beyond the state (the store's page check on
open stops at 16 MiB) and is pruned, copied or deleted on its own.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from vigil.record.base import (
    Neighbour,
    Query,
    RecordEntry,
    StoredEvent,
    decode_json,
    make_cursor,
    parse_cursor,
)
from vigil.stores.sqlite import _unusable

MIGRATIONS: list[str] = [
    """
    CREATE TABLE record_events (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, event_id TEXT NOT NULL, time REAL NOT NULL,
        type TEXT NOT NULL, verdict TEXT NOT NULL, ruleset TEXT NOT NULL, recorded_at REAL NOT NULL,
        event BLOB, decision BLOB NOT NULL, decision2 BLOB
    );
    CREATE INDEX record_events_key ON record_events (source, event_id);
    CREATE INDEX record_events_time ON record_events (time);
    CREATE INDEX record_events_type ON record_events (type, time);
    CREATE INDEX record_events_verdict ON record_events (verdict, time);
    CREATE TABLE record_rules (
        event INTEGER NOT NULL, rule TEXT NOT NULL, mode TEXT NOT NULL, time REAL NOT NULL,
        PRIMARY KEY (event, rule)
    ) WITHOUT ROWID;
    CREATE INDEX record_rules_rule ON record_rules (rule, time);
    CREATE TABLE record_entities (
        event INTEGER NOT NULL, entity TEXT NOT NULL, key TEXT NOT NULL, time REAL NOT NULL,
        PRIMARY KEY (event, entity, key)
    ) WITHOUT ROWID;
    CREATE INDEX record_entities_key ON record_entities (entity, key, time);
    """,
]

COLUMNS = "e.id, e.source, e.event_id, e.time, e.type, e.verdict, e.ruleset, e.recorded_at, e.event, e.decision, e.decision2"
# A replay's columns (Query.replay_only): the rules that fired as one string, read through their primary key.
RULES_SEPARATOR = "\x1f"
REPLAY_COLUMNS = ("e.id, e.source, e.event_id, e.time, e.type, e.verdict, e.ruleset, e.recorded_at, e.event, "
                  "(SELECT group_concat(r.rule, char(31)) FROM record_rules r WHERE r.event = e.id)")
# How many of an entity's newest events `neighbours` looks at: bounded, however busy the entity.
NEIGHBOUR_EVENTS = 10_000


def migrate(conn: sqlite3.Connection) -> None:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    for index in range(version, len(MIGRATIONS)):
        conn.executescript("BEGIN;" + MIGRATIONS[index] + f"PRAGMA user_version = {index + 1}; COMMIT;")


class SqliteRecord:
    """The record in one SQLite file. Writes from one thread at a time (the writer's); reads on a
    connection of their own, which WAL lets see the last commit while a batch is being written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        memory = str(path) == ":memory:"
        try:
            if not memory:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            migrate(self._conn)
            self._reader = self._conn
            if not memory:
                self._reader = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
                self._reader.execute("PRAGMA busy_timeout=5000")
        except (OSError, sqlite3.Error) as error:
            raise _unusable(str(path), error) from error
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock() if not memory else self._write_lock

    # ---- writing ----
    def write(self, entries: Sequence[RecordEntry]) -> None:
        """One transaction; the rows of stage-1 entries are numbered here (this connection is the file's
        one writer), so that events, rules and entity keys go in with one executemany each."""
        with self._write_lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                last = conn.execute("SELECT max(id) FROM record_events").fetchone()[0] or 0
                events: list[tuple[Any, ...]] = []
                rules: list[tuple[Any, ...]] = []
                entities: list[tuple[Any, ...]] = []
                for entry in entries:
                    if entry.stage == 1:
                        last += 1
                        row = last
                        events.append((row, entry.source, entry.event_id, entry.time, entry.type, entry.verdict,
                                       entry.ruleset, entry.recorded_at, entry.event, entry.decision))
                        entities += [(row, t, k, entry.time) for t, k in entry.entities]
                    else:
                        if events:  # its first stage may be in this batch: write those first
                            self._insert(events, rules, entities)
                            events, rules, entities = [], [], []
                        found = conn.execute("SELECT max(id) FROM record_events WHERE source = ? AND event_id = ?",
                                             (entry.source, entry.event_id)).fetchone()
                        row = found[0] if found else None
                        if row is None:
                            continue  # its first stage was pruned already
                        conn.execute("UPDATE record_events SET verdict = ?, decision2 = ? WHERE id = ?",
                                     (entry.verdict, entry.decision, row))
                    rules += [(row, rule, mode, entry.time) for rule, mode in entry.rules]
                self._insert(events, rules, entities)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _insert(self, events: list[tuple[Any, ...]], rules: list[tuple[Any, ...]],
                entities: list[tuple[Any, ...]]) -> None:
        conn = self._conn
        if events:
            conn.executemany("INSERT INTO record_events (id, source, event_id, time, type, verdict, ruleset,"
                             " recorded_at, event, decision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", events)
        if rules:
            conn.executemany("INSERT OR IGNORE INTO record_rules VALUES (?, ?, ?, ?)", rules)
        if entities:
            conn.executemany("INSERT OR IGNORE INTO record_entities VALUES (?, ?, ?, ?)", entities)

    def prune(self, *, recorded_before: float | None, max_events: int | None) -> int:
        """Rows are numbered in the order written, so both limits cut a prefix: the rows before the
        first recorded at or after `recorded_before`, and those before the newest `max_events`."""
        cut = 0
        if recorded_before is not None:
            first = self._query("SELECT id FROM record_events WHERE recorded_at >= ? ORDER BY id LIMIT 1",
                                (recorded_before,))
            last = self._query("SELECT max(id) FROM record_events")[0][0]
            cut = int(first[0][0]) if first else int(last or 0) + 1
        if max_events is not None:
            newest = self._query("SELECT id FROM record_events ORDER BY id DESC LIMIT 1 OFFSET ?", (max_events,))
            if newest:
                cut = max(cut, int(newest[0][0]) + 1)
        if cut <= 0:
            return 0
        with self._write_lock:
            self._conn.execute("BEGIN")
            try:
                deleted = self._conn.execute("DELETE FROM record_events WHERE id < ?", (cut,)).rowcount
                self._conn.execute("DELETE FROM record_rules WHERE event < ?", (cut,))
                self._conn.execute("DELETE FROM record_entities WHERE event < ?", (cut,))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return int(deleted)

    # ---- reading ----
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock:
            return self._reader.execute(sql, tuple(params)).fetchall()

    def _stored(self, rows: list[tuple[Any, ...]]) -> list[StoredEvent]:
        if not rows:
            return []
        ids = [row[0] for row in rows]
        marks = ",".join("?" * len(ids))
        rules: dict[int, list[str]] = {}
        for event, rule in self._query(f"SELECT event, rule FROM record_rules WHERE event IN ({marks})", ids):
            rules.setdefault(event, []).append(rule)
        entities: dict[int, list[tuple[str, str]]] = {}
        for event, entity, key in self._query(
                f"SELECT event, entity, key FROM record_entities WHERE event IN ({marks})", ids):
            entities.setdefault(event, []).append((entity, key))
        out = []
        for row_id, source, event_id, time, etype, verdict, ruleset, recorded_at, event, d1, d2 in rows:
            decisions = (decode_json(d1),) + ((decode_json(d2),) if d2 is not None else ())
            out.append(StoredEvent(make_cursor(time, row_id), source, event_id, time, etype, verdict, ruleset,
                                   recorded_at, decode_json(event), decisions, tuple(rules.get(row_id, ())),
                                   tuple(entities.get(row_id, ()))))
        return out

    def get(self, source: str, event_id: str) -> StoredEvent | None:
        rows = self._query(f"SELECT {COLUMNS} FROM record_events e WHERE source = ? AND event_id = ?"
                           " ORDER BY id DESC LIMIT 1", (source, event_id))
        found = self._stored(rows)
        return found[0] if found else None

    def find(self, event_id: str, sources: Sequence[str] | None = None) -> list[StoredEvent]:
        rows = self._query(f"SELECT {COLUMNS} FROM record_events e WHERE event_id = ? ORDER BY id DESC LIMIT 100",
                           (event_id,))
        found = self._stored(rows)
        return [s for s in found if sources is None or s.source in sources]

    def scan(self, query: Query) -> Iterator[StoredEvent]:
        where, params = where_clause(query, "?")
        order = "DESC" if query.newest_first else "ASC"
        columns = REPLAY_COLUMNS if query.replay_only else COLUMNS
        sql = f"SELECT {columns} FROM record_events e WHERE {where} ORDER BY e.time {order}, e.id {order} LIMIT ?"
        rows = self._query(sql, [*params, query.limit])
        yield from replay_rows(rows) if query.replay_only else self._stored(rows)

    def at(self, cursors: Sequence[str]) -> list[StoredEvent]:
        ids = [parse_cursor(c)[1] for c in cursors]
        if not ids:
            return []
        return self._stored(self._query(f"SELECT {COLUMNS} FROM record_events e WHERE e.id IN "
                                        f"({','.join('?' * len(ids))})", ids))

    def neighbours(self, entity_type: str, key: str, *, limit: int = 50,
                   sources: Sequence[str] | None = None) -> list[Neighbour]:
        source_filter, params = "", [entity_type, key]
        if sources is not None:
            source_filter = (" AND x.event IN (SELECT id FROM record_events WHERE source IN "
                             f"({','.join('?' * len(sources))}))") if sources else " AND 0"
            params += list(sources)
        rows = self._query(
            "SELECT y.entity, y.key, count(*), max(y.time) FROM record_entities y WHERE y.event IN ("
            " SELECT x.event FROM record_entities x WHERE x.entity = ? AND x.key = ?" + source_filter +
            " ORDER BY x.time DESC LIMIT ?) AND NOT (y.entity = ? AND y.key = ?)"
            " GROUP BY y.entity, y.key ORDER BY count(*) DESC, max(y.time) DESC LIMIT ?",
            [*params, NEIGHBOUR_EVENTS, entity_type, key, limit])
        return [Neighbour(t, k, int(n), float(last)) for t, k, n, last in rows]

    def rule_hits(self, rule: str, *, since: float, until: float, bucket: float) -> list[tuple[float, str, int]]:
        if bucket <= 0:
            raise ValueError("a bucket is a positive number of seconds")
        # Event times are positive, so the cast (which truncates) is the floor.
        rows = self._query("SELECT CAST(time / ? AS INTEGER) AS b, mode, count(*) FROM record_rules "
                           "WHERE rule = ? AND time >= ? AND time < ? GROUP BY b, mode ORDER BY b, mode",
                           (bucket, rule, since, until))
        return [(float(b) * bucket, str(mode), int(n)) for b, mode, n in rows]

    def count(self) -> int:
        return int(self._query("SELECT count(*) FROM record_events")[0][0])

    def close(self) -> None:
        if self._reader is not self._conn:
            self._reader.close()
        self._conn.close()


def replay_rows(rows: list[tuple[Any, ...]]) -> list[StoredEvent]:
    """Rows of REPLAY_COLUMNS (the rules as one string, or a list) as stored events without decisions."""
    loads = orjson.loads
    out = []
    for row_id, source, event_id, time, etype, verdict, ruleset, recorded_at, event, rules in rows:
        fired = tuple(rules.split(RULES_SEPARATOR) if isinstance(rules, str) else rules) if rules else ()
        out.append(StoredEvent(make_cursor(time, row_id), source, event_id, time, etype, verdict, ruleset,
                               recorded_at, None if event is None else loads(event), (), fired))
    return out


def where_clause(query: Query, mark: str) -> tuple[str, list[Any]]:
    """The WHERE of a scan over `record_events e`, with `mark` the driver's placeholder: every filter an
    indexed one (time; type or verdict with time; the rule and entity indexes through their event ids)."""
    parts: list[str] = ["1=1"]
    params: list[Any] = []
    if query.since is not None:
        parts.append(f"e.time >= {mark}")
        params.append(query.since)
    if query.until is not None:
        parts.append(f"e.time < {mark}")
        params.append(query.until)
    for column, values in (("type", query.types), ("verdict", query.verdicts)):
        if values:
            parts.append(f"e.{column} IN ({','.join([mark] * len(values))})")
            params.extend(values)
    if query.sources is not None:
        if not query.sources:
            parts.append("1=0")
        else:
            parts.append(f"e.source IN ({','.join([mark] * len(query.sources))})")
            params.extend(query.sources)
    # The rule and entity subqueries carry the time range and the cursor's time, which their indexes
    # (rule, time) and (entity, key, time) answer: each page's subquery holds only the rows still to read,
    # not every hit of the rule (a `top` over 20,000 hits read them all once per page).
    after = parse_cursor(query.after) if query.after is not None else None
    times, time_params = "", []
    for bound, op in ((query.since, ">="), (query.until, "<")):
        if bound is not None:
            times += f" AND time {op} {mark}"
            time_params.append(bound)
    if after is not None:
        times += f" AND time {'<=' if query.newest_first else '>='} {mark}"
        time_params.append(after[0])
    if query.rules:
        parts.append(f"e.id IN (SELECT event FROM record_rules WHERE rule IN ({','.join([mark] * len(query.rules))})"
                     f"{times})")
        params.extend(query.rules)
        params.extend(time_params)
    for entity, key in query.entities:
        parts.append(f"e.id IN (SELECT event FROM record_entities WHERE entity = {mark} AND key = {mark}{times})")
        params.extend((entity, key))
        params.extend(time_params)
    if after is not None:
        time, row = after
        op = "<" if query.newest_first else ">"
        parts.append(f"(e.time {op} {mark} OR (e.time = {mark} AND e.id {op} {mark}))")
        params.extend((time, time, row))
    return " AND ".join(parts), params

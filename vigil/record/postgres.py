"""The record in PostgreSQL, for scale: several instances write one database.

Tables are partitioned by the UTC day an event was recorded (`day`), one partition per day made on
first use, so retention by age drops whole partitions instead of deleting rows; live traffic is recorded
the day it happens, so a search by event time reads few partitions' time indexes. Row ids come from one
sequence shared by every writer; rows name their event by (source, event_id) as in SQLite.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from vigil.record.base import (
    Neighbour,
    Query,
    RecordEntry,
    StoredEvent,
    decode_json,
    make_cursor,
    parse_cursor,
)
from vigil.record.sqlite import NEIGHBOUR_EVENTS, replay_rows, where_clause
from vigil.stores.postgres import run_migrations

MIGRATIONS: list[str] = [
    """
    CREATE SEQUENCE record_ids;
    CREATE TABLE record_events (
        id BIGINT NOT NULL, source TEXT NOT NULL, event_id TEXT NOT NULL, time DOUBLE PRECISION NOT NULL,
        type TEXT NOT NULL, verdict TEXT NOT NULL, ruleset TEXT NOT NULL, recorded_at DOUBLE PRECISION NOT NULL,
        day INTEGER NOT NULL, event BYTEA, decision BYTEA NOT NULL, decision2 BYTEA
    ) PARTITION BY RANGE (day);
    CREATE INDEX record_events_id ON record_events (id);
    CREATE INDEX record_events_key ON record_events (source, event_id);
    CREATE INDEX record_events_time ON record_events (time);
    CREATE INDEX record_events_type ON record_events (type, time);
    CREATE INDEX record_events_verdict ON record_events (verdict, time);
    CREATE TABLE record_rules (
        event BIGINT NOT NULL, rule TEXT NOT NULL, mode TEXT NOT NULL, time DOUBLE PRECISION NOT NULL,
        day INTEGER NOT NULL
    ) PARTITION BY RANGE (day);
    CREATE INDEX record_rules_rule ON record_rules (rule, time);
    CREATE INDEX record_rules_event ON record_rules (event);
    CREATE TABLE record_entities (
        event BIGINT NOT NULL, entity TEXT NOT NULL, key TEXT NOT NULL, time DOUBLE PRECISION NOT NULL,
        day INTEGER NOT NULL
    ) PARTITION BY RANGE (day);
    CREATE INDEX record_entities_key ON record_entities (entity, key, time);
    CREATE INDEX record_entities_event ON record_entities (event);
    """,
]
TABLES = ("record_events", "record_rules", "record_entities")
COLUMNS = ("e.id, e.source, e.event_id, e.time, e.type, e.verdict, e.ruleset, e.recorded_at, e.event, e.decision,"
           " e.decision2")
REPLAY_COLUMNS = ("e.id, e.source, e.event_id, e.time, e.type, e.verdict, e.ruleset, e.recorded_at, e.event,"
                  " ARRAY(SELECT r.rule FROM record_rules r WHERE r.event = e.id)")
LOCK_ID = 0x5649474C5245  # "VIGLRE": partitions are made by one writer at a time


def day_of(recorded_at: float) -> int:
    return math.floor(recorded_at / 86400)


class PostgresRecord:
    def __init__(self, url: str, *, max_size: int = 4) -> None:
        from psycopg_pool import ConnectionPool

        self.pool = ConnectionPool(url, min_size=1, max_size=max_size, open=True, kwargs={"autocommit": True})
        with self.pool.connection() as conn:
            run_migrations(conn, MIGRATIONS, "record_schema_version", LOCK_ID + 1)
        self._days: set[int] = set()

    def _partition(self, cur: Any, day: int) -> None:
        if day in self._days:
            return
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        for table in TABLES:
            cur.execute(f"CREATE TABLE IF NOT EXISTS {table}_d{day} PARTITION OF {table}"
                        f" FOR VALUES FROM ({day}) TO ({day + 1})")
        self._days.add(day)

    def write(self, entries: Sequence[RecordEntry]) -> None:
        if not entries:
            return
        firsts = [e for e in entries if e.stage == 1]
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            for day in {day_of(e.recorded_at) for e in entries}:
                self._partition(cur, day)
            ids: list[int] = []
            if firsts:
                cur.execute("SELECT nextval('record_ids') FROM generate_series(1, %s)", (len(firsts),))
                ids = [int(r[0]) for r in cur.fetchall()]
            events, rules, entities = [], [], []
            row_of = iter(ids)
            for entry in entries:
                day = day_of(entry.recorded_at)
                if entry.stage == 1:
                    row = next(row_of)
                    events.append((row, entry.source, entry.event_id, entry.time, entry.type, entry.verdict,
                                   entry.ruleset, entry.recorded_at, day, entry.event, entry.decision))
                    entities += [(row, t, k, entry.time, day) for t, k in entry.entities]
                else:
                    if events:  # its first stage may be in this batch: write those first
                        self._copy_events(cur, events)
                        events = []
                    cur.execute("SELECT max(id) FROM record_events WHERE source = %s AND event_id = %s",
                                (entry.source, entry.event_id))
                    found = cur.fetchone()
                    if found is None or found[0] is None:
                        continue
                    row = int(found[0])
                    cur.execute("UPDATE record_events SET verdict = %s, decision2 = %s WHERE id = %s",
                                (entry.verdict, entry.decision, row))
                rules += [(row, rule, mode, entry.time, day) for rule, mode in entry.rules]
            self._copy_events(cur, events)
            if rules:
                with cur.copy("COPY record_rules (event, rule, mode, time, day) FROM STDIN") as copy:
                    for item in rules:
                        copy.write_row(item)
            if entities:
                with cur.copy("COPY record_entities (event, entity, key, time, day) FROM STDIN") as copy:
                    for item in entities:
                        copy.write_row(item)

    @staticmethod
    def _copy_events(cur: Any, events: list[tuple[Any, ...]]) -> None:
        if not events:
            return
        with cur.copy("COPY record_events (id, source, event_id, time, type, verdict, ruleset, recorded_at, day,"
                      " event, decision) FROM STDIN") as copy:
            for item in events:
                copy.write_row(item)

    def prune(self, *, recorded_before: float | None, max_events: int | None) -> int:
        """Whole days before `recorded_before` are dropped, the rest of that day deleted row by row; then
        the oldest rows beyond `max_events`."""
        pruned = 0
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            if recorded_before is not None:
                cutoff_day = day_of(recorded_before)
                cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'record_events'")
                for (name,) in cur.fetchall():
                    day = int(str(name).rsplit("_d", 1)[1])
                    if day < cutoff_day:
                        cur.execute(f"SELECT count(*) FROM {name}")
                        counted = cur.fetchone()
                        pruned += int(counted[0]) if counted is not None else 0
                        for table in TABLES:
                            cur.execute(f"DROP TABLE IF EXISTS {table}_d{day}")
                        self._days.discard(day)
                cur.execute("DELETE FROM record_events WHERE recorded_at < %s RETURNING id", (recorded_before,))
                gone = [int(r[0]) for r in cur.fetchall()]
                pruned += len(gone)
                if gone:
                    cur.execute("DELETE FROM record_rules WHERE event = ANY(%s)", (gone,))
                    cur.execute("DELETE FROM record_entities WHERE event = ANY(%s)", (gone,))
            if max_events is not None:
                cur.execute("SELECT id FROM record_events ORDER BY id DESC OFFSET %s LIMIT 1", (max_events,))
                found = cur.fetchone()
                if found is not None:
                    cut = int(found[0]) + 1
                    cur.execute("DELETE FROM record_events WHERE id < %s", (cut,))
                    pruned += cur.rowcount
                    cur.execute("DELETE FROM record_rules WHERE event < %s", (cut,))
                    cur.execute("DELETE FROM record_entities WHERE event < %s", (cut,))
        return pruned

    # ---- reading ----
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.pool.connection() as conn:
            return conn.execute(sql, tuple(params)).fetchall()

    def _stored(self, rows: list[tuple[Any, ...]]) -> list[StoredEvent]:
        if not rows:
            return []
        ids = [int(row[0]) for row in rows]
        rules: dict[int, list[str]] = {}
        for event, rule in self._query("SELECT event, rule FROM record_rules WHERE event = ANY(%s)", (ids,)):
            rules.setdefault(int(event), []).append(rule)
        entities: dict[int, list[tuple[str, str]]] = {}
        for event, entity, key in self._query(
                "SELECT event, entity, key FROM record_entities WHERE event = ANY(%s)", (ids,)):
            entities.setdefault(int(event), []).append((entity, key))
        out = []
        for row_id, source, event_id, time, etype, verdict, ruleset, recorded_at, event, d1, d2 in rows:
            decisions = (decode_json(d1),) + ((decode_json(d2),) if d2 is not None else ())
            out.append(StoredEvent(make_cursor(time, row_id), source, event_id, time, etype, verdict, ruleset,
                                   recorded_at, decode_json(event), decisions, tuple(rules.get(row_id, ())),
                                   tuple(entities.get(row_id, ()))))
        return out

    def get(self, source: str, event_id: str) -> StoredEvent | None:
        found = self._stored(self._query(f"SELECT {COLUMNS} FROM record_events e WHERE source = %s AND event_id = %s"
                                         " ORDER BY id DESC LIMIT 1", (source, event_id)))
        return found[0] if found else None

    def find(self, event_id: str, sources: Sequence[str] | None = None) -> list[StoredEvent]:
        found = self._stored(self._query(f"SELECT {COLUMNS} FROM record_events e WHERE event_id = %s"
                                         " ORDER BY id DESC LIMIT 100", (event_id,)))
        return [s for s in found if sources is None or s.source in sources]

    def scan(self, query: Query) -> Iterator[StoredEvent]:
        where, params = where_clause(query, "%s")
        order = "DESC" if query.newest_first else "ASC"
        columns = REPLAY_COLUMNS if query.replay_only else COLUMNS
        rows = self._query(f"SELECT {columns} FROM record_events e WHERE {where} ORDER BY e.time {order}, "
                           f"e.id {order} LIMIT %s", [*params, query.limit])
        yield from replay_rows(rows) if query.replay_only else self._stored(rows)

    def at(self, cursors: Sequence[str]) -> list[StoredEvent]:
        ids = [parse_cursor(c)[1] for c in cursors]
        if not ids:
            return []
        return self._stored(self._query(f"SELECT {COLUMNS} FROM record_events e WHERE e.id = ANY(%s)", (ids,)))

    def neighbours(self, entity_type: str, key: str, *, limit: int = 50,
                   sources: Sequence[str] | None = None) -> list[Neighbour]:
        source_filter, params = "", [entity_type, key]
        if sources is not None:
            source_filter = " AND x.event IN (SELECT id FROM record_events WHERE source = ANY(%s))"
            params.append(list(sources))  # type: ignore[arg-type]
        rows = self._query(
            "SELECT y.entity, y.key, count(*), max(y.time) FROM record_entities y WHERE y.event IN ("
            " SELECT x.event FROM record_entities x WHERE x.entity = %s AND x.key = %s" + source_filter +
            " ORDER BY x.time DESC LIMIT %s) AND NOT (y.entity = %s AND y.key = %s)"
            " GROUP BY y.entity, y.key ORDER BY count(*) DESC, max(y.time) DESC LIMIT %s",
            [*params, NEIGHBOUR_EVENTS, entity_type, key, limit])
        return [Neighbour(t, k, int(n), float(last)) for t, k, n, last in rows]

    def rule_hits(self, rule: str, *, since: float, until: float, bucket: float) -> list[tuple[float, str, int]]:
        if bucket <= 0:
            raise ValueError("a bucket is a positive number of seconds")
        rows = self._query("SELECT floor(time / %s)::bigint AS b, mode, count(*) FROM record_rules "
                           "WHERE rule = %s AND time >= %s AND time < %s GROUP BY b, mode ORDER BY b, mode",
                           (bucket, rule, since, until))
        return [(float(b) * bucket, str(mode), int(n)) for b, mode, n in rows]

    def count(self) -> int:
        return int(self._query("SELECT count(*) FROM record_events")[0][0])

    def close(self) -> None:
        self.pool.close()

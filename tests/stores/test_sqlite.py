"""The SQLite store: schema, counters, labels, dead letters, and state that survives `kill -9`."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import HEADER, T0, event, ruleset

from vigil.effects import DeadLetter, Decision
from vigil.engine import Engine
from vigil.stores.base import LabelRecord
from vigil.stores.sqlite import MIGRATIONS, SqliteStore, open_store

RULES = HEADER + """
define posts = count of "post" by user in the last 1 day
rule "posted" when event is "post" and posts >= 1 then flag
rule "mark" when event is "post" and posts >= 3 then label user "busy" for 7 days
"""


def test_migrations_set_the_schema_version(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "s.sqlite").close()
    conn = sqlite3.connect(tmp_path / "s.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    SqliteStore(tmp_path / "s.sqlite").close()  # opening again migrates nothing and does not fail


def test_counter_rows(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.write_counter_rows([("a", "k", 10, "", 1.0), ("a", "k", 20, "v", 2.0), ("b", "k", 30, "", 1.0)])
    assert store.latest_counter_sec("a") == 20
    assert store.latest_counter_sec("zz") is None
    assert list(store.load_counter_rows("a", None)) == [("a", "k", 10, "", 1.0), ("a", "k", 20, "v", 2.0)]
    assert list(store.load_counter_rows("a", 10)) == [("a", "k", 20, "v", 2.0)]
    assert store.load_counter_key("a", "k") == [("a", "k", 10, "", 1.0), ("a", "k", 20, "v", 2.0)]
    assert store.load_counter_key("a", "other") == []
    assert store.latest_counter_sec("a", not_after=15) == 10
    store.prune_counter_rows("a", 3600, 10)  # k is active after 10 and its window still sees 10: kept
    assert store.load_counter_key("a", "k") == [("a", "k", 10, "", 1.0), ("a", "k", 20, "v", 2.0)]
    store.prune_counter_rows("a", 5, 10)  # the window ending at 20 no longer sees 10
    assert list(store.load_counter_rows("a", None)) == [("a", "k", 20, "v", 2.0)]
    store.prune_counter_rows("a", 3600, 20)  # idle since 20: every row goes
    assert list(store.load_counter_rows("a", None)) == []
    assert store.load_counter_key("b", "k") == [("b", "k", 30, "", 1.0)]
    store.close()


def test_labels_and_history(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    first = LabelRecord("user", "u", "x", True, "rule", 100.0, 1.0, "r")
    second = LabelRecord("user", "u", "x", False, "manual", None, 2.0, "mod", "appeal")
    store.write_labels([first])
    store.write_labels([second])
    assert list(store.load_labels()) == [second]
    assert store.label_history("user", "u") == [first, second]
    assert store.label_history("user", "other") == []
    store.close()


def test_dead_letters(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    for i in range(3):
        store.add_dead_letter(DeadLetter(f"reason {i}", b"raw\xff", "src", float(i), {"n": i}))
    assert store.count_dead_letters() == 3
    assert [(d.reason, d.raw, d.details) for d in store.dead_letters(2)] == [
        ("reason 1", b"raw\xff", {"n": 1}), ("reason 2", b"raw\xff", {"n": 2})]
    store.close()


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_a_dead_letter_is_marked_by_its_id(tmp_path: Path, kind: str) -> None:
    from vigil.stores.memory import MemoryStore

    store = SqliteStore(tmp_path / "s.sqlite") if kind == "sqlite" else MemoryStore()
    for i in range(3):
        store.add_dead_letter(DeadLetter(f"reason {i}", b"raw", "src", float(i), {"n": i}))
    letters = store.dead_letters()
    assert len({d.id for d in letters}) == 3 and None not in {d.id for d in letters}
    store.mark_dead_letter(letters[1].id or 0, {"n": 1, "replayed": {"by": "ann"}})
    assert [d.details for d in store.dead_letters()] == [{"n": 0}, {"n": 1, "replayed": {"by": "ann"}}, {"n": 2}]
    store.close()


@pytest.mark.parametrize("form", ["sqlite:///{}", "{}"])
def test_open_store_urls(tmp_path: Path, form: str) -> None:
    path = tmp_path / "sub" / "s.sqlite"
    store = open_store(form.format(path))
    assert store.path == path and path.exists()
    store.close()


def test_engine_state_survives_a_clean_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    engine = Engine(ruleset(RULES), SqliteStore(path))
    for i in range(3):
        engine.process(event(time=T0 + i, user="u"))
    engine.close()
    again = Engine(ruleset(RULES), SqliteStore(path))
    try:
        assert again.labels.has("user", "u", "busy", T0 + 10)
        d = again.process(event(time=T0 + 10, user="u"))
        assert isinstance(d, Decision) and d.hits[0].features == {"posts": 4}
    finally:
        again.close()


SCRIPT = """
import sys, time
from vigil.dsl.loader import load_ruleset
from vigil.engine import Engine
from vigil.stores.sqlite import SqliteStore

rules = load_ruleset("r.vigil", files={"r.vigil": sys.stdin.read()})
engine = Engine(rules, SqliteStore(sys.argv[1]))
for i in range(5):
    engine.process({"type": "post", "id": f"e{i}", "time": T0 + i, "user": "u"})
print("fed", flush=True)
while True:
    time.sleep(60)
""".replace("T0", repr(T0))


def _counter_rows(path: Path) -> float:
    conn = sqlite3.connect(path)
    try:
        return float(conn.execute("SELECT COALESCE(SUM(amount), 0) FROM counter_rows").fetchone()[0])
    finally:
        conn.close()


def test_restart_after_kill_keeps_labels_and_counters(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SCRIPT), str(path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(RULES)
        process.stdin.close()
        assert process.stdout.readline().strip() == "fed"
        time.sleep(1.6)  # longer than the flusher's interval
        deadline = time.monotonic() + 30  # a slow machine may need longer; the test waits, never times
        while _counter_rows(path) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    engine = Engine(ruleset(RULES), SqliteStore(path))
    try:
        assert engine.labels.has("user", "u", "busy", T0 + 10)  # labels commit before the decision returns
        d = engine.process(event(time=T0 + 10, user="u"))
        assert isinstance(d, Decision)
        assert d.hits[0].features == {"posts": 6}
        # "mark" first fired on the third event, before the kill; its history survived it too.
        history = engine.labels.history("user", "u")
        assert (history[0].actor, history[0].updated_at, history[0].present) == ("mark", T0 + 2, True)
        assert {r.actor for r in history} == {"mark"}
    finally:
        engine.close()


def test_counter_rows_written_before_the_chunked_format_are_migrated(tmp_path: Path) -> None:
    from vigil.stores.sqlite import MIGRATIONS, SqliteStore

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    for index in range(2):  # a database at schema version 2, with rows in the old counter_log table
        conn.executescript("BEGIN;" + MIGRATIONS[index] + f"PRAGMA user_version = {index + 1}; COMMIT;")
    conn.executemany("INSERT INTO counter_log VALUES (?, ?, ?, ?, ?)",
                     [("c1", "u1", 100, "", 2.0), ("c1", "u1", 101, "", 1.0), ("c2", "ip", 100, "a", 1.0)])
    conn.close()
    store = SqliteStore(path)
    assert list(store.load_counter_rows("c1", 99)) == [("c1", "u1", 100, "", 2.0), ("c1", "u1", 101, "", 1.0)]
    assert list(store.load_counter_rows("c1", 100)) == [("c1", "u1", 101, "", 1.0)]
    assert store.latest_counter_sec("c2") == 100
    store.write_counter_rows([("c1", "u1", 102, "", 5.0)])
    assert [r[2] for r in store.load_counter_rows("c1", 0)] == [100, 101, 102]
    store.prune_counter_rows("c1", 1, 101)
    assert [r[2] for r in store.load_counter_rows("c1", 0)] == [102]
    assert store.load_counter_key("c2", "ip") == [("c2", "ip", 100, "a", 1.0)]
    store.close()

"""The audit log's chain: verify passes on an untouched log and names the first broken entry after a
changed, a deleted, a reordered or a cut-off entry; appends from several threads keep one chain."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from vigil.audit import GENESIS, AuditLog, canonical
from vigil.people.roles import Principal
from vigil.stores.memory import MemoryStore
from vigil.stores.sqlite import SqliteStore


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "state.sqlite"
    SqliteStore(path).close()
    return path


def _filled(db: Path, n: int = 5) -> AuditLog:
    log = AuditLog.over(SqliteStore(db))
    for i in range(n):
        log.append("alice", "label.add", f"user:{i}", {"label": "spammer", "n": i, "score": 0.25 * i}, at=100.0 + i)
    return log


def _tamper(db: Path, *statements: str) -> None:
    """What someone with write access to the file can do: drop the guard triggers, change rows."""
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    conn.close()


def test_entries_chain_each_to_the_one_before(db: Path) -> None:
    log = _filled(db, 3)
    entries = log.entries()
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev == GENESIS
    assert [e.prev for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert all(e.hash == e.digest() for e in entries)
    result = log.verify()
    assert (result.ok, result.checked, result.head_seq, result.head_hash) == (True, 3, 3, entries[-1].hash)


def test_the_hash_is_over_the_canonical_json_of_the_entry(db: Path) -> None:
    import hashlib

    entry = _filled(db, 1).entries()[0]
    body = {"seq": 1, "at": 100.0, "actor": "alice", "action": "label.add", "target": "user:0",
            "detail": {"label": "spammer", "n": 0, "score": 0.0}, "prev": GENESIS}
    assert entry.hash == hashlib.sha256(canonical(body)).hexdigest()


def test_a_principal_is_recorded_by_person_with_the_token_it_came_through(db: Path) -> None:
    log = AuditLog.over(SqliteStore(db))
    entry = log.append(Principal("alice", (), token="ab12"), "review.decide", "item:x", {"action": "dismiss"})
    assert (entry.actor, entry.detail) == ("alice", {"action": "dismiss", "token": "ab12"})
    with pytest.raises(ValueError, match="needs the person"):
        log.append("", "review.decide")


def test_the_table_refuses_updates_and_deletes(db: Path) -> None:
    _filled(db, 2)
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'mallory'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_log")
    conn.close()


def test_verify_fails_after_a_changed_entry_naming_it(db: Path) -> None:
    _filled(db).close()
    _tamper(db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    result = AuditLog.over(SqliteStore(db)).verify()
    assert (result.ok, result.broken, result.checked) == (False, 3, 2)
    assert "entry 3 was changed" in result.problem


def test_verify_fails_after_a_changed_detail(db: Path) -> None:
    _filled(db).close()
    _tamper(db, "UPDATE audit_log SET detail = '{\"label\":\"spammer\",\"n\":1,\"score\":0.5}' WHERE seq = 2")
    result = AuditLog.over(SqliteStore(db)).verify()
    assert (result.ok, result.broken) == (False, 2)


def test_verify_fails_after_a_changed_entry_whose_hash_was_recomputed(db: Path) -> None:
    """Rewriting an entry and its hash breaks the link from the entry after it."""
    log = _filled(db)
    forged = log.entries()[1]
    import dataclasses

    forged = dataclasses.replace(forged, actor="mallory")
    log.close()
    _tamper(db, f"UPDATE audit_log SET actor = 'mallory', hash = '{forged.digest()}' WHERE seq = 2")
    result = AuditLog.over(SqliteStore(db)).verify()
    assert (result.ok, result.broken) == (False, 3)
    assert "does not follow entry 2" in result.problem


def test_verify_fails_after_a_deleted_entry(db: Path) -> None:
    _filled(db).close()
    _tamper(db, "DELETE FROM audit_log WHERE seq = 2")
    result = AuditLog.over(SqliteStore(db)).verify()
    assert (result.ok, result.broken) == (False, 2)
    assert "entry 2 is missing" in result.problem


def test_verify_fails_after_reordered_entries(db: Path) -> None:
    _filled(db).close()
    _tamper(db, "UPDATE audit_log SET seq = -2 WHERE seq = 2", "UPDATE audit_log SET seq = 2 WHERE seq = 4",
            "UPDATE audit_log SET seq = 4 WHERE seq = -2")
    result = AuditLog.over(SqliteStore(db)).verify()
    assert (result.ok, result.broken) == (False, 2)


def test_a_log_cut_short_passes_alone_and_fails_against_the_recorded_head(db: Path) -> None:
    log = _filled(db)
    head = log.head()
    log.close()
    _tamper(db, "DELETE FROM audit_log WHERE seq >= 4")
    log = AuditLog.over(SqliteStore(db))
    assert log.verify().ok  # a chain alone cannot know its end was cut
    result = log.verify(head=head)
    assert (result.ok, result.broken) == (False, 4)
    assert "before the recorded head 5" in result.problem
    assert log.verify(head=(3, log.head()[1])).ok


def test_appends_from_two_threads_keep_one_chain(db: Path) -> None:
    logs = [AuditLog.over(SqliteStore(db)), AuditLog.over(SqliteStore(db))]  # two connections to one file
    start = threading.Barrier(2)

    def write(log: AuditLog, who: str) -> None:
        start.wait()
        for i in range(150):
            log.append(who, "review.decide", f"item:{who}{i}")

    threads = [threading.Thread(target=write, args=(log, who)) for log, who in zip(logs, ("a", "b"), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = logs[0].verify()
    assert (result.ok, result.checked) == (True, 300)
    assert {e.actor for e in logs[1].entries(limit=1000)} == {"a", "b"}


def test_list_filters_and_pages(db: Path) -> None:
    log = _filled(db, 4)
    log.append("bob", "rules.activate", "rules:2")
    log.append("bob", "rules.rollback", "rules:1")
    assert [e.seq for e in log.entries(after=2, limit=2)] == [3, 4]
    assert [e.action for e in log.entries(actor="bob")] == ["rules.activate", "rules.rollback"]
    assert [e.seq for e in log.entries(action="rules.")] == [5, 6]
    assert [e.seq for e in log.entries(action="rules.activate")] == [5]
    assert [e.seq for e in log.entries(target="user:1")] == [2]
    assert [e.seq for e in log.entries(newest_first=True, limit=2)] == [6, 5]
    assert [e.seq for e in log.entries(before=3)] == [1, 2]


def test_an_in_memory_store_keeps_its_log_in_memory() -> None:
    log = AuditLog.over(MemoryStore())
    log.append("alice", "user.create", "user:bob")
    assert log.verify().ok and log.head()[0] == 1


def test_detail_must_be_json() -> None:
    log = AuditLog.over(MemoryStore())
    with pytest.raises(TypeError):
        log.append("alice", "x.y", detail={"at": object()})
    with pytest.raises(ValueError):
        log.append("alice", "x.y", detail={"score": float("nan")})
    assert log.head()[0] == 0

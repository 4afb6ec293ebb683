"""The outbox of every store behaves alike: once per (sink, key), claims hidden for their lease, failed
attempts due again or dead, dead messages requeued, delivered ones pruned; on PostgreSQL, concurrent
claims never take the same message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vigil.effects import OutboxMessage
from vigil.stores.base import LabelRecord
from vigil.stores.memory import MemoryStore
from vigil.stores.sqlite import SqliteStore

from .servers import Server, fresh_database


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        made: Any = SqliteStore(tmp_path / "s.sqlite")
    else:
        from vigil.stores.postgres import PostgresStore

        server: Server = request.getfixturevalue("postgres")
        made = PostgresStore(fresh_database(server, "outbox"))
    yield made
    made.close()


def _messages(n: int, sink: str = "hook", at: float = 100.0) -> list[OutboxMessage]:
    return [OutboxMessage(sink, f"k{i}", f'{{"n": {i}}}'.encode(), at + i) for i in range(n)]


def test_a_message_is_stored_once_per_sink_and_key(store: Any) -> None:
    store.enqueue_outbox(_messages(3))
    store.enqueue_outbox(_messages(3))
    store.enqueue_outbox(_messages(1, sink="file"))
    status = store.outbox_status()
    assert (status["hook"].pending, status["hook"].oldest, status["file"].pending) == (3, 100.0, 1)


def test_claims_are_hidden_for_their_lease_and_oldest_first(store: Any) -> None:
    store.enqueue_outbox(_messages(5))
    first = store.claim_outbox("hook", 200.0, 2, 30.0)
    assert [r.key for r in first] == ["k0", "k1"] and first[0].body == b'{"n": 0}' and first[0].attempts == 0
    assert [r.key for r in store.claim_outbox("hook", 200.0, 10, 30.0)] == ["k2", "k3", "k4"]
    assert store.claim_outbox("hook", 229.0, 10, 30.0) == []
    assert [r.key for r in store.claim_outbox("hook", 231.0, 10, 30.0)] == ["k0", "k1", "k2", "k3", "k4"]
    assert store.claim_outbox("file", 1e9, 10, 30.0) == []


def test_delivered_failed_dead_requeued_pruned(store: Any) -> None:
    store.enqueue_outbox(_messages(3))
    a, b, c = store.claim_outbox("hook", 200.0, 10, 30.0)
    store.outbox_delivered([a.id], 201.0)
    store.outbox_failed(b.id, 1, "HTTP 503", 260.0)
    store.outbox_failed(c.id, 5, "refused", None)
    store.outbox_release([a.id], 0.0)  # a delivered message is never given back
    assert store.claim_outbox("hook", 250.0, 10, 30.0) == []
    [again] = store.claim_outbox("hook", 260.0, 10, 30.0)
    assert (again.key, again.attempts, again.last_error) == ("k1", 1, "HTTP 503")
    [dead] = store.outbox_dead("hook")
    assert (dead.key, dead.attempts, dead.last_error, dead.state) == ("k2", 5, "refused", "dead")
    assert store.outbox_status()["hook"].dead == 1
    assert store.requeue_outbox("hook", 280.0) == 1
    assert [r.key for r in store.claim_outbox("hook", 285.0, 10, 30.0)] == ["k2"]  # k1 is still claimed
    store.enqueue_outbox(_messages(1))  # k0: delivered and remembered, so not stored again
    assert [r.key for r in store.claim_outbox("hook", 1e6, 10, 30.0)] == ["k1", "k2"]
    assert store.prune_outbox(202.0) == 1
    store.enqueue_outbox(_messages(1))  # forgotten: a new message
    assert [r.key for r in store.claim_outbox("hook", 2e6, 10, 30.0)] == ["k1", "k2", "k0"]  # k0 written last


def test_labels_and_messages_commit_together(store: Any) -> None:
    record = LabelRecord("user", "u1", "scammer", True, "rule", None, 100.0, "Scam link")
    store.commit_effects([record], _messages(2))
    assert [r.label for r in store.label_history("user", "u1")] == ["scammer"]
    assert store.outbox_status()["hook"].pending == 2


def test_postgres_dispatchers_claim_disjoint_messages(postgres: Server) -> None:
    import threading

    from vigil.stores.postgres import PostgresStore

    url = fresh_database(postgres, "outbox")
    stores = [PostgresStore(url) for _ in range(4)]
    stores[0].enqueue_outbox(_messages(400))
    claimed: list[list[str]] = [[] for _ in stores]

    def claim(i: int) -> None:
        while rows := stores[i].claim_outbox("hook", 1000.0, 7, 600.0):
            claimed[i] += [r.key for r in rows]

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [k for keys in claimed for k in keys]
    assert sorted(every) == sorted(f"k{i}" for i in range(400))  # each once, none twice
    for s in stores:
        s.close()

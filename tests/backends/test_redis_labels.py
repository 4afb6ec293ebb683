"""RedisLabels: the rules of the in-process labels, shared by workers, at most once per event."""

from __future__ import annotations

from typing import Any

from vigil.signals.labels import MANUAL, RULE, Labels
from vigil.stores.redis_labels import RedisLabels

T = 1_767_225_600.0


def _both(client: Any) -> tuple[Labels, RedisLabels]:
    return Labels(), RedisLabels(client, "t")


def test_same_decisions_as_in_process(redis_client: Any) -> None:
    local, shared = _both(redis_client)
    steps = [
        ("user", "u1", "spammer", True, T, RULE, T + 100),
        ("user", "u1", "spammer", True, T + 10, RULE, T + 90),  # present for longer already: no change
        ("user", "u1", "spammer", True, T + 90, RULE, T + 400),
        ("user", "u1", "spammer", False, T + 95, MANUAL, None),
        ("user", "u1", "spammer", True, T + 96, RULE, T + 500),  # a person's removal outranks a rule
        ("user", "u2", "ok", False, T, RULE, None),  # nothing to remove
        ("user", "u2", "vip", True, T, MANUAL, None),
    ]
    for etype, key, label, present, now, source, expires in steps:
        a = local.set(etype, key, label, present=present, now=now, source=source, actor="x", expires_at=expires)
        b = shared.set(etype, key, label, present=present, now=now, source=source, actor="x", expires_at=expires)
        assert a == b
    for key in ("u1", "u2"):
        assert shared.get("user", key) == local.get("user", key)
        assert shared.get("user", key, T + 1000) == local.get("user", key, T + 1000)
        assert [shared.has("user", key, lb, T + 50) for lb in ("spammer", "vip")] == \
               [local.has("user", key, lb, T + 50) for lb in ("spammer", "vip")]
    assert len(shared.history("user", "u1")) == 3


def test_a_redelivered_event_writes_no_history_twice(redis_client: Any) -> None:
    shared = RedisLabels(redis_client, "t")
    record = shared.change("user", "u", "l", present=True, now=T, source=RULE, actor="r", expires_at=T + 600)
    assert record is not None
    shared.commit([record], "e1")
    # The same event again, as if decided before its first commit landed (the worker died after it).
    shared._pending.clear()
    shared.commit([record], "e1")
    assert len(shared.history("user", "u")) == 1


def test_concurrent_workers_decide_against_the_latest_state(redis_client: Any) -> None:
    a, b = RedisLabels(redis_client, "t"), RedisLabels(redis_client, "t")
    ra = a.change("user", "u", "l", present=True, now=T, source=RULE, actor="r", expires_at=T + 600)
    rb = b.change("user", "u", "l", present=True, now=T + 1, source=RULE, actor="r", expires_at=T + 599)
    assert ra is not None and rb is not None
    a.commit([ra], "e1")
    assert b.commit([rb], "e2") == []  # conflicts, is decided again: already present for as long
    assert len(a.history("user", "u")) == 1
    assert b.conflicts == 1

"""RedisCounters against the in-process WindowCounters: the same updates give the same answers."""

from __future__ import annotations

import random
from typing import Any

import pytest

from vigil.dsl.compile import CounterSpec
from vigil.signals.counters import WindowCounters
from vigil.stores.redis_counters import RedisCounters

SPECS = [
    CounterSpec("c10", "count", 10.0, "count 10s"),
    CounterSpec("s5", "sum", 5.0, "sum 5s"),
    CounterSpec("d7", "distinct", 7.0, "distinct 7s"),
    CounterSpec("cday", "count", None, "count today"),
    CounterSpec("dday", "distinct", None, "distinct today"),
    CounterSpec("s3600", "sum", 3600.0, "sum 1h"),
]
T0 = 1_767_225_600 - 30  # crosses a UTC midnight


def _operations(seed: int, n: int, in_order: bool) -> list[tuple[str, int, int, str, Any]]:
    rng = random.Random(seed)
    ops = []
    sec = T0
    for _ in range(n):
        sec += rng.choice([0, 0, 1, 1, 2, 5]) if in_order else rng.randint(-6, 6)
        index = rng.randrange(len(SPECS))
        key = rng.choice(["a", "b", "c\tx"])
        kind = SPECS[index].kind
        value: Any = rng.choice(["v1", "v2", "v3", "v\t4", 7]) if kind == "distinct" else (
            rng.choice([1, 2, 0.5, -1]) if kind == "sum" else 1)
        ops.append(("add" if rng.random() < 0.7 else "peek", sec, index, key, value))
    return ops


@pytest.mark.parametrize("in_order", [True, False])
def test_same_answers_as_in_process(redis_client: Any, in_order: bool) -> None:
    local = WindowCounters()
    local.bind(SPECS)
    shared = RedisCounters(redis_client, "t")
    shared.bind(SPECS)
    for n, (op, sec, index, key, value) in enumerate(_operations(1 if in_order else 2, 1500, in_order)):
        if op == "add":
            expected = local.add_many(f"e{n}", sec, [(index, key, value)])
            got = shared.add_many(f"e{n}", sec, [(index, key, value)])
        else:
            expected = local.peekers[index](key, sec)
            got = shared.peekers[index](key, sec)
        assert got == expected, (n, op, sec, SPECS[index], key, value)


def test_several_updates_in_one_event(redis_client: Any) -> None:
    shared = RedisCounters(redis_client, "t")
    shared.bind(SPECS)
    got = shared.add_many("e1", T0, [(0, "u", 1), (2, "u", "x"), (4, "u", "y")])
    assert got == {0: (0, 1), 2: (0, 1), 4: (0, 1)}
    assert shared.add_many("e2", T0, [(0, "u", 1), (2, "u", "x")]) == {0: (1, 2), 2: (1, 1)}


def test_a_redelivered_event_counts_once_and_gets_its_first_answer(redis_client: Any) -> None:
    shared = RedisCounters(redis_client, "t")
    shared.bind(SPECS)
    first = shared.add_many("e1", T0, [(0, "u", 1), (1, "u", 2.5)])
    shared.add_many("e2", T0 + 1, [(0, "u", 1)])
    again = shared.add_many("e1", T0, [(0, "u", 1), (1, "u", 2.5)])
    assert again == first == {0: (0, 1), 1: (0, 2.5)}
    assert shared.peekers[0]("u", T0 + 1) == 2
    assert shared.redeliveries == 1


def test_two_backends_share_counts(redis_client: Any) -> None:
    a, b = RedisCounters(redis_client, "t"), RedisCounters(redis_client, "t")
    a.bind(SPECS)
    b.bind(SPECS[::-1])  # another rules version: indexes differ, counter ids do not
    a.add_many("e1", T0, [(0, "u", 1)])
    assert b.add_many("e2", T0, [(5, "u", 1)]) == {5: (1, 2)}
    assert a.peekers[0]("u", T0 + 100) == 0


def test_keys_expire(redis_client: Any) -> None:
    shared = RedisCounters(redis_client, "t")
    shared.bind(SPECS[:1])
    shared.add_many("e1", T0, [(0, "u", 1)])
    assert 0 < redis_client.ttl("t:c:c10:u") <= 10 + shared.key_ttl_margin
    assert redis_client.ttl("t:ev:e1") >= shared.mark_ttl - 5

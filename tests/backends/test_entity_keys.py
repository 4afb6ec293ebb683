"""Composite entity keys: distinct tuples of parts never share counters or labels, in every store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vigil.dsl.loader import load_ruleset
from vigil.dsl.runtime import encode_key, entity_key
from vigil.engine import Engine
from vigil.stores.memory import MemoryStore
from vigil.stores.open import open_store

from .servers import Server, fresh_database

RULES = """
entity pair = (event.a, event.b)
define messages = count of "msg" by pair in the last 1 hour
rule "mark" when event is "bad" then label pair "x"
rule "marked" when event is "msg" and pair has label "x" then block
rule "busy" when event is "msg" and messages >= 2 then review
"""

MakeEngine = Callable[[], Engine]


@pytest.fixture(params=["memory", "sqlite", "postgresql", "redis"])
def make_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeEngine]:
    """Engines over one durable state (a new one sees what the last one stored)."""
    rules = load_ruleset("r.vigil", files={"r.vigil": RULES})
    memory = MemoryStore()
    engines: list[Engine] = []
    url = str(tmp_path / "v.sqlite")
    if request.param == "postgresql":
        server: Server = request.getfixturevalue("postgres")
        url = fresh_database(server, "k")

    def make() -> Engine:
        if request.param == "memory":
            engine = Engine(rules, memory)
        elif request.param == "redis":
            from vigil.stores.redis_counters import RedisCounters
            from vigil.stores.redis_labels import RedisLabels

            client: Any = request.getfixturevalue("redis_client")
            engine = Engine(rules, MemoryStore(), counters=RedisCounters(client, "k"), labels=RedisLabels(client, "k"))
        else:
            engine = Engine(rules, open_store(url))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def _verdict(engine: Engine, etype: str, a: str, b: str, n: list[int]) -> str:
    n[0] += 1
    decision = engine.process({"type": etype, "id": f"e{n[0]}", "time": 1000 + n[0], "a": a, "b": b})
    assert not hasattr(decision, "reason"), decision
    return decision.verdict  # type: ignore[union-attr]


def test_parts_with_the_separator_do_not_collide(make_engine: MakeEngine) -> None:
    n = [0]
    engine = make_engine()
    _verdict(engine, "bad", "a|b", "c", n)
    assert _verdict(engine, "msg", "a", "b|c", n) == "allow"  # before: block, the other pair's label
    assert _verdict(engine, "msg", "a|b", "c", n) == "block"
    assert _verdict(engine, "msg", "a\\", "|c", n) == "allow"  # a backslash is escaped too
    engine.close()
    again = make_engine()  # what the store kept, read back
    assert _verdict(again, "msg", "a", "b|c", n) == "review"  # its own second message, not the other's
    assert again.labels.has("pair", encode_key(["a|b", "c"]), "x", 2000)
    assert not again.labels.has("pair", encode_key(["a", "b|c"]), "x", 2000)


@pytest.mark.parametrize("parts", [("a|b", "c"), ("a", "b|c"), ("a\\", "|c"), ("a\\|", "c"), ("a", "\\|c"),
                                   ("u1", "u2"), ("|", "|"), ("\\", "\\")])
def test_keys_are_distinct_and_plain_ids_unchanged(parts: tuple[str, str]) -> None:
    others = [("a|b", "c"), ("a", "b|c"), ("a\\", "|c"), ("a\\|", "c"), ("a", "\\|c"), ("u1", "u2"), ("|", "|"),
              ("\\", "\\"), ("a", "b", "c")]
    keys = {other: entity_key(*other) for other in others}
    assert [o for o, k in keys.items() if k == entity_key(*parts)] == [parts]
    assert entity_key("u1", "u2") == "u1|u2" and entity_key("a|b") == "a|b"

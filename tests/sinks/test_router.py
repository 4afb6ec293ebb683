"""Routing outputs to sinks and keying messages: stable keys, one per output of a rule, shadow rules
sending nothing."""

from __future__ import annotations

import dataclasses

import orjson

from vigil.dsl.loader import load_ruleset
from vigil.effects import Decision
from vigil.engine import Engine
from vigil.events import parse_event
from vigil.sinks import Router, idempotency_key

RULES = """
entity user = event.actor.id
entity post = event.id
rule "Twice" when event is "post" then output "redact" with subject user, output "redact" with subject post
rule "Quiet" mode shadow when event is "post" then output "redact" with subject user
"""


def _plan(router: Router, source: str = "api") -> list[tuple[str, str, dict[str, object]]]:
    engine = Engine(load_ruleset("r.vigil", files={"r.vigil": RULES}))
    event = dataclasses.replace(parse_event(orjson.dumps({"type": "post", "id": "p1", "time": 0,
                                                          "actor": {"id": "u1"}})), source=source)
    decision = engine.decide(event)
    assert isinstance(decision, Decision)
    return [(m.sink, m.key, orjson.loads(m.body)) for m in router.plan(event, decision)]


def test_each_output_of_a_rule_has_its_own_stable_key() -> None:
    router = Router({"redact": ("hook", "file")}, clock=lambda: 5.0)
    planned = _plan(router)
    assert [(sink, body["subject"]) for sink, _, body in planned] == [
        ("hook", {"entity": "user", "key": "u1"}), ("file", {"entity": "user", "key": "u1"}),
        ("hook", {"entity": "post", "key": "p1"}), ("file", {"entity": "post", "key": "p1"})]
    first, second = planned[0][1], planned[2][1]
    assert first == idempotency_key("api", "p1", "Twice", "redact") and second != first
    assert planned[1][1] == first  # one message, one key, whichever sink takes it
    assert [key for _, key, _ in _plan(router)] == [key for _, key, _ in planned]  # stable
    assert all(key != first for _, key, _ in _plan(router, source="other"))  # ids belong to their source


def test_shadow_rules_send_nothing_and_unrouted_outputs_stay_home() -> None:
    assert all(body["rule"] == "Twice" for _, _, body in _plan(Router({"redact": ("hook",)})))
    assert _plan(Router({"review": ("hook",)})) == []


def test_outputs_no_route_names_are_listed_for_a_warning() -> None:
    from vigil.sinks import build, output_names
    from vigil.stores.memory import MemoryStore

    rules = load_ruleset("r.vigil", files={"r.vigil": RULES + 'rule "R" when event is "x" then output "review"'})
    names = output_names(info.actions for info in rules.compiled.rules)
    assert names == {"redact", "review"}
    outputs = build({"f": {"kind": "jsonl", "path": "o.jsonl"}}, {"redact": "f"}, MemoryStore())
    assert outputs.unrouted(names) == ["review"]
    assert build(None, None, MemoryStore()).unrouted(names) == ["redact", "review"]

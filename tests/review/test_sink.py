"""From rules to review items through the real outbox: a rule's output about a user, routed to a queue
sink, opens one item for that user, and later hits append evidence and can raise its priority; a
`review` verdict published to the queue sink opens an item about its event; a redelivered message adds
nothing; an in-memory store is refused with a message that says what to use."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from vigil.dsl.loader import load_ruleset
from vigil.engine import Engine
from vigil.review import ReviewStore
from vigil.sinks import SinkError, build
from vigil.sinks.base import Delivery
from vigil.stores.memory import MemoryStore

RULES = """
entity user = event.actor.id
rule "Spam link" when event is "post" and event.text contains "free crypto"
  then flag, output "spam-review" with subject user, priority = event.priority
rule "Odd" when event is "post" and event.text contains "hmm" then review
"""


def _engine(store: Any) -> tuple[Engine, Any]:
    outputs = build({"queue": {"kind": "queue", "queue": "spam"}}, {"spam-review": "queue"}, store)
    return Engine(load_ruleset("r.vigil", files={"r.vigil": RULES}), store, outbox=outputs.router), outputs


def _post(engine: Engine, n: int, text: str, user: str = "u1", priority: float | None = None) -> None:
    event: dict[str, Any] = {"type": "post", "id": f"p{n}", "time": 1000 + n, "actor": {"id": user}, "text": text}
    if priority is not None:
        event["priority"] = priority
    engine.process(orjson.dumps(event))


def test_outputs_and_review_verdicts_become_items(state_store: Any) -> None:
    engine, outputs = _engine(state_store)
    try:
        _post(engine, 1, "free crypto", priority=2)
        _post(engine, 2, "free crypto again", priority=5)
        _post(engine, 3, "free crypto", priority=1)
        _post(engine, 4, "hmm", user="u9")
        # Three outputs, and the four decisions (published to a queue sink when a rule fired): one is a review.
        assert outputs.dispatcher.run_once("queue") == 7
        review = ReviewStore.over(state_store)
        items = review.items("spam")
        assert [(i.subject_type, i.subject_key, i.hits, i.priority) for i in items] == [
            ("user", "u1", 3, 5.0), ("event", "/p4", 1, 0.0)]
        evidence = review.evidence(items[0].id)
        assert [e["event"]["id"] for e in evidence] == ["p1", "p2", "p3"]
        assert evidence[0]["rules"] == ["Spam link"] and evidence[0]["params"] == {"priority": 2}
        verdict = review.evidence(items[1].id)[0]
        assert verdict["verdict"] == "review" and verdict["reasons"][0]["rule"] == "Odd"
        review.close()
    finally:
        outputs.close(1.0)


def test_a_redelivered_message_adds_no_evidence(state_store: Any) -> None:
    outputs = build({"queue": {"kind": "queue"}}, {"x": "queue"}, state_store)
    sink = outputs.dispatcher.sinks["queue"][0]
    body = orjson.dumps({"type": "output", "key": "k1", "output": "x", "subject": {"entity": "user", "key": "u1"},
                         "params": {}, "rule": "R", "event": {"source": "", "id": "e1", "type": "post", "time": 0},
                         "verdict": "flag", "ruleset": "v", "stage": 1})
    assert all(o.ok for o in sink.deliver([Delivery("k1", body, 1), Delivery("k1", body, 2)]))
    bad = sink.deliver([Delivery("k2", b"not json", 1)])
    assert not bad[0].ok and "not a message a review queue can take" in bad[0].error
    review = ReviewStore.over(state_store)
    assert [i.hits for i in review.items("default")] == [1]
    review.close()
    outputs.close(1.0)


def test_a_queue_sink_needs_a_durable_store() -> None:
    with pytest.raises(SinkError, match="review queues keep their items in the state store"):
        build({"queue": {"kind": "queue"}}, {}, MemoryStore())


def test_routing_rules_are_ordered_and_the_first_match_wins(state_store: Any) -> None:
    rules = RULES + '''
entity reported = event.target.id
rule "User report" when event is "report"
  then output "spam-review" with subject reported, reporter = event.actor.id, reason = event.reason
'''
    routes = [{"rule": "User report", "queue": "reports"}, {"verdict": "review", "queue": "odd"},
              {"rule": "User report", "queue": "never"}]
    outputs = build({"queue": {"kind": "queue", "queue": "spam", "routes": routes}}, {"spam-review": "queue"},
                    state_store)
    engine = Engine(load_ruleset("r.vigil", files={"r.vigil": rules}), state_store, outbox=outputs.router)
    try:
        _post(engine, 1, "free crypto")
        _post(engine, 2, "hmm")
        engine.process(orjson.dumps({"type": "report", "id": "r1", "time": 2000, "actor": {"id": "u5"},
                                     "target": {"id": "u1"}, "reason": "spam"}))
        outputs.dispatcher.run_once("queue")
        review = ReviewStore.over(state_store)
        found = {q: [(i.subject_type, i.subject_key) for i in review.items(q)] for q in ("spam", "odd", "reports")}
        assert found == {"spam": [("user", "u1")], "odd": [("event", "/p2")], "reports": [("reported", "u1")]}
        report = review.evidence(review.items("reports")[0].id)[0]
        assert report["params"] == {"reporter": "u5", "reason": "spam"}
        review.close()
    finally:
        outputs.close(1.0)


def test_a_bad_route_is_named() -> None:
    from vigil.sinks import SinkConfigError, validate

    with pytest.raises(SinkConfigError, match=r"sinks.queue.routes.0.queue: Field required"):
        validate({"queue": {"kind": "queue", "routes": [{"rule": "R"}]}}, {})

"""The Engine: dead letters, activation of new rules versions, stats, and decisions end to end."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from conftest import HEADER, T0, event, ruleset

from vigil.effects import DeadLetter, Decision
from vigil.engine import Engine, in_rollout
from vigil.events import MAX_EVENT_BYTES
from vigil.stores.base import bounded_letter
from vigil.stores.memory import MemoryStore

MakeEngine = Callable[..., Engine]

RULES = HEADER + """
define posts = count of "post" by user in the last 1 hour
rule "busy" when event is "post" and posts >= 2 then review
rule "spam" when event.text contains "spam" then block
"""


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{oops", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"type": "post", "id": "1"}', 'missing "time"'),
        (b'{"type": "post", "id": "1", "time": 0, "pad": "' + b"x" * MAX_EVENT_BYTES + b'"}', "more than the limit"),
    ],
)
def test_malformed_and_oversized_json_is_dead_lettered(make_engine: MakeEngine, raw: bytes, fragment: str) -> None:
    seen: list[DeadLetter] = []
    store = MemoryStore()
    engine = Engine(ruleset(RULES), store, on_dead_letter=seen.append)
    try:
        result = engine.process(raw, source="test-source")
    finally:
        engine.close()
    assert isinstance(result, DeadLetter)
    assert fragment in result.reason
    assert result.raw == raw and result.source == "test-source"
    # the store keeps a bounded prefix of a large body, with its size and hash (issue 11.11)
    assert seen == [result] and store.letters == [bounded_letter(result, store.letter_limits)]
    (kept,) = store.letters
    assert kept.raw == raw[:store.letter_limits.max_raw_bytes]
    assert kept.details.get("raw_size", len(raw)) == len(raw)
    assert engine.stats.dead_letters == 1 and engine.stats.events == 0


def test_dead_letter_of_a_dict_keeps_json(make_engine: MakeEngine) -> None:
    engine = make_engine(RULES)
    result = engine.process({"type": "post", "id": "1", "time": 0, "text": 3})
    assert isinstance(result, DeadLetter)
    assert result.raw == b'{"type":"post","id":"1","time":0,"text":3}'


def test_internal_errors_cost_one_event(make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(RULES)

    def broken(*args: object) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setitem(engine._dispatch, "post", broken)
    result = engine.process(event(user="u"))
    assert isinstance(result, DeadLetter) and result.reason == "internal error: RuntimeError: boom"
    assert isinstance(engine.process(event("comment", user="u")), Decision)


def test_stats(make_engine: MakeEngine) -> None:
    engine = make_engine(RULES)
    engine.process(event(user="u"))
    engine.process(event(user="u"))
    engine.process(event(user="u", text="spam"))
    engine.process(b"nope")
    assert engine.stats.events == 3
    assert engine.stats.dead_letters == 1
    assert engine.stats.verdicts == {"allow": 1, "flag": 0, "review": 1, "block": 1}
    assert engine.stats.rule_hits == {"busy": 2, "spam": 1}


def test_activate_a_new_version_keeps_counters_and_labels(make_engine: MakeEngine) -> None:
    engine = make_engine(RULES + 'rule "mark" when event is "post" then label user "seen"')
    engine.process(event(user="u"))
    old = engine.version
    engine.activate(ruleset(HEADER + 'define posts = count of "post" by user in the last 1 hour\n'
                            'rule "renamed" when event is "post" and posts >= 2 and user has label "seen" then block'))
    assert engine.version != old
    d = engine.process(event(user="u"))
    assert isinstance(d, Decision)
    assert (d.verdict, d.ruleset_version) == ("block", engine.version)


def test_activate_with_a_changed_counter_starts_it_afresh(make_engine: MakeEngine) -> None:
    engine = make_engine(RULES)
    engine.process(event(user="u"))
    engine.activate(ruleset(HEADER + 'rule "r" when event is "post" and '
                            'count of "post" by user in the last 2 hours >= 2 then block'))
    d = engine.process(event(user="u"))
    assert isinstance(d, Decision) and d.verdict == "allow"


def test_in_rollout_is_deterministic_and_bounded() -> None:
    assert all(in_rollout("r", f"k{i}", 100) for i in range(200))
    assert not any(in_rollout("r", f"k{i}", 0) for i in range(200))
    assert [in_rollout("r", f"k{i}", 50) for i in range(50)] == [in_rollout("r", f"k{i}", 50) for i in range(50)]
    # different rules put different entities in their canary
    assert {i for i in range(200) if in_rollout("a", f"k{i}", 50)} != {i for i in range(200)
                                                                          if in_rollout("b", f"k{i}", 50)}


def test_decision_for_an_event_no_rule_names(make_engine: MakeEngine) -> None:
    d = make_engine(RULES).process(event("unknown-type", T0))
    assert isinstance(d, Decision)
    assert (d.verdict, d.hits, d.effects, d.event_type) == ("allow", (), (), "unknown-type")


def test_doctest_style_bytes_input(make_engine: MakeEngine) -> None:
    engine = make_engine('rule "Any post" when event is "post" then flag')
    d = engine.process(b'{"type": "post", "id": "1", "time": 0}')
    assert isinstance(d, Decision) and d.verdict == "flag" and d.event_id == "1"


def test_large_values_in_explanations_are_summarised(make_engine: MakeEngine) -> None:
    # a 4.6 KB JPEG made a 6.9 KB decision: the base64 was echoed in the explanation (issue 10.16)
    import base64
    import hashlib

    import orjson

    engine = make_engine(HEADER + 'rule "image" when event is "post" and length(event.image) > 0 '
                         'and length(event.tags) > 1 then flag')
    image = base64.b64encode(bytes(range(256)) * 18).decode()  # 4.6 KB, as base64
    tags = [f"t{i}" for i in range(50)]
    decision = engine.process(event("post", user="u", image=image, tags=tags))
    assert isinstance(decision, Decision) and decision.verdict == "flag"
    features = decision.hits[0].features
    assert features["event.image"] == {
        "summarized": "string", "chars": len(image), "bytes": len(image),
        "sha256": hashlib.sha256(image.encode()).hexdigest(), "prefix": image[:64]}
    assert features["event.tags"] == {"summarized": "list", "items": 50, "first": tags[:20]}
    assert len(orjson.dumps(decision.to_json())) < 1500
    small = engine.process(event("post", user="u", image="abc", tags=["a", "b"])).hits[0].features  # type: ignore[union-attr]
    assert (small["event.image"], small["event.tags"]) == ("abc", ["a", "b"])


def test_an_activation_that_fails_leaves_the_running_version_and_its_counters(make_engine: MakeEngine) -> None:
    """All or nothing (issue 11.1): a rules set whose code cannot run is refused before the running
    functions or any counter binding change. It used to bind the new counters first, so posts were
    then counted into the new version's login counter by the old functions."""
    engine = make_engine(HEADER + 'rule "burst" when count of "post" by user in the last 1 hour >= 3 then block')
    engine.process(event(user="u"))
    engine.process(event(user="u"))
    logins = ruleset(HEADER + 'rule "logins" when count of "login" by user in the last 1 hour >= 1 then flag')
    broken = dataclasses.replace(logins, code=None, version="broken",
                                 compiled=dataclasses.replace(logins.compiled, source="def decide_0(:\n"))
    with pytest.raises(SyntaxError):
        engine.activate(broken)
    assert engine.version != "broken"
    d = engine.process(event(user="u"))
    assert isinstance(d, Decision) and d.verdict == "block"
    assert engine.process(event("login", user="w")).verdict == "allow"


class _HeldClassifier:
    """Flags every text once `release` is set; `reached` is set when it is asked."""

    name, version, labels = "slow", "1", ("ok", "flagged")

    def __init__(self) -> None:
        import threading

        self.reached, self.release = threading.Event(), threading.Event()
        self.asked: list[str] = []

    def classify(self, texts: list[str]) -> list[Any]:
        from vigil.classifiers.base import Classification

        self.asked.extend(texts)
        self.reached.set()
        self.release.wait(60)
        return [Classification("flagged", 0.99, True, self.version) for _ in texts]


def test_a_slow_signal_lets_other_events_and_activations_through_and_keeps_its_version() -> None:
    """A slow signal runs without the engine's lock: another thread decides its events and activates a
    version meanwhile, and the held event is still decided wholly by the version it started with."""
    import threading

    from vigil.classifiers.registry import ClassifierRegistry
    from vigil.events import parse_event
    from vigil.signals.providers import Signals

    held = _HeldClassifier()
    v1 = ruleset(HEADER + 'rule "slow" when event is "post" and classifier "slow" on event.text > 0.5 then block\n'
                 'rule "big" when event is "purchase" and event.amount > 10 then review\n')
    engine = Engine(v1, signals=Signals(classifiers=ClassifierRegistry.of([held])))  # type: ignore[list-item]
    results: dict[str, Any] = {}

    def in_thread(name: str, call: Callable[[], Any]) -> threading.Thread:
        thread = threading.Thread(target=lambda: results.__setitem__(name, call()), daemon=True)
        thread.start()
        return thread

    try:
        slow = in_thread("slow", lambda: engine.decide(parse_event(event("post", text="buy followers"))))
        assert held.reached.wait(30)
        other = in_thread("other", lambda: engine.decide(parse_event(event("purchase", amount=50))))
        other.join(30)
        assert results["other"].verdict == "review", "another event waited for the slow signal"
        v2 = ruleset(HEADER + 'rule "renamed" when event is "purchase" then flag\n')
        in_thread("activated", lambda: engine.activate(v2)).join(30)
        assert "activated" in results and engine.version == v2.version
    finally:
        held.release.set()
    slow.join(30)
    decision: Decision = results["slow"]
    assert decision.verdict == "block" and [h.rule for h in decision.hits] == ["slow"]
    assert decision.ruleset_version == v1.version
    # Past its deadline, a slow signal answers unknown without being asked.
    engine.activate(v1)
    late = engine.decide(parse_event(event("post", text="other text")), deadline=0.0)
    assert late.verdict == "allow" and "other text" not in held.asked
    engine.close()

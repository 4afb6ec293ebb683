"""The event loop never waits for the engine (issue 12.4, 11.5, 11.9, 11.14): a slow classifier, a rules
version that takes long to activate, a full second stage and a person's label change each leave
/healthz and the other events answering. Slow operations are held by gates (held.py) that the test
opens, so every assertion is about order (it answered while the operation was held), never about speed;
the latencies measured are printed (pytest -s) for the record."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from vigil.classifiers.registry import ClassifierRegistry
from vigil.service import ServiceSettings, create_app
from vigil.signals.providers import Signals

from .held import Gate, HeldClassifier, HeldStore
from .helpers import wait_for

PROBE_LIMIT = 20.0  # how long a probe may wait for an answer before the test calls it blocked

RULES = """
entity user = event.actor.id
rule "Slow spam" when event is "post" and classifier "slow" on event.text > 0.5 then block
rule "Big spender" when event is "purchase" and event.amount > 1000 then review
"""

POLICY_RULES = """
entity user = event.actor.id
rule "Harassment by policy"
  when event is "message" and policy "harassment" finds event.text violating
  then block, label user "harasser" for 1 day
"""


def _event(etype: str, event_id: str, **data: Any) -> dict[str, Any]:
    return {"type": etype, "id": event_id, "time": round(time.time(), 3), "actor": {"id": "u1"}, **data}


class InThread:
    """A call made in a thread of its own (the test's client blocks), its result read once it is done."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.took_ms: float | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        started = time.perf_counter()
        try:
            self.result = call()
        except BaseException as error:  # noqa: BLE001 - reported by `value`
            self.error = error
        self.took_ms = (time.perf_counter() - started) * 1000

    def done(self, timeout: float = PROBE_LIMIT) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def value(self) -> Any:
        assert self.done(), "the call did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def healthz_while(client: TestClient, gate: Gate, what: str) -> float:
    """GET /healthz while `gate` holds the slow operation; it must answer before the gate opens."""
    probe = InThread(lambda: (client.get("/healthz"), gate.release.is_set()))
    assert probe.done(), f"/healthz did not answer within {PROBE_LIMIT:g} s while {what}: the event loop is blocked"
    response, released = probe.value()
    assert response.status_code == 200
    assert not released, "the gate opened before /healthz answered"
    assert probe.took_ms is not None
    print(f"\n/healthz answered in {probe.took_ms:.1f} ms while {what}")
    return probe.took_ms


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., tuple[TestClient, HeldStore]]]:
    """serve(signals=..., **settings): an app without auth over a HeldStore, its rules uploaded later or
    from `rules` (a rules directory written here)."""
    clients: list[TestClient] = []
    gates: list[Gate] = []

    def make(*, rules: str | None = None, signals: Signals | None = None, gate: Gate | None = None,
             **overrides: Any) -> tuple[TestClient, HeldStore]:
        rules_dir = None
        if rules is not None:
            rules_dir = tmp_path / f"rules-{len(clients)}"
            rules_dir.mkdir()
            (rules_dir / "main.vigil").write_text(rules)
        store = HeldStore(tmp_path / f"vigil-{len(clients)}.sqlite")
        gates.extend([store.counters, store.rule_labels] + ([gate] if gate is not None else []))
        settings = ServiceSettings(**{"rules_dir": str(rules_dir) if rules_dir else None, "auth": False,
                                      "reload_interval": 3600, **overrides})
        client = TestClient(create_app(settings, store, signals=signals), base_url="http://localhost")
        client.__enter__()
        clients.append(client)
        return client, store

    yield make
    for gate in gates:  # whatever a failed test left held
        gate.release.set()
    for client in reversed(clients):
        client.__exit__(None, None, None)


def _slow_signals(name: str = "slow") -> tuple[Signals, HeldClassifier]:
    classifier = HeldClassifier(name)
    return Signals(classifiers=ClassifierRegistry.of([classifier])), classifier  # type: ignore[list-item]


@pytest.mark.parametrize("signal", ['classifier "slow" on event.text', "profanity(event.text)"])
def test_healthz_and_other_events_answer_while_a_classifier_is_slow(serve: Callable[..., Any], signal: str) -> None:
    """A trained classifier and a built-in function over one (the registry's path) alike."""
    signals, slow = _slow_signals("slow" if signal.startswith("classifier") else "profanity")
    client, _ = serve(rules=RULES.replace('classifier "slow" on event.text', signal), signals=signals, gate=slow.gate)
    held = InThread(lambda: client.post("/v1/events", json=_event("post", "p1", text="buy followers")))
    assert slow.gate.reached.wait(PROBE_LIMIT), "the classifier was never asked"
    try:
        healthz_while(client, slow.gate, "a classifier held an event")
        # Another event is decided meanwhile: the slow one holds its own engine thread, not the engine.
        other = InThread(lambda: client.post("/v1/events", json=_event("purchase", "b1", amount=5000)))
        assert other.done(), "another event waited for the slow classifier"
        assert other.value().status_code == 200 and other.value().json()["verdict"] == "review"
        assert not slow.gate.release.is_set()
    finally:
        slow.gate.release.set()
    response = held.value()
    assert response.status_code == 200
    assert response.json()["verdict"] == "block"  # the slow answer, once given, decided the event


def test_healthz_answers_while_the_store_looks_a_token_up(serve: Callable[..., Any]) -> None:
    client, store = serve(rules=RULES, auth=True, token_cache_seconds=0.0)
    store.tokens.armed = True
    asking = InThread(lambda: client.get("/v1/rules", headers={"Authorization": "Bearer not-a-token"}))
    assert store.tokens.reached.wait(PROBE_LIMIT)
    try:
        healthz_while(client, store.tokens, "the store was looking a token up")
    finally:
        store.tokens.release.set()
    assert asking.value().status_code == 401


def test_an_event_past_its_deadline_gets_504_and_its_decision_later(serve: Callable[..., Any]) -> None:
    signals, slow = _slow_signals()
    client, _ = serve(rules=RULES, signals=signals, gate=slow.gate, event_deadline=0.5)
    try:
        response = client.post("/v1/events", json=_event("post", "p1", text="buy followers"))
        assert response.status_code == 504
        body = response.json()
        assert body["error"]["code"] == "decision_timeout" and "0.5 s" in body["error"]["message"]
        assert response.headers["location"] == "/v1/decisions/p1"
        assert client.get("/v1/decisions/p1").json()["status"] == "deciding"
        # Meanwhile the others are decided at once.
        fast = client.post("/v1/events", json=_event("purchase", "b1", amount=5000))
        assert fast.status_code == 200 and fast.json()["verdict"] == "review"
    finally:
        slow.gate.release.set()
    assert wait_for(lambda: client.get("/v1/decisions/p1").json()["status"] == "decided")
    assert client.get("/v1/decisions/p1").json()["decision"]["verdict"] == "block"
    metrics = client.get("/metrics").text
    assert 'vigil_event_deadline_exceeded_total{result="still_running"} 1.0' in metrics


def test_an_event_that_cannot_start_by_its_deadline_is_503_and_not_decided(serve: Callable[..., Any]) -> None:
    signals, slow = _slow_signals()
    client, store = serve(rules=RULES, signals=signals, gate=slow.gate, engine_threads=1, event_deadline=0.5)
    held = InThread(lambda: client.post("/v1/events", json=_event("post", "p1", text="buy followers")))
    assert slow.gate.reached.wait(PROBE_LIMIT)
    try:
        response = client.post("/v1/events", json=_event("purchase", "b1", amount=5000))
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "engine_busy" and response.headers["retry-after"] == "1"
        assert client.get("/v1/decisions/b1").status_code == 404  # never decided: safe to send again
    finally:
        slow.gate.release.set()
    assert held.value().status_code == 504  # the held event ran past its deadline too
    again = client.post("/v1/events", json=_event("purchase", "b1", amount=5000))
    assert again.status_code == 200 and again.json()["verdict"] == "review"
    assert store.count_dead_letters() == 0


def test_healthz_answers_while_a_rules_version_activates(serve: Callable[..., Any]) -> None:
    client, store = serve()
    # Activating a version binds its counters, reading from the store for a new one: held here.
    store.counters.armed = True
    upload = InThread(lambda: client.post("/v1/rules", json={"files": {"main.vigil": """
entity user = event.actor.id
rule "Busy" when event is "post" and count of "post" by user in the last 1 hour > 3 then flag
"""}}))
    assert store.counters.reached.wait(PROBE_LIMIT), "the new version's counters were never loaded"
    try:
        healthz_while(client, store.counters, "a rules version was activating")
    finally:
        store.counters.release.set()
    assert upload.value().status_code == 201
    version = upload.value().json()["version"]
    assert client.get("/v1/rules").json()["version"] == version
    decided = client.post("/v1/events", json=_event("post", "p1", text="hi"))
    assert decided.status_code == 200 and decided.json()["ruleset"] == version


def test_a_full_second_stage_refuses_with_503_and_retry_after(serve: Callable[..., Any]) -> None:
    signals, model = _slow_signals("harassment")
    client, store = serve(rules=POLICY_RULES, signals=signals, gate=model.gate, second_stage_queue=1)
    first = client.post("/v1/events", json=_event("message", "m1", text="you idiot"))
    assert first.status_code == 200 and first.json()["pending"] is True
    assert model.gate.reached.wait(PROBE_LIMIT)  # the stage took m1 and waits for the model
    try:
        second = client.post("/v1/events", json=_event("message", "m2", text="you fool"))
        assert second.status_code == 200 and second.json()["pending"] is True  # the one place in the queue
        third = client.post("/v1/events", json=_event("message", "m3", text="you clown"))
        assert third.status_code == 503
        assert third.json()["error"]["code"] == "second_stage_full" and third.headers["retry-after"] == "1"
        assert client.get("/v1/decisions/m3").status_code == 404  # refused before anything was applied
        assert "vigil_second_stage_refused_total 1.0" in client.get("/metrics").text
        assert "vigil_second_stage_depth 1.0" in client.get("/metrics").text
        assert healthz_while(client, model.gate, "the second stage was full") >= 0
    finally:
        model.gate.release.set()
    assert wait_for(lambda: "second_stage" in client.get("/v1/decisions/m2").json())
    # Room again: the refused event, sent again, is taken.
    again = client.post("/v1/events", json=_event("message", "m3", text="you clown"))
    assert again.status_code == 200 and again.json()["pending"] is True
    assert store.count_dead_letters() == 0


def test_a_persons_label_change_never_falls_inside_a_second_stage_commit(serve: Callable[..., Any]) -> None:
    """The second stage decides a rule's label change and commits it under the engine's lock; a person's
    change through the API takes the same lock, so it comes wholly before or after, never between the
    stage's reading of the label and its commit (where it would be overwritten by a change decided
    without it). The stage's commit is held at the store until the person's change has been asked for."""
    signals, model = _slow_signals("harassment")
    model.gate.armed = False  # the model answers at once
    client, store = serve(rules=POLICY_RULES, signals=signals)
    engine = client.app.state.service.engine  # type: ignore[attr-defined]
    asked = threading.Event()
    with_labels = getattr(engine, "with_labels", None)
    if with_labels is not None:  # spy on the serialised path: the person's change has been asked for
        def spy(function: Callable[..., Any]) -> Any:
            asked.set()
            return with_labels(function)

        engine.with_labels = spy
    store.rule_labels.armed = True
    person = store.rule_labels.release  # the stage's commit goes on once the person's change is under way

    first = client.post("/v1/events", json=_event("message", "m1", text="you idiot"))
    assert first.status_code == 200 and first.json()["pending"] is True
    assert store.rule_labels.reached.wait(PROBE_LIMIT), "the second stage never committed its label"

    def remove() -> Any:
        return client.request("DELETE", "/v1/entities/user/u1/labels/harasser",
                              json={"reason": "reviewed: not harassment"})

    removal = InThread(remove)
    watcher = InThread(lambda: wait_for(lambda: asked.is_set() or "manual start" in store.writes, PROBE_LIMIT))
    assert watcher.value(), "the person's change never started"
    person.set()
    assert removal.value().status_code == 200
    assert wait_for(lambda: "second_stage" in client.get("/v1/decisions/m1").json())
    assert store.writes == ["rule start", "rule done", "manual start", "manual done"], (
        f"a person's label change was written inside a second-stage commit: {store.writes}")
    labels = client.get("/v1/entities/user/u1/labels").json()["labels"]
    assert [label["label"] for label in labels] == []  # the person's removal holds

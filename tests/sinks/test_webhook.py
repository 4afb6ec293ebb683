"""The webhook sink against a real HTTP receiver on loopback: signed bodies, a receiver that is down for
a while, duplicates dropped by idempotency key, nothing lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.servers import free_port

from vigil.dsl.loader import load_ruleset
from vigil.engine import Engine
from vigil.sinks import Outputs, build
from vigil.sinks.base import Delivery
from vigil.sinks.webhook import WebhookSink
from vigil.stores.sqlite import SqliteStore

from .conftest import RULES, Clock, scam_posts
from .receiver import Received, receiver

SECRET = "a-shared-secret"


def _setup(tmp_path: Path, port: int, clock: Clock, **extra: Any) -> tuple[Engine, Outputs, SqliteStore]:
    store = SqliteStore(tmp_path / "state.sqlite")
    sinks = {"hook": {"kind": "webhook", "url": f"http://127.0.0.1:{port}/vigil", "secret": SECRET,
                      "timeout": 5.0, **extra}}
    outputs = build(sinks, {"redact": "hook"}, store, clock=clock)
    engine = Engine(load_ruleset("r.vigil", files={"r.vigil": RULES}), store, outbox=outputs.router)
    return engine, outputs, store


def test_the_receiver_gets_each_message_signed(tmp_path: Path, clock: Clock) -> None:
    port = free_port()
    engine, outputs, _store = _setup(tmp_path, port, clock)
    for raw in scam_posts(5):
        engine.process(raw)
    with receiver(port, SECRET.encode()) as got:
        assert outputs.dispatcher.run_once("hook") == 5
    assert got.bad_signatures == 0 and got.key_mismatches == 0
    assert sorted(m["params"]["post"] for m in got.messages.values()) == [f"p{i}" for i in range(5)]
    assert outputs.stats()["hook"].delivered == 5
    outputs.close()
    engine.close()


def test_a_wrong_secret_is_refused_by_the_receiver(tmp_path: Path) -> None:
    port = free_port()
    sink = WebhookSink(f"http://127.0.0.1:{port}/", "not-the-secret", timeout=5.0)
    with receiver(port, SECRET.encode()) as got:
        [outcome] = sink.deliver([Delivery("k1", b'{"key": "k1"}', 1)])
    sink.close()
    assert not outcome.ok and "HTTP 401" in outcome.error
    assert got.bad_signatures == 1 and got.messages == {}


def test_a_receiver_down_for_a_while_gets_everything_once_it_is_up(tmp_path: Path, clock: Clock) -> None:
    port = free_port()  # nothing listens there yet: connections are refused
    engine, outputs, store = _setup(tmp_path, port, clock, backoff=2.0, max_attempts=20)
    for raw in scam_posts(40):
        engine.process(raw)
    for _ in range(3):  # three rounds while it is down: one attempt each, the batch given back
        assert outputs.dispatcher.run_once("hook") == 40
        clock.advance(60.0)
    stats = outputs.stats()["hook"]
    assert (stats.delivered, stats.retried, stats.pending) == (0, 3, 40)
    # Up, and losing its answers for the first 5 messages it stores: the sender retries them, the
    # receiver sees them again and drops the duplicates by their key.
    state = Received(SECRET.encode(), fail_after_storing=5)
    with receiver(port, SECRET.encode(), state) as got:
        for _ in range(20):
            clock.advance(600.0)
            outputs.dispatcher.run_once("hook")
            if store.outbox_status().get("hook") is None:
                break
    assert len(got.messages) == 40
    assert sorted(int(m["params"]["post"][1:]) for m in got.messages.values()) == list(range(40))
    assert got.duplicates == 5 and got.bad_signatures == 0
    assert outputs.stats()["hook"].delivered == 40 and outputs.stats()["hook"].pending == 0
    outputs.close()
    engine.close()


def test_after_max_attempts_a_message_is_a_dead_letter_with_the_reason(tmp_path: Path, clock: Clock) -> None:
    port = free_port()
    engine, outputs, store = _setup(tmp_path, port, clock, max_attempts=2, backoff=1.0)
    engine.process(scam_posts(1)[0])
    with receiver(port, SECRET.encode(), Received(SECRET.encode(), refusing=True)):
        outputs.dispatcher.run_once("hook")
        clock.advance(10.0)
        outputs.dispatcher.run_once("hook")
    [dead] = store.outbox_dead("hook")
    assert dead.attempts == 2 and "HTTP 503" in dead.last_error
    assert outputs.stats()["hook"].failed == 1
    outputs.close()
    engine.close()


def test_a_slow_receiver_is_a_timeout_not_a_stall(tmp_path: Path) -> None:
    import socket

    with socket.socket() as listener:  # accepts connections and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        sink = WebhookSink(f"http://127.0.0.1:{listener.getsockname()[1]}/", SECRET, timeout=0.5)
        [outcome] = sink.deliver([Delivery("k", b"{}", 1)])
        sink.close()
    assert not outcome.ok and "Timeout" in outcome.error


def test_the_dispatcher_thread_delivers_on_its_own(tmp_path: Path) -> None:
    import time

    port = free_port()
    engine, outputs, _store = _setup(tmp_path, port, Clock(time.time()), poll=0.05)
    with receiver(port, SECRET.encode()) as got:
        outputs.start()
        for raw in scam_posts(3):
            engine.process(raw)
        deadline = time.monotonic() + 30
        while len(got.messages) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        outputs.close()
    assert len(got.messages) == 3
    engine.close()

"""`vigil worker` and its rules (issue 12.2): every version passes the gate the service uses (the checker
and the rules' own tests), at start-up and on reload; a worker follows its rules files or the store, and
a version put in the store through the API is not replaced by the worker's `--rules`."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import click
import orjson
import pytest
from pydantic import SecretStr

from vigil.settings import Settings, StoreSettings, WorkerSettings
from vigil.stores.sqlite import SqliteStore
from vigil.workers.cli import run_worker

from .conftest import RULES, T0

EVERY_POST = 'rule "Every post" when event is "post" then review\n'
FAILING_TEST = 'test "a calm post is allowed"\n  given "post" from user "u" with text = "calm"\n  expect allow\n'
PASSING_TEST = 'test "a calm post is reviewed"\n  given "post" from user "u" with text = "calm"\n  expect review\n'


def _settings(redis_url: str, store: str = "memory:") -> Settings:
    return Settings(store=StoreSettings(url=SecretStr(store), redis=SecretStr(redis_url)),
                    worker=WorkerSettings(claim_idle=1.0, reload_interval=0.2))


def _run(redis_url: str, rules: list[str], *, store: str = "memory:", stop: threading.Event | None = None,
         idle_exit: float | None = 1.5, **options: Any) -> Any:
    return run_worker(_settings(redis_url, store), rules=rules, stream_redis=redis_url, stream="events",
                      bootstrap=None, topic=None, group="g", consumer="w1", output=None, idle_exit=idle_exit,
                      stop=stop, **options)


def _post(client: Any, i: int) -> str:
    client.xadd("events", {"event": orjson.dumps({"type": "post", "id": f"h{i}", "time": T0 + i, "user": f"u{i}",
                                                   "ip": "1.1.1.1"})})
    return f"h{i}"


def _verdict(client: Any, event_id: str, timeout: float = 10.0) -> str | None:
    """The verdict the worker wrote for `event_id`, waiting for it (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = client.hget("vigil:decisions:redis:events", event_id)
        if raw is not None:
            verdict: str = orjson.loads(raw)["verdict"]
            return verdict
        time.sleep(0.05)
    return None


def _wait(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not check():
        time.sleep(0.05)
    return bool(check())


def test_a_reload_whose_own_tests_fail_is_refused(redis_client: Any, redis_url: str, rules_dir: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vigil.workers")
    stop = threading.Event()
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(_run(redis_url, [str(rules_dir)], stop=stop,
                                                                idle_exit=None)))
    thread.start()
    try:
        assert _verdict(redis_client, _post(redis_client, 0)) == "allow"
        main = rules_dir / "main.vigil"
        main.write_text(RULES + EVERY_POST + FAILING_TEST)  # the checker passes it; its own test does not
        assert _wait(lambda: "refused by the gate" in caplog.text), caplog.text
        assert "a calm post is allowed" in caplog.text and "expected verdict allow, got review" in caplog.text
        assert _verdict(redis_client, _post(redis_client, 1)) == "allow"  # the running version kept deciding
        main.write_text(RULES + EVERY_POST + PASSING_TEST)
        assert _wait(lambda: "rules version" in caplog.text and "active (from disk" in caplog.text)
        assert _verdict(redis_client, _post(redis_client, 2)) == "review"
    finally:
        stop.set()
        thread.join(10)
    assert result and result[0].reloads == 1


def test_a_worker_does_not_start_on_rules_whose_tests_fail(redis_client: Any, redis_url: str,
                                                           rules_dir: Path) -> None:
    (rules_dir / "main.vigil").write_text(RULES + EVERY_POST + FAILING_TEST)
    with pytest.raises(click.ClickException) as info:
        _run(redis_url, [str(rules_dir)])
    message = info.value.message
    assert message.startswith("rules refused, so the worker did not start: 1 of the rules' 1 tests failed")
    assert "a calm post is allowed" in message
    assert redis_client.hlen("vigil:decisions:redis:events") == 0


def test_a_version_uploaded_to_the_store_is_not_replaced_by_the_workers_rules(
        redis_client: Any, redis_url: str, rules_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "vigil.sqlite"
    store = SqliteStore(db)
    try:
        uploaded = store.add_rules_version("uploaded", {"main.vigil": EVERY_POST}, ("main.vigil",), author="admin",
                                           message="through the API", now=0.0)
        store.activate_rules_version(uploaded.seq)
    finally:
        store.close()
    _post(redis_client, 0)
    stats = _run(redis_url, [str(rules_dir)], store=str(db))  # auto: the store's version was uploaded
    assert stats.decided == 1
    assert _verdict(redis_client, "h0") == "review"
    with pytest.raises(click.UsageError, match="seeding the store"):
        _run(redis_url, [str(rules_dir / "main.vigil")], store=str(tmp_path / "empty.sqlite"), rules_source="store")


def test_a_worker_following_the_store_ignores_an_edit_on_disk(redis_client: Any, redis_url: str, rules_dir: Path,
                                                              tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vigil.workers")
    db = tmp_path / "vigil.sqlite"
    stop = threading.Event()
    thread = threading.Thread(target=lambda: _run(redis_url, [str(rules_dir)], store=str(db), stop=stop,
                                                  idle_exit=None, rules_source="store"))
    thread.start()
    try:
        assert _verdict(redis_client, _post(redis_client, 0)) == "allow"  # seeded from the directory
        (rules_dir / "main.vigil").write_text(RULES + EVERY_POST)  # not loaded: the store is the source
        store = SqliteStore(db)
        try:
            assert [v.seq for v in store.list_rules_versions()] == [1]
            other = store.add_rules_version("other", {"r.vigil": 'rule "All" when event is "post" then block\n'},
                                            ("r.vigil",), author="admin", message="", now=0.0)
            store.activate_rules_version(other.seq)
        finally:
            store.close()
        assert _wait(lambda: f"active (from store version {other.seq})" in caplog.text), caplog.text
        assert _verdict(redis_client, _post(redis_client, 1)) == "block"
        assert "from disk" not in caplog.text
    finally:
        stop.set()
        thread.join(10)


def test_a_refused_store_version_is_tried_again_after_the_retry_interval() -> None:
    from vigil.engine import Engine
    from vigil.gate import Gate
    from vigil.stores.memory import MemoryStore
    from vigil.workers.loop import RulesWatcher

    store = MemoryStore()

    def activate(text: str) -> None:
        stored = store.add_rules_version(text[:8], {"main.vigil": text}, ("main.vigil",), author="admin", message="",
                                         now=0.0)
        store.activate_rules_version(stored.seq)

    activate(RULES)
    engine = Engine(Gate().admit({"main.vigil": RULES}, ("main.vigil",)))
    try:
        patient = RulesWatcher(engine, Gate(), source="store", store=store, retry_interval=3600.0)
        eager = RulesWatcher(engine, Gate(), source="store", store=store, retry_interval=0.0)
        activate(RULES + EVERY_POST + FAILING_TEST)
        for _ in range(2):
            assert not patient.poll() and not eager.poll()
        assert (patient.rejected, eager.rejected) == (1, 2)  # the patient one waits its interval
        activate(RULES + EVERY_POST + PASSING_TEST)  # a new version is tried at once, whatever the interval
        assert patient.poll() and patient.reloads == 1
    finally:
        engine.close()


def test_a_worker_follows_the_rule_stages_in_the_store() -> None:
    """A rule paused in the store (by a person through the API or the CLI, or by the guard) stops in the
    worker at its next round, and runs again once the pause is rolled back."""
    from vigil.audit import AuditLog
    from vigil.engine import Engine
    from vigil.events import parse_event
    from vigil.gate import Gate
    from vigil.lifecycle.states import RuleStates
    from vigil.stores.memory import MemoryStore
    from vigil.workers.loop import RulesWatcher

    store = MemoryStore()
    text = RULES + EVERY_POST
    stored = store.add_rules_version("v", {"main.vigil": text}, ("main.vigil",), author="admin", message="", now=0.0)
    store.activate_rules_version(stored.seq)
    audit = AuditLog.over(store)
    states = RuleStates.over(store, audit)
    gate = Gate(states=states)
    written = gate.admit({"main.vigil": text}, ("main.vigil",))
    engine = Engine(gate.running(written))

    def verdict() -> str:
        return engine.decide(parse_event({"type": "post", "id": f"e{time.monotonic_ns()}", "time": T0,
                                          "actor": {"id": "u"}, "text": "calm"})).verdict

    try:
        watcher = RulesWatcher(engine, gate, source="store", store=store, written=written)
        assert not watcher.poll() and verdict() == "review"
        states.change("Every post", "paused", actor="alice")
        assert watcher.poll() and verdict() == "allow"
        assert not watcher.poll()  # nothing changed since
        states.rollback("Every post", actor="alice")
        assert watcher.poll() and verdict() == "review"
    finally:
        engine.close()
        states.close()
        audit.close()

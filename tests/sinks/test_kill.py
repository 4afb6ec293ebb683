"""kill -9 of `vigil run` and of `vigil serve` in the middle of delivering its outputs to a webhook: a restart delivers every
message, and the receiver holds each key once (it drops the one it got before the kill by its key)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from backends.servers import free_port

from vigil.stores.sqlite import SqliteStore

from .conftest import RULES, scam_posts
from .receiver import Received, receiver

ROOT = Path(__file__).resolve().parents[2]
SECRET = "kill-test-secret"
EVENTS = 200


def _config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "vigil.toml"
    config.write_text(f"""
[store]
url = "{tmp_path / 'state.sqlite'}"

[sinks.hook]
kind = "webhook"
url = "http://127.0.0.1:{port}/hook"
secret = "{SECRET}"
timeout = 5.0
poll = 0.05
lease = 1.0
backoff = 0.2
batch = 20

[outputs]
redact = "hook"
""")
    return config


def _run(rules: Path, events: Path, config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "from vigil.cli import main; main()", "run", str(rules),
                             "--events", str(events), "--config", str(config), "--out", os.devnull],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def test_vigil_run_killed_mid_delivery_then_restarted_delivers_each_key_once(tmp_path: Path) -> None:
    rules = tmp_path / "rules.vigil"
    rules.write_text(RULES)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(scam_posts(EVENTS)) + b"\n")
    port = free_port()
    config = _config(tmp_path, port)
    state = Received(SECRET.encode(), hold_at=EVENTS // 3)
    with receiver(port, SECRET.encode(), state) as got:
        first = _run(rules, events, config)
        assert got.held.wait(120), "the receiver never got a third of the messages"
        first.send_signal(signal.SIGKILL)  # while the receiver holds its answer to one message
        first.wait(30)
        got.release.set()
        assert first.stderr is not None
        first.stderr.close()
        store = SqliteStore(tmp_path / "state.sqlite")
        left = store.outbox_status()["hook"].pending
        store.close()
        assert 0 < left < EVENTS  # some delivered, some waiting, one of them the receiver already has
        # The restart decides the same events again (their messages are in the outbox once) and delivers.
        time.sleep(1.1)  # the killed process's claim (lease = 1 s) runs out
        second = _run(rules, events, config)
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 0, stderr.decode()
    assert sorted(int(m["params"]["post"][1:]) for m in got.messages.values()) == list(range(EVENTS))
    assert got.duplicates >= 1 and got.bad_signatures == 0 and got.key_mismatches == 0
    store = SqliteStore(tmp_path / "state.sqlite")
    assert store.outbox_status().get("hook") is None  # nothing waits
    store.close()


def _serve(rules: Path, config: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "from vigil.cli import main; main()", "serve", "--rules", str(rules),
                             "--config", str(config), "--port", str(port), "--log-level", "warning"],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _wait(condition: Callable[[], bool], seconds: float = 120.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_vigil_serve_killed_mid_delivery_then_restarted_delivers_each_key_once(tmp_path: Path) -> None:
    from vigil.service.auth import create_token

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.vigil").write_text(RULES)
    port = free_port()
    config = _config(tmp_path, port)
    store = SqliteStore(tmp_path / "state.sqlite")
    token = create_token(store, "app", ["ingest"])[1].get_secret_value()
    reader = create_token(store, "ops", ["read"])[1].get_secret_value()
    store.close()
    state = Received(SECRET.encode(), hold_at=EVENTS // 3)
    service_port = free_port()
    base = f"http://127.0.0.1:{service_port}"
    with receiver(port, SECRET.encode(), state) as got:
        first = _serve(rules, config, service_port)
        try:
            assert _wait(lambda: _ready(base)), "vigil serve did not start"
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, timeout=30) as client:
                for raw in scam_posts(EVENTS):
                    assert client.post("/v1/events", content=raw).status_code == 200
            assert got.held.wait(120), "the receiver never got a third of the messages"
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        got.release.set()
        second = _serve(rules, config, service_port)
        try:
            assert _wait(lambda: len(got.messages) == EVENTS), f"{len(got.messages)} of {EVENTS} delivered"
            # Its /metrics counts what it delivered after the restart, per sink, and nothing waits.
            metrics = ""

            def settled() -> bool:
                nonlocal metrics
                metrics = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {reader}"}).text
                return 'vigil_sink_pending{sink="hook"} 0.0' in metrics

            assert _wait(settled), metrics
            assert 'vigil_sink_lag_seconds{sink="hook"} 0.0' in metrics
            delivered = float(metrics.split('vigil_sink_delivered_total{sink="hook"} ')[1].split()[0])
            assert 0 < delivered < EVENTS  # the rest were delivered before the kill
        finally:
            second.terminate()
            second.wait(30)
    assert sorted(int(m["params"]["post"][1:]) for m in got.messages.values()) == list(range(EVENTS))
    assert got.duplicates >= 1 and got.bad_signatures == 0
    assert {m["event"]["source"] for m in got.messages.values()} == {"http:app"}

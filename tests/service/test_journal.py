"""Events accepted with 202 (?mode=async) are durable: journalled in the store before the answer, and
replayed when the service starts again. Checked with a real kill -9 of a `vigil serve` process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from vigil.service.auth import create_token
from vigil.stores.sqlite import SqliteStore

from .helpers import post, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve(db: Path, rules: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "from vigil.cli import main; main()", "serve", "--rules", str(rules),
                             "--db", str(db), "--port", str(port), "--log-level", "warning"],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _ingest_token(db: Path) -> str:
    """A new store at ``db`` holding one ingest token; its secret, for the service started over it."""
    store = SqliteStore(db)
    try:
        return create_token(store, "i", ["ingest"])[1].get_secret_value()
    finally:
        store.close()


def _labelled(db: Path) -> set[str]:
    store = SqliteStore(db)
    try:
        return {r.key for r in store.load_labels() if r.label == "potty-mouth"}
    finally:
        store.close()


def test_events_accepted_with_202_survive_kill_9(tmp_path: Path, rules_dir: Path) -> None:
    db = tmp_path / "vigil.sqlite"
    secret = _ingest_token(db)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(db, rules_dir, port)
    accepted: set[str] = set()
    try:
        assert wait_for(lambda: _ready(base), timeout=60), "vigil serve did not start"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=30) as client:
            for batch in range(5):  # each event labels its own user: one durable write per decision
                events = [post("a badword", user=f"k{batch}-{i}") for i in range(1000)]
                answer = client.post("/v1/events/batch?mode=async", json=events)
                assert answer.status_code == 202
                accepted |= {f"k{batch}-{i}" for i, r in enumerate(answer.json()["results"]) if r["status"] == "queued"}
        proc.send_signal(signal.SIGKILL)  # at once: most accepted events are still waiting to be decided
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(accepted) == 5000
    before_restart = _labelled(db)
    proc = _serve(db, rules_dir, port)
    try:
        assert wait_for(lambda: _ready(base), timeout=60), "vigil serve did not start again"
        assert wait_for(lambda: _labelled(db) >= accepted, timeout=120), (
            f"{len(accepted - _labelled(db))} of {len(accepted)} accepted events were never decided "
            f"({len(before_restart)} decided before the kill)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert _labelled(db) == accepted
    store = SqliteStore(db)
    try:
        assert store.journal_pending() == []  # every replayed event left the journal once decided
    finally:
        store.close()

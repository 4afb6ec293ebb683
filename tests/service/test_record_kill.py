"""A restart loses no decision: a real `vigil serve` killed with SIGKILL right after answering has every
answered decision in the record, and a restarted one answers from it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from vigil.record.sqlite import SqliteRecord
from vigil.service.auth import create_token
from vigil.stores.sqlite import SqliteStore

from .helpers import post, wait_for


def _serve(db: Path, rules_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", "from vigil.cli import main; main()", "serve", "--rules",
                             str(rules_dir), "--db", str(db), "--port", str(port), "--log-level", "warning"],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_for(up, timeout=60), "vigil serve did not start"
    return proc, base


def test_kill_9_loses_no_answered_decision(tmp_path: Path, rules_dir: Path) -> None:
    db = tmp_path / "vigil.sqlite"
    store = SqliteStore(db)
    headers = {"Authorization": f"Bearer {create_token(store, 'a', ['admin'])[1].get_secret_value()}"}
    store.close()
    proc, base = _serve(db, rules_dir)
    answered: dict[str, str] = {}
    lock = threading.Lock()

    def send(worker: int) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for n in range(40):
                body = post("a badword" if n % 3 == 0 else "hello", user=f"k{worker}-{n % 4}")
                verdict = client.post("/v1/events", json=body).json()["verdict"]
                with lock:
                    answered[body["id"]] = verdict

    try:
        senders = [threading.Thread(target=send, args=(w,)) for w in range(4)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
    finally:
        proc.send_signal(signal.SIGKILL)  # no shutdown: what was answered must already be written
        proc.wait(timeout=30)
    record = SqliteRecord(tmp_path / "record.sqlite")
    try:
        stored = {event_id: record.get("http:a", event_id) for event_id in answered}
    finally:
        record.close()
    assert all(s is not None for s in stored.values()), [k for k, s in stored.items() if s is None]
    assert {k: s.verdict for k, s in stored.items() if s is not None} == answered
    # A restarted service answers from the record what it no longer holds in memory.
    proc, base = _serve(db, rules_dir)
    try:
        some = next(iter(answered))
        outcome = httpx.get(f"{base}/v1/decisions/{some}", headers=headers).json()
        assert outcome["recorded"] is True and outcome["decision"]["verdict"] == answered[some]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

"""End to end over a real socket: uvicorn on a free loopback port, as `vigil serve` runs it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from vigil.service import ServiceSettings, create_app
from vigil.service.auth import create_token
from vigil.stores.sqlite import SqliteStore

from .helpers import post, wait_for

BROKEN = 'rule "Oops"\n  when event is "post" and nope > 1\n  then flag\n'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path, rules_dir: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    store = SqliteStore(tmp_path / "e2e.sqlite")
    secrets = {scope: create_token(store, scope, [scope])[1].get_secret_value() for scope in ("ingest", "admin")}
    port = _free_port()
    app = create_app(ServiceSettings(port=port, rules_dir=str(rules_dir), rules_source="store", reload_interval=0.2),
                     store)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                            lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    assert wait_for(lambda: uv.started, timeout=20), "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}", secrets, tmp_path / "e2e.sqlite"
    finally:
        uv.should_exit = True
        thread.join(timeout=20)


def test_serving_over_a_socket(server: tuple[str, dict[str, str], Path]) -> None:
    base, secrets, db = server
    ingest = {"Authorization": f"Bearer {secrets['ingest']}", "Content-Type": "application/json"}
    admin = {"Authorization": f"Bearer {secrets['admin']}"}
    failures: list[str] = []
    sent = 0
    stop = threading.Event()

    def traffic() -> None:
        nonlocal sent
        with httpx.Client(base_url=base, headers=ingest, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post("/v1/events", json=post("loud!!!!!"))
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text}")
                except httpx.HTTPError as error:
                    failures.append(repr(error))
                sent += 1

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/readyz").json()["status"] == "ready"
            assert wait_for(lambda: sent > 50)
            # A broken upload while traffic flows: rejected with file:line:col; the old version serves on.
            rejected = client.post("/v1/rules", json={"files": {"main.vigil": BROKEN}}, headers=admin)
            assert rejected.status_code == 422
            texts = [d["text"] for d in rejected.json()["error"]["diagnostics"]]
            assert any(t.startswith("main.vigil:2:28: error") for t in texts), texts
            assert client.get("/v1/rules", headers=admin).json()["seq"] == 1
            # Bad input over the wire: each a clear 4xx, nothing else affected.
            assert client.post("/v1/events", content=b"{nope", headers=ingest).status_code == 400
            assert client.post("/v1/events", json={"type": "post"}, headers=ingest).status_code == 422
            assert client.post("/v1/events", json=post("x"), headers={"Authorization": "Bearer x"}).status_code == 401
            big = client.post("/v1/events", content=b"{" + b" " * (10 << 20), headers=ingest)
            assert big.status_code == 413
            done = sent
            assert wait_for(lambda: sent > done + 50)
            metrics = client.get("/metrics", headers=admin).text
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert "vigil_dead_letters_total 3.0" in metrics  # malformed, invalid, too large
    assert 'vigil_rule_hits_total{mode="live",rule="Shouting"}' in metrics
    store = SqliteStore(db)
    try:
        assert store.count_dead_letters() == 3
    finally:
        store.close()


def test_stopping_decides_every_accepted_event(tmp_path: Path, rules_dir: Path) -> None:
    store = SqliteStore(tmp_path / "drain.sqlite")
    secret = create_token(store, "i", ["ingest"])[1].get_secret_value()
    port = _free_port()
    app = create_app(ServiceSettings(rules_dir=str(rules_dir)), store)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    assert wait_for(lambda: uv.started, timeout=20)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {secret}"}) as c:
        batch = [post("a badword", user=f"d{i}") for i in range(500)]
        assert c.post("/v1/events/batch?mode=async", json=batch).json()["accepted"] == 500
    uv.should_exit = True
    thread.join(timeout=20)
    reopened = SqliteStore(tmp_path / "drain.sqlite")
    try:
        labelled = {r.key for r in reopened.load_labels() if r.label == "potty-mouth"}
    finally:
        reopened.close()
    assert len(labelled) == 500

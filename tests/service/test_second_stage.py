"""Rules that wait for a policy model, served: the decision comes at once, the second stage follows on the
same event id. The model is a loopback fake of the chat-completions protocol (no weights can run here)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from classifiers.fake_openai import FakeOpenAI, Reply
from starlette.testclient import TestClient

from vigil.service import ServiceSettings, create_app
from vigil.service.auth import create_token
from vigil.signals.providers import build_signals
from vigil.stores.sqlite import SqliteStore

from .helpers import wait_for

RULES = """
entity user = event.actor.id
rule "Any message" when event is "message" then flag
rule "Harassment by policy"
  when event is "message" and policy "harassment" finds event.text violating
  then block, label user "harasser" for 1 day
"""

POLICY = "# Harassment\n\n## Instructions\nAnswer 1 if the text insults a person, else 0.\n"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    server.script = lambda body: Reply(content="1" if "idiot" in str(body["messages"][-1]) else "0")
    yield server
    server.stop()


def test_the_second_stage_upgrades_the_verdict_on_the_same_event(tmp_path: Path, fake: FakeOpenAI) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.vigil").write_text(RULES)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "harassment.md").write_text(POLICY)
    signals = build_signals(classifiers_dir=str(tmp_path / "none"), policies_dir=str(tmp_path / "policies"),
                            endpoint=fake.base_url, timeout_s=5.0)
    settings = ServiceSettings(rules_dir=str(tmp_path / "rules"), auth=False, reload_interval=0.5)
    store = SqliteStore(tmp_path / "vigil.sqlite")
    with TestClient(create_app(settings, store, signals=signals), base_url="http://localhost") as client:
        # Now: the labels API judges expiry against the clock.
        event = {"type": "message", "id": "m1", "time": time.time(), "actor": {"id": "u1"}, "text": "you idiot"}
        first = client.post("/v1/events", json=event).json()
        assert first["verdict"] == "flag" and first["pending"] is True

        def second() -> Callable[[], bool]:
            return lambda: "second_stage" in client.get("/v1/decisions/m1").json()

        assert wait_for(second(), timeout=10.0)
        outcome = client.get("/v1/decisions/m1").json()
        assert outcome["decision"]["verdict"] == "flag"
        assert outcome["second_stage"]["verdict"] == "block" and outcome["second_stage"]["stage"] == 2
        assert outcome["second_stage"]["rules"] == ["Harassment by policy"]
        labels = client.get("/v1/entities/user/u1/labels").json()
        assert any(label["label"] == "harasser" for label in labels["labels"])


def test_the_second_stage_joins_the_event_of_its_own_source(tmp_path: Path, fake: FakeOpenAI) -> None:
    """Two tokens send an event of one id, both waiting for the model: each second stage joins its own
    source's first decision (it was joined by id alone, so the insult's block landed on the other's)."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.vigil").write_text(RULES)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "harassment.md").write_text(POLICY)
    gate = threading.Event()

    def answer(body: dict[str, Any]) -> Reply:
        gate.wait(10)  # hold the first model call until both events are waiting in the second stage
        return Reply(content="1" if "idiot" in str(body["messages"][-1]) else "0")

    fake.script = answer
    signals = build_signals(classifiers_dir=str(tmp_path / "none"), policies_dir=str(tmp_path / "policies"),
                            endpoint=fake.base_url, timeout_s=20.0)
    store = SqliteStore(tmp_path / "vigil.sqlite")
    secrets = {name: create_token(store, name, ["ingest"])[1].get_secret_value() for name in ("zed", "amy")}
    settings = ServiceSettings(rules_dir=str(tmp_path / "rules"), reload_interval=0.5, token_cache_seconds=0.0)

    def auth(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secrets[name]}"}

    with TestClient(create_app(settings, store, signals=signals), base_url="http://localhost") as client:
        now = time.time()
        rude = {"type": "message", "id": "m1", "time": now, "actor": {"id": "u1"}, "text": "you idiot"}
        kind = {"type": "message", "id": "m1", "time": now, "actor": {"id": "u2"}, "text": "thank you"}
        assert client.post("/v1/events", json=rude, headers=auth("zed")).json()["pending"] is True
        assert client.post("/v1/events", json=kind, headers=auth("amy")).json()["pending"] is True
        gate.set()
        for name in ("zed", "amy"):
            assert wait_for(lambda name=name: "second_stage" in client.get("/v1/decisions/m1", headers=auth(name)).json(),
                            timeout=20.0)
        zed = client.get("/v1/decisions/m1", headers=auth("zed")).json()
        amy = client.get("/v1/decisions/m1", headers=auth("amy")).json()
        assert zed["second_stage"]["verdict"] == "block" and zed["second_stage"]["source"] == "http:zed"
        assert amy["second_stage"]["verdict"] == "flag" and amy["second_stage"]["rules"] == []

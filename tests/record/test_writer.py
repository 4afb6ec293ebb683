"""The engine's hook: every decision with its event reaches the record, redacted, off the hot path."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from vigil.dsl.loader import load_ruleset
from vigil.effects import Decision
from vigil.engine import Engine
from vigil.events import parse_event
from vigil.record.open import attach_record, record_url
from vigil.record.settings import record_settings

RULES = """
entity user = event.user.id
entity email = event.user.email
entity ip = event.ip
rule "Burst" when event is "post" and count of "post" by user in the last 1 hour >= 3 then review, label user "bursty"
"""


def engine_with_record(tmp_path: Path, **settings: Any) -> Engine:
    engine = Engine(load_ruleset("r.vigil", files={"r.vigil": RULES}))
    attach_record(engine, {"url": str(tmp_path / "record.sqlite"), **settings}, None)
    return engine


def post(n: int, **extra: Any) -> bytes:
    return orjson.dumps({"type": "post", "id": f"p{n}", "time": 1000 + n, "user": {"id": "u1", "email": "a@b.c"},
                         "ip": "10.0.0.1", **extra})


def test_every_decision_is_stored_as_made(tmp_path: Path) -> None:
    engine = engine_with_record(tmp_path)
    decisions = [engine.decide(replace(parse_event(post(n)), source="feed")) for n in range(5)]
    assert engine.recorder is not None
    engine.recorder.flush()
    record = engine.recorder.record  # type: ignore[attr-defined]
    for decision in decisions:
        assert isinstance(decision, Decision)
        stored = record.get("feed", decision.event_id)
        assert stored is not None
        assert stored.decisions == (orjson.loads(orjson.dumps(decision.to_json())),)
        assert stored.verdict == decision.verdict and stored.ruleset == decision.ruleset_version
    third = record.get("feed", "p2")
    assert third.verdict == "review" and third.rules == ("Burst",)
    assert third.decisions[0]["explanation"][0]["features"]  # the feature values the rule used
    assert third.event["user"] == {"id": "u1", "email": "a@b.c"}
    assert set(third.entities) == {("user", "u1"), ("email", "a@b.c"), ("ip", "10.0.0.1")}
    engine.close()


def test_durable_decisions_are_written_before_they_are_answered(tmp_path: Path) -> None:
    engine = engine_with_record(tmp_path, durable=True, flush_interval=30)
    for n in range(3):
        engine.process(post(n))
        assert engine.recorder.record.count() == n + 1  # type: ignore[union-attr]
    engine.close()


def test_closing_the_engine_writes_what_is_queued(tmp_path: Path) -> None:
    engine = engine_with_record(tmp_path, flush_interval=30, batch_size=10_000)
    for n in range(50):
        engine.process(post(n))
    engine.close()
    from vigil.record.sqlite import SqliteRecord

    reopened = SqliteRecord(tmp_path / "record.sqlite")
    assert reopened.count() == 50
    reopened.close()


def test_redaction_drops_hashes_and_never_stores_media(tmp_path: Path) -> None:
    image = base64.b64encode(bytes(range(256)) * 40).decode()
    engine = engine_with_record(tmp_path, redact={"user.email": "hash", "ip": "hash", "password": "drop"},
                                hash_key="secret-key", media_fields=["avatar"])
    engine.process(post(1, password="hunter2", avatar="aGVsbG8=", attachment=f"data:image/png;base64,{image}"))
    engine.recorder.flush()  # type: ignore[union-attr]
    record = engine.recorder.record  # type: ignore[union-attr]
    stored = record.get("", "p1")
    expected_email = "hmac:" + hmac.new(b"secret-key", b"a@b.c", hashlib.sha256).hexdigest()[:32]
    assert "password" not in stored.event
    assert stored.event["user"] == {"id": "u1", "email": expected_email}
    assert stored.event["avatar"] == {"media": True, "bytes": 5, "sha256": hashlib.sha256(b"hello").hexdigest()}
    raw_image = bytes(range(256)) * 40
    assert stored.event["attachment"] == {"media": True, "bytes": len(raw_image),
                                          "sha256": hashlib.sha256(raw_image).hexdigest()}
    # The entity-key index holds the hash too, so a timeline of the hashed address still finds it.
    assert ("email", expected_email) in stored.entities
    assert "a@b.c" not in (tmp_path / "record.sqlite").read_bytes().decode("latin-1")
    assert "hunter2" not in (tmp_path / "record.sqlite").read_bytes().decode("latin-1")
    engine.close()


def test_hashing_without_a_key_is_refused_with_what_to_set() -> None:
    with pytest.raises(ValueError, match="set record.hash_key"):
        record_settings({"redact": {"user.email": "hash"}})
    with pytest.raises(ValueError, match="record.colour"):
        record_settings({"colour": "blue"})


def test_retention_runs_in_the_background(tmp_path: Path) -> None:
    engine = engine_with_record(tmp_path, max_events=10, prune_interval=0.01, flush_interval=0.01)
    for n in range(30):
        engine.process(post(n))
    engine.recorder.flush()  # type: ignore[union-attr]
    engine.process(post(99))
    engine.close()
    from vigil.record.sqlite import SqliteRecord

    reopened = SqliteRecord(tmp_path / "record.sqlite")
    assert reopened.count() <= 11 and reopened.get("", "p99") is not None
    reopened.close()


def test_where_the_record_goes() -> None:
    s = record_settings({})
    assert record_url(s, "vigil-data/vigil.sqlite") == "vigil-data/record.sqlite"
    assert record_url(s, "sqlite:////srv/v/state.sqlite") == "/srv/v/record.sqlite"
    assert record_url(s, "postgresql://u@h/db") == "postgresql://u@h/db"
    assert record_url(s, None) is None and record_url(s, "memory:") is None
    assert record_url(record_settings({"enabled": True}), None) == "memory:"
    assert record_url(record_settings({"enabled": False}), "vigil-data/vigil.sqlite") is None


def test_a_value_orjson_cannot_encode_is_stored_and_never_stalls_the_writer(tmp_path: Path) -> None:
    """A value nested past orjson's limit made the writer retry for ever, and a durable decision wait."""
    engine = engine_with_record(tmp_path, durable=True)
    deep: Any = "bottom"
    for _ in range(300):
        deep = [deep]
    base = orjson.loads(post(1))
    engine.decide(parse_event({**base, "meta": deep}, max_depth=1000))
    engine.process({**base, "id": "p2", "odd": "\ud800"})
    record = engine.recorder.record  # type: ignore[union-attr]
    assert record.count() == 2
    assert "nested too deep" in orjson.dumps(record.get("", "p1").event).decode()
    engine.close()


def test_decisions_answered_together_are_all_written_when_the_block_ends(tmp_path: Path) -> None:
    from vigil.record.writer import answered_together

    engine = engine_with_record(tmp_path, durable=True, flush_interval=30)
    with answered_together(engine):
        for n in range(20):
            engine.process(post(n))
    assert engine.recorder.record.count() == 20  # type: ignore[union-attr]
    engine.close()

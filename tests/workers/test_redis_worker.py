"""`vigil worker` over Redis Streams against a real redis-server: decisions, acknowledgements, dead
letters, claims from a dead consumer, poison messages, hot reload, graceful stop."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from vigil.settings import Settings, StoreSettings, WorkerSettings
from vigil.workers.cli import run_worker

from .conftest import T0, add_events, events


def _settings(redis_url: str, **worker: Any) -> Settings:
    return Settings(store=StoreSettings(url=SecretStr("memory:"), redis=SecretStr(redis_url)),
                    worker=WorkerSettings(**{"claim_idle": 1.0, "reload_interval": 0.2, **worker}))


def _run(redis_url: str, rules_dir: Path, *, stop: threading.Event | None = None, output: str | None = None,
         max_events: int | None = None, idle_exit: float | None = 1.5, consumer: str = "w1", **worker: Any) -> Any:
    return run_worker(_settings(redis_url, **worker), rules=[str(rules_dir)], stream_redis=redis_url,
                      stream="events", bootstrap=None, topic=None, group="g", consumer=consumer, output=output,
                      max_events=max_events, idle_exit=idle_exit, stop=stop)


def _decisions(client: Any) -> dict[str, dict[str, Any]]:
    return {k.decode(): orjson.loads(v) for k, v in client.hgetall("vigil:decisions:redis:events").items()}


def test_decides_acknowledges_and_publishes(redis_client: Any, redis_url: str, rules_dir: Path) -> None:
    add_events(redis_client, "events", events(300))
    redis_client.xadd("events", {"event": b"{not json"})
    stats = _run(redis_url, rules_dir, output="decisions")
    assert stats.decided == 300 and stats.dead == 1
    decisions = _decisions(redis_client)
    assert len(decisions) == 300
    assert redis_client.xlen("decisions") == 300
    assert redis_client.xpending("events", "g")["pending"] == 0
    dead = redis_client.xrange("events:dead")
    assert len(dead) == 1 and b"not valid JSON" in dead[0][1][b"reason"]


def test_claims_what_a_dead_consumer_left_pending(redis_client: Any, redis_url: str, rules_dir: Path) -> None:
    add_events(redis_client, "events", events(50))
    redis_client.xgroup_create("events", "g", id="0")
    taken = redis_client.xreadgroup("g", "dead-worker", {"events": ">"}, count=20)  # then it dies
    assert len(taken[0][1]) == 20
    stats = _run(redis_url, rules_dir, idle_exit=3.0)
    assert stats.decided == 50
    assert len(_decisions(redis_client)) == 50
    assert redis_client.xpending("events", "g")["pending"] == 0


def test_a_redelivered_event_counts_once(redis_client: Any, redis_url: str, rules_dir: Path) -> None:
    one = orjson.dumps({"type": "purchase", "id": "p1", "time": T0, "user": "u", "amount": 300})
    redis_client.xadd("events", {"event": one})
    redis_client.xadd("events", {"event": one})  # the producer sent it twice
    redis_client.xadd("events", {"event": orjson.dumps({"type": "purchase", "id": "p2", "time": T0, "user": "u",
                                                         "amount": 300})})
    _run(redis_url, rules_dir)
    decisions = _decisions(redis_client)
    assert decisions["p1"]["verdict"] == "allow"
    assert decisions["p2"]["verdict"] == "flag"  # 600 > 500, not 900


def test_two_streams_reusing_an_id_are_two_events(redis_client: Any, redis_url: str, rules_dir: Path) -> None:
    """Ids are unique per stream only: the second stream's p1 is another purchase (it was taken for a
    redelivery of the first's, so it counted nothing, and its decision overwrote the first's)."""
    def purchase(event_id: str) -> bytes:
        return orjson.dumps({"type": "purchase", "id": event_id, "time": T0, "user": "u", "amount": 300})

    redis_client.xadd("shop", {"event": purchase("p1")})
    redis_client.xadd("app", {"event": purchase("p1")})
    redis_client.xadd("app", {"event": purchase("p2")})
    for stream in ("shop", "app"):
        run_worker(_settings(redis_url), rules=[str(rules_dir)], stream_redis=redis_url, stream=stream,
                   bootstrap=None, topic=None, group="g", consumer="w1", output=None, idle_exit=1.5)
    shop = {k.decode(): orjson.loads(v) for k, v in redis_client.hgetall("vigil:decisions:redis:shop").items()}
    app = {k.decode(): orjson.loads(v) for k, v in redis_client.hgetall("vigil:decisions:redis:app").items()}
    assert shop["p1"]["verdict"] == "allow" and shop["p1"]["source"] == "redis:shop"
    assert app["p1"]["verdict"] == "flag" and app["p1"]["source"] == "redis:app"  # 600 > 500
    assert app["p2"]["verdict"] == "flag"
    # A configured source names the events instead of the stream: here both streams' p1 are one event
    redis_client.flushdb()
    redis_client.xadd("shop", {"event": purchase("p1")})
    redis_client.xadd("app", {"event": purchase("p1")})
    for stream in ("shop", "app"):
        run_worker(_settings(redis_url), rules=[str(rules_dir)], stream_redis=redis_url, stream=stream,
                   bootstrap=None, topic=None, group="g", consumer="w1", output=None, idle_exit=1.5,
                   event_source="checkout")
    assert orjson.loads(redis_client.hget("vigil:decisions:checkout", "p1"))["verdict"] == "allow"


def test_poison_messages_go_to_the_dead_letter_stream(redis_client: Any, redis_url: str, rules_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.stores.redis_counters import RedisCounters

    real = RedisCounters.add_many

    def failing(self: Any, event_id: str, sec: int, updates: Any) -> Any:
        if event_id.endswith("\x1fbad"):  # the event key: source and id
            raise ConnectionError("backend says no")
        return real(self, event_id, sec, updates)

    monkeypatch.setattr(RedisCounters, "add_many", failing)
    add_events(redis_client, "events", events(20))
    redis_client.xadd("events", {"event": orjson.dumps({"type": "post", "id": "bad", "time": T0, "user": "u"})})
    stats = _run(redis_url, rules_dir, idle_exit=6.0, max_attempts=3, claim_idle=0.3)
    assert stats.decided == 20
    dead = redis_client.xrange("events:dead")
    assert len(dead) == 1 and b'"bad"' in dead[0][1][b"event"]
    assert redis_client.xpending("events", "g")["pending"] == 0


def test_hot_reload_from_disk_without_dropping_events(redis_client: Any, redis_url: str, rules_dir: Path) -> None:
    stop = threading.Event()
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(_run(redis_url, rules_dir, stop=stop, idle_exit=None)))
    thread.start()
    try:
        def post(i: int) -> None:
            redis_client.xadd("events", {"event": orjson.dumps({"type": "post", "id": f"h{i}", "time": T0 + i,
                                                                 "user": f"u{i}", "ip": "1.1.1.1"})})

        post(0)
        deadline = time.monotonic() + 10
        while "h0" not in _decisions(redis_client) and time.monotonic() < deadline:
            time.sleep(0.05)
        (rules_dir / "main.vigil").write_text((rules_dir / "main.vigil").read_text()
                                               + '\nrule "Every post" when event is "post" then review\n')
        (rules_dir / "broken.vigil").write_text("rule oops")  # rejected: the good version keeps running
        time.sleep(0.5)
        (rules_dir / "broken.vigil").unlink()
        i = 1
        while time.monotonic() < deadline:
            post(i)
            time.sleep(0.1)
            if _decisions(redis_client).get(f"h{i}", {}).get("verdict") == "review":
                break
            i += 1
        decisions = _decisions(redis_client)
        assert decisions[f"h{i}"]["verdict"] == "review"
        assert decisions["h0"]["verdict"] == "allow"
        assert len(decisions) == i + 1  # none dropped across the switch
    finally:
        stop.set()
        thread.join(10)
    assert result and result[0].reloads >= 1

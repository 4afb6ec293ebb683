"""Fixtures for worker tests: a real Redis on loopback, rules in a directory, events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backends.servers import redis_server

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z

RULES = """
entity user = event.user
entity ip = event.ip
define posts = count of "post" by user in the last 30 days
define ips = count distinct event.ip for user in the last 30 days
define spent = sum of event.amount for user today
rule "Busy poster" when event is "post" and posts > 50 then flag, label user "busy" for 30 days
rule "Many places" when ips > 3 then review
rule "Big spender" when spent > 500 then flag
"""


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture()
def redis_client(redis_url: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture()
def rules_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "main.vigil").write_text(RULES)
    return d


def events(n: int, users: int = 500, seed: int = 1) -> list[bytes]:
    """`n` events in time order within two hours: posts and purchases from `users` users."""
    import random

    import orjson

    rng = random.Random(seed)
    out = []
    for i in range(n):
        user = f"u{rng.randrange(users)}"
        t = T0 + 7200 * i // n
        if rng.random() < 0.8:
            ev = {"type": "post", "id": f"e{i}", "time": t, "user": user, "ip": f"10.0.0.{rng.randrange(6)}"}
        else:
            ev = {"type": "purchase", "id": f"e{i}", "time": t, "user": user, "amount": rng.choice([5, 20, 100])}
        out.append(orjson.dumps(ev))
    return out


def add_events(client: Any, stream: str, raws: list[bytes], chunk: int = 5000) -> None:
    for start in range(0, len(raws), chunk):
        pipe = client.pipeline(transaction=False)
        for raw in raws[start:start + chunk]:
            pipe.xadd(stream, {"event": raw})
        pipe.execute()

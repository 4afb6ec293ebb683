"""Fixtures for the sink tests: rules with outputs, a controlled clock, an engine over a SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from backends.servers import redis_server

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z

RULES = """
entity user = event.actor.id
define recent_posts = count of "post" by user in the last 1 hour

rule "Scam link"
  when event is "post" and event.text contains "free crypto"
  then block,
       output "redact" with subject user, reason = "scam", post = event.id, posts = recent_posts,
       label user "scammer" for 30 days

rule "Report"
  when event is "report"
  then review, output "review"
"""


class Clock:
    """Time the test moves: back-off waits pass at once, without sleeping."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture()
def clock() -> Clock:
    return Clock()


def scam_posts(n: int, start: int = 0) -> list[bytes]:
    return [orjson.dumps({"type": "post", "id": f"p{i}", "time": T0 + i, "actor": {"id": f"u{i % 7}"},
                          "text": "free crypto for you"}) for i in range(start, start + n)]


def keys_of(lines: list[dict[str, Any]]) -> list[str]:
    return [line["key"] for line in lines]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server.url

"""Helpers for the HTTP service tests: a rules set, events, a bounded wait, and a handle on a running app."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from vigil.stores.sqlite import SqliteStore

RULES = """\
use "common.vigil"

list "bad-words" from "lists/bad.txt"

rule "Shouting"
  when event is "post" and event.text contains "!!!!!"
  then flag

rule "Bad words"
  when event is "post" and event.text contains any of list "bad-words"
  then review, label user "potty-mouth" for 1 day

rule "Marked users"
  when event is "post" and user has label "suspended"
  then block

rule "Big spender"
  when event is "purchase" and event.amount > 1000
  then review

test "shouting is flagged"
  given "post" from user "u1" with text = "hello!!!!!"
  expect flag
"""
COMMON = "entity user = event.actor.id\n"
BAD_WORDS = "# one a line\nbadword\n"

_ids = itertools.count(1)


def event(etype: str = "post", **data: Any) -> dict[str, Any]:
    return {"type": etype, "id": f"ev{next(_ids)}", "time": round(time.time(), 3), **data}


def post(text: str, user: str = "u1") -> dict[str, Any]:
    return event("post", actor={"id": user}, text=text)


def write_rules(root: Path, main: str = RULES) -> None:
    (root / "lists").mkdir(parents=True, exist_ok=True)
    (root / "common.vigil").write_text(COMMON)
    (root / "lists" / "bad.txt").write_text(BAD_WORDS)
    (root / "main.vigil").write_text(main)


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `check` until it holds or `timeout` passes (bounded: never a timed assertion on speed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@dataclass
class Running:
    client: TestClient
    store: SqliteStore
    rules_dir: Path
    secrets: dict[str, str] = field(default_factory=dict)

    def headers(self, scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[scope]}", "Content-Type": "application/json"}

    def post_event(self, body: Any, scope: str = "ingest", **kwargs: Any) -> Any:
        return self.client.post("/v1/events", json=body, headers=self.headers(scope), **kwargs)

    def get(self, url: str, scope: str = "read", **kwargs: Any) -> Any:
        return self.client.get(url, headers=self.headers(scope), **kwargs)

    def dead_letters(self) -> int:
        return self.store.count_dead_letters()

"""End to end against a real `vigil serve` process configured by vigil.toml, driven by `vigil review`:
a rule sends a user to a queue, a reviewer claims and decides with a label through the CLI, the user's
next event is blocked, and a second reviewer cannot take the item meanwhile."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from click.testing import CliRunner

from tests.backends.servers import free_port, stop
from vigil.audit import AuditLog
from vigil.cli import main
from vigil.people import People, parse_grants
from vigil.service.auth import create_token
from vigil.stores.sqlite import SqliteStore

RULES = """
entity user = event.actor.id
rule "Spam link" when event is "post" and event.text contains "free crypto"
  then flag, output "spam-review" with subject user
rule "Spammer posts" when event is "post" and user has label "spammer" then block
"""
TOML = """
[sinks.review]
kind = "queue"
queue = "spam"
poll = 0.05

[outputs]
"spam-review" = "review"

[queues.spam]
require_reason = true

[queues.spam.actions.spammer]
kind = "label"
label = "spammer"
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.vigil").write_text(RULES)
    (tmp_path / "vigil.toml").write_text(TOML)
    db = tmp_path / "vigil.sqlite"
    store = SqliteStore(db)
    people = People.over(store, AuditLog.over(store), hasher=PasswordHasher.from_parameters(CHEAPEST))
    for name in ("ann", "bob"):  # reviewers are people: their actions are recorded by their names
        people.create(name, parse_grants(["reviewer"]), actor="root")
    people.close()
    tokens = {name: create_token(store, name, scopes, person=person)[1].get_secret_value()
              for name, scopes, person in (("ann", ["review"], "ann"), ("bob", ["review"], "bob"),
                                           ("ingest", ["ingest"], None))}
    store.close()
    port = free_port()
    env = {**os.environ, "VIGIL_CONFIG": str(tmp_path / "vigil.toml")}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from vigil.cli import main; main()", "serve", "--rules", str(rules), "--db", str(db),
                                 "--port", str(port)], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"vigil serve did not start: {log.read_text()}")
        time.sleep(0.1)
    try:
        yield url, tokens
    finally:
        stop(proc)


def _review(url: str, token: str, *args: str) -> str:
    result = CliRunner().invoke(main, ["review", "--url", url, "--token", token, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_review_through_a_real_server_and_the_cli(served: tuple[str, dict[str, str]]) -> None:
    url, tokens = served
    events = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['ingest']}"}, timeout=30)

    def post(n: int, text: str) -> str:
        body = {"type": "post", "id": f"p{n}", "time": time.time(), "actor": {"id": "u1"}, "text": text}
        verdict: str = events.post("/v1/events", json=body).json()["verdict"]
        return verdict

    assert post(1, "free crypto") == "flag"
    deadline = time.monotonic() + 20
    while "user:u1" not in (listing := _review(url, tokens["ann"], "items", "spam")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "user:u1" in listing
    claimed = _review(url, tokens["ann"], "claim", "spam")
    item_id = claimed.split()[0]
    assert "held by ann" in claimed
    refused = CliRunner().invoke(main, ["review", "--url", url, "--token", tokens["bob"], "claim", "--item", item_id])
    assert refused.exit_code != 0 and "409 already_claimed" in refused.output
    no_reason = CliRunner().invoke(main, ["review", "--url", url, "--token", tokens["ann"], "decide", item_id, "spammer"])
    assert no_reason.exit_code != 0 and "422 reason_required" in no_reason.output
    decided = _review(url, tokens["ann"], "decide", item_id, "spammer", "--reason", "scam links")
    assert "decided spammer (label)" in decided
    assert post(2, "hello") == "block"
    assert "1 handled in the last hour" in _review(url, tokens["ann"], "queues")
    events.close()

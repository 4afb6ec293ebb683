"""End to end against a real `vigil serve` process configured by vigil.toml, driven by `vigil review`:
a rule sends a user to a queue, a reviewer claims and decides with a label through the CLI, the user's
next event is blocked, and a second reviewer cannot take the item meanwhile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.review import serving
from vigil.cli import main

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
    # Reviewers are people: their actions are recorded by their names.
    with serving.served(tmp_path, RULES, TOML, {"ann": ["reviewer"], "bob": ["reviewer"]}) as running:
        yield running


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

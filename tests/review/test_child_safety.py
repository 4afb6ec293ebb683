"""Child-safety queues and their items are invisible to everyone without the child_safety_reviewer role
(Coop #1154), admin included: every review route answers 404 as for a queue or item that does not exist,
an item escalated into one disappears from the queue it left, /metrics leaves them out, and every view
by someone who may see them is in the audit log. Over the real app in-process, and once end to end
against a real `vigil serve` driven by `vigil review`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from click.testing import CliRunner
from starlette.testclient import TestClient

from tests.review import serving
from vigil.audit import AuditLog
from vigil.cli import main
from vigil.people import People, parse_grants
from vigil.review import ReviewConfigError, ReviewStore, validate
from vigil.service import ServiceSettings, create_app
from vigil.service.auth import create_token
from vigil.settings import Settings
from vigil.stores.sqlite import SqliteStore

RULES = 'rule "Anything" when event is "post" and event.text == "never" then flag\n'
QUEUES = {"spam": {"actions": {"dismiss": {"kind": "dismiss"}, "to_cs": {"kind": "escalate", "queue": "csam"}}},
          "csam": {"child_safety": True, "actions": {"dismiss": {"kind": "dismiss"}}}}
PEOPLE = {"ann": ["reviewer"], "bob": ["reviewer"], "carol": ["reviewer", "child_safety_reviewer"], "boss": ["admin"],
          "lead": ["review_lead"], "cslead": ["review_lead", "child_safety_reviewer"]}


class Api:
    def __init__(self, client: TestClient, path: Path, tokens: dict[str, str]) -> None:
        self.client = client
        self.path = path
        self.tokens = tokens

    def call(self, method: str, path: str, who: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, headers={"Authorization": f"Bearer {self.tokens[who]}"}, **kwargs)

    def item(self, queue: str, subject: str, *, age: float = 0.0) -> str:
        review = ReviewStore(sqlite_path=str(self.path))
        try:
            item, _ = review.add_hit(queue, "user", subject, f"e-{subject}", {"event": {"id": subject}}, 0.0,
                                     time.time() - age)
            return item.id
        finally:
            review.close()

    def audit(self, action: str) -> list[tuple[str, str]]:
        store = SqliteStore(self.path)
        log = AuditLog.over(store)
        try:
            return [(e.actor, e.target) for e in log.entries(action=action)]
        finally:
            log.close()
            store.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.vigil").write_text(RULES)
    path = tmp_path / "vigil.sqlite"
    store = SqliteStore(path)
    people = People.over(store, AuditLog.over(store), hasher=PasswordHasher.from_parameters(CHEAPEST))
    for name, roles in PEOPLE.items():
        people.create(name, parse_grants(roles), actor="root")
    people.close()
    tokens = {name: create_token(store, name, ["review"], person=name)[1].get_secret_value() for name in PEOPLE}
    tokens["viewer"] = create_token(store, "viewer", ["read"])[1].get_secret_value()
    config = Settings(service=ServiceSettings(rules_dir=str(rules), token_cache_seconds=0.0), queues=QUEUES)
    with TestClient(create_app(config.service, store, config=config), base_url="http://localhost") as client:
        yield Api(client, path, tokens)


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_a_child_safety_queue_is_invisible_without_the_role(api: Api) -> None:
    cs_item, spam_item = api.item("csam", "u1"), api.item("spam", "u2")
    for who in ("ann", "boss", "lead", "viewer"):
        names = [q["queue"] for q in api.call("GET", "/v1/review/queues", who).json()["queues"]]
        assert "csam" not in names and "spam" in names, who
        # The same answers as for a queue and an item that do not exist, so existence does not leak.
        for path in ("/v1/review/queues/csam", "/v1/review/queues/csam/items",
                     "/v1/review/queues/csam/items?state=decided"):
            assert _error(api.call("GET", path, who)) == (404, "no_queue"), (who, path)
            assert _error(api.call("GET", path.replace("csam", "nope"), who)) == (404, "no_queue"), (who, path)
        hidden = api.call("GET", f"/v1/review/items/{cs_item}", who)
        missing = api.call("GET", "/v1/review/items/item_nope", who)
        assert _error(hidden) == _error(missing) == (404, "no_item")
        assert "csam" not in hidden.text
    for who in ("ann", "boss"):
        assert _error(api.call("POST", "/v1/review/queues/csam/claim", who)) == (404, "no_queue")
        for step in ("claim", "release", "skip"):
            assert _error(api.call("POST", f"/v1/review/items/{cs_item}/{step}", who)) == (404, "no_item")
        decided = api.call("POST", f"/v1/review/items/{cs_item}/decide", who, json={"action": "dismiss"})
        assert _error(decided) == (404, "no_item")
    assert _error(api.call("POST", f"/v1/review/items/{cs_item}/assign", "lead", json={"to": "carol"})) == (
        404, "no_item")
    unknown = api.call("GET", "/v1/review/queues/nope", "ann").json()["error"]
    assert "csam" not in unknown["hint"]
    assert 'queue="csam"' not in api.call("GET", "/metrics", "viewer").text
    # Nothing changed: carol, who holds the role, finds the item as it was, and can do her work.
    names = [q["queue"] for q in api.call("GET", "/v1/review/queues", "carol").json()["queues"]]
    assert names == ["csam", "default", "spam"]
    detail = api.call("GET", f"/v1/review/items/{cs_item}", "carol").json()
    assert detail["item"]["state"] == "open" and [e["kind"] for e in detail["log"]] == ["opened"]
    assert api.call("POST", "/v1/review/queues/csam/claim", "carol").json()["item"]["id"] == cs_item
    assert api.call("POST", f"/v1/review/items/{cs_item}/decide", "carol", json={"action": "dismiss"}).status_code == 201
    assert api.call("GET", f"/v1/review/items/{spam_item}", "ann").status_code == 200


def test_views_of_child_safety_items_and_every_decision_are_audited(api: Api) -> None:
    cs_item, spam_item = api.item("csam", "u1"), api.item("spam", "u2")
    assert api.audit("review.view") == []
    api.call("GET", f"/v1/review/items/{cs_item}", "carol")
    api.call("GET", f"/v1/review/items/{cs_item}", "ann")  # refused: not a view
    api.call("GET", "/v1/review/queues/csam/items", "carol")
    api.call("GET", f"/v1/review/items/{spam_item}", "ann")  # not child safety: not audited
    assert api.audit("review.view") == [("carol", f"item:{cs_item}")]
    assert api.audit("review.list") == [("carol", "queue:csam")]
    api.call("POST", f"/v1/review/items/{spam_item}/claim", "ann")
    assert api.call("POST", f"/v1/review/items/{spam_item}/decide", "ann", json={"action": "dismiss"}).status_code == 201
    assert api.audit("review.decide") == [("ann", f"item:{spam_item}")]


def test_an_item_escalated_into_a_child_safety_queue_leaves_no_trace_for_plain_reviewers(api: Api) -> None:
    """Coop #1154: after the queue change the item, decided in the queue it left, still carried the
    evidence for every reviewer of that queue."""
    item = api.item("spam", "u3")
    api.call("POST", f"/v1/review/items/{item}/claim", "ann")
    assert api.call("POST", f"/v1/review/items/{item}/decide", "ann", json={"action": "to_cs"}).status_code == 201
    for who in ("ann", "bob"):
        assert _error(api.call("GET", f"/v1/review/items/{item}", who)) == (404, "no_item")
    assert api.call("GET", "/v1/review/queues/spam/items?state=decided", "ann").json()["items"] == []
    assert [i["id"] for i in api.call("GET", "/v1/review/queues/spam/items?state=decided", "carol").json()["items"]] == [item]
    moved = api.call("GET", "/v1/review/queues/csam/items", "carol").json()["items"]
    assert [i["subject"]["key"] for i in moved] == ["u3"]


def test_leads_assign_and_sweep_but_never_to_someone_who_may_not_see(api: Api) -> None:
    spam_item, cs_item = api.item("spam", "u4"), api.item("csam", "u5")
    assert api.call("POST", f"/v1/review/items/{spam_item}/assign", "ann", json={"to": "ann"}).status_code == 403
    assert api.call("POST", f"/v1/review/items/{spam_item}/assign", "lead", json={"to": "ann"}).json()["item"][
        "claimed_by"] == "ann"
    refused = api.call("POST", f"/v1/review/items/{cs_item}/assign", "cslead", json={"to": "ann"})
    assert _error(refused) == (422, "not_permitted")
    assert _error(api.call("POST", f"/v1/review/items/{cs_item}/assign", "cslead", json={"to": "nobody"})) == (
        422, "unknown_reviewer")
    detail = api.call("GET", f"/v1/review/items/{cs_item}", "carol").json()
    assert detail["item"]["claimed_by"] is None
    assert api.call("POST", f"/v1/review/items/{cs_item}/assign", "cslead", json={"to": "carol"}).status_code == 200
    assert api.audit("review.assign") == [("lead", f"item:{spam_item}"), ("cslead", f"item:{cs_item}")]
    assert api.call("POST", "/v1/review/sweep", "ann").status_code == 403
    api.item("spam", "late", age=90_000)
    api.item("csam", "late", age=90_000)
    swept = api.call("POST", "/v1/review/sweep", "lead").json()["breached"]  # a review lead, not an admin
    assert [(i["queue"], i["subject"]["key"]) for i in swept] == [("spam", "late")]


def test_a_child_safety_queue_may_only_escalate_into_another() -> None:
    with pytest.raises(ReviewConfigError, match="queues.csam: a child-safety queue escalates to 'spam'"):
        validate({}, {"csam": {"child_safety": True, "escalate_to": "spam"}, "spam": {}})
    with pytest.raises(ReviewConfigError, match="queues.csam"):
        validate({}, {"csam": {"child_safety": True, "actions": {"up": {"kind": "escalate", "queue": "spam"}}}})
    assert validate({}, {"csam": {"child_safety": True, "escalate_to": "cs2"}, "cs2": {"child_safety": True}})


SERVED_RULES = """
entity user = event.actor.id
rule "Possible CSAM" when event is "post" and event.text contains "csam-test-marker"
  then review, output "safety-review" with subject user
"""
SERVED_TOML = """
[sinks.review]
kind = "queue"
queue = "spam"
poll = 0.05

[[sinks.review.routes]]
rule = "Possible CSAM"
queue = "child-safety"

[outputs]
"safety-review" = "review"

[queues.child-safety]
child_safety = true
"""


def test_end_to_end_a_child_safety_item_is_invisible_to_a_plain_reviewer(tmp_path: Path) -> None:
    """The issue's check, against a real server over a socket, through `vigil review`."""
    people = {"ann": ["reviewer"], "carol": ["reviewer", "child_safety_reviewer"]}
    with serving.served(tmp_path, SERVED_RULES, SERVED_TOML, people) as (url, tokens):

        def review(who: str, *args: str) -> Any:
            return CliRunner().invoke(main, ["review", "--url", url, "--token", tokens[who], *args])

        sent = httpx.post(f"{url}/v1/events", headers={"Authorization": f"Bearer {tokens['ingest']}"}, timeout=30,
                          json={"type": "post", "id": "p1", "time": time.time(), "actor": {"id": "u9"},
                                "text": "csam-test-marker"})
        assert sent.json()["verdict"] == "review"
        deadline = time.monotonic() + 20
        while "user:u9" not in (listing := review("carol", "items", "child-safety").output):
            assert time.monotonic() < deadline, listing
            time.sleep(0.05)
        item_id = listing.split()[0]
        queues = review("ann", "queues")
        assert queues.exit_code == 0 and "child-safety" not in queues.output and "default" in queues.output
        listed = review("ann", "items", "child-safety")
        assert listed.exit_code != 0 and "404 no_queue" in listed.output
        shown = review("ann", "show", item_id)
        assert shown.exit_code != 0 and "404 no_item" in shown.output
        claimed = review("ann", "claim", "--item", item_id)
        assert claimed.exit_code != 0 and "404 no_item" in claimed.output
        assert "child-safety" in review("carol", "queues").output
        assert '"queue": "child-safety"' in review("carol", "show", item_id).output

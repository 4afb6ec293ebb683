"""The review routes over the real app (Starlette's TestClient runs the lifespan: a real engine, SQLite
store, engine threads): claim, decide with a label that the next event's rules see at once, the decision
decided by the rules as a review.decision event, every refusal a clear 4xx that changes nothing, and the
OpenAPI document generated from the routes' models."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from starlette.testclient import TestClient

from vigil.audit import AuditLog
from vigil.people import People, parse_grants
from vigil.review import ReviewStore
from vigil.service import ServiceSettings, create_app
from vigil.service.auth import create_token
from vigil.settings import Settings
from vigil.stores.sqlite import SqliteStore

RULES = """
entity user = event.actor.id

rule "Spammer posts" when event is "post" and user has label "spammer" then block

rule "Spam link" when event is "post" and event.text contains "free crypto"
  then flag, output "spam-review" with subject user, priority = 3

rule "Confirmed spam" when event is "review.decision" and event.action == "spammer"
  then flag, label user "strike" for 90 days
"""
QUEUES = {"spam": {"require_reason": True,
                   "actions": {"spammer": {"kind": "label", "label": "spammer"},
                               "dismiss": {"kind": "dismiss", "require_reason": False},
                               "takedown": {"kind": "output", "sink": "takedowns"},
                               "up": {"kind": "escalate", "queue": "senior"}}},
          "senior": {}}


class Api:
    def __init__(self, client: TestClient, store_path: Path, tokens: dict[str, str]) -> None:
        self.client = client
        self.store_path = store_path
        self.tokens = tokens

    def call(self, method: str, path: str, who: str = "ann", **kwargs: Any) -> Any:
        return self.client.request(method, path, headers={"Authorization": f"Bearer {self.tokens[who]}"}, **kwargs)

    def item(self, subject: str = "u1", key: str = "e1") -> str:
        review = ReviewStore(sqlite_path=str(self.store_path))
        try:
            item, _ = review.add_hit("spam", "user", subject, key, {"event": {"id": key}}, 0.0, time.time())
            return item.id
        finally:
            review.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.vigil").write_text(RULES)
    path = tmp_path / "vigil.sqlite"
    store = SqliteStore(path)
    # Reviewers are people whose tokens act with their roles (and are recorded by name); the ingest and
    # viewer tokens belong to nobody and act with their scopes.
    people = People.over(store, AuditLog.over(store), hasher=PasswordHasher.from_parameters(CHEAPEST))
    for name, roles in (("ann", ["reviewer"]), ("bob", ["reviewer"]), ("lead", ["review_lead", "admin"])):
        people.create(name, parse_grants(roles), actor="root")
    people.close()
    tokens = {name: create_token(store, name, scopes, person=person)[1].get_secret_value()
              for name, scopes, person in (("ann", ["review"], "ann"), ("bob", ["review"], "bob"),
                                           ("lead", ["admin"], "lead"), ("ingest", ["ingest"], None),
                                           ("viewer", ["read"], None))}
    config = Settings(service=ServiceSettings(rules_dir=str(rules), token_cache_seconds=0.0),
                      sinks={"review": {"kind": "queue", "queue": "spam", "poll": 0.05}},
                      outputs={"spam-review": "review"}, queues=QUEUES)
    app = create_app(config.service, store, config=config)
    with TestClient(app, base_url="http://localhost") as client:
        yield Api(client, path, tokens)


def _post(api: Api, n: int, user: str = "u1", text: str = "hi") -> Any:
    return api.call("POST", "/v1/events", "ingest", json={"type": "post", "id": f"p{n}", "time": time.time(),
                                                          "actor": {"id": user}, "text": text}).json()


def _wait_for_items(api: Api, queue: str, hits: int) -> list[dict[str, Any]]:
    """The queue's items once the outbox has delivered `hits` hits to it (bounded: 20 s)."""
    deadline = time.monotonic() + 20
    while True:
        items = api.call("GET", f"/v1/review/queues/{queue}/items", "viewer").json()["items"]
        if sum(i["hits"] for i in items) >= hits or time.monotonic() > deadline:
            return list(items)
        time.sleep(0.02)


def test_a_rule_sends_a_user_to_review_and_a_reviewer_labels_them(api: Api) -> None:
    """End to end: a rule's output → an item (through the outbox and the queue sink) → claimed → decided
    with a label → the user's next event is blocked by a rule that reads the label."""
    assert _post(api, 1, text="free crypto")["verdict"] == "flag"
    assert _post(api, 2, text="free crypto now")["verdict"] == "flag"
    items = _wait_for_items(api, "spam", 2)
    assert [(i["subject"], i["hits"], i["priority"]) for i in items] == [({"entity": "user", "key": "u1"}, 2, 3.0)]
    evidence = api.call("GET", f"/v1/review/items/{items[0]['id']}", "viewer").json()["evidence"]
    assert [(e["event"]["id"], e["rules"]) for e in evidence] == [("p1", ["Spam link"]), ("p2", ["Spam link"])]
    claimed = api.call("POST", "/v1/review/queues/spam/claim").json()["item"]
    decided = api.call("POST", f"/v1/review/items/{claimed['id']}/decide", json={"action": "spammer", "reason": "scam"})
    assert decided.status_code == 201, decided.text
    assert _post(api, 3)["verdict"] == "block"


def test_claim_decide_label_seen_by_the_next_event(api: Api) -> None:
    item = api.item()
    assert _post(api, 1)["verdict"] == "allow"
    claimed = api.call("POST", "/v1/review/queues/spam/claim").json()["item"]
    assert (claimed["id"], claimed["claimed_by"]) == (item, "ann")
    response = api.call("POST", f"/v1/review/items/{item}/decide",
                        json={"action": "spammer", "reason": "links to a scam", "policy": "spam/1"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["item"]["state"] == "decided" and body["decision"]["actor"] == "ann"
    assert body["decision"]["state"] == "applied"
    assert body["decision"]["effects"] == [{"kind": "label", "entity": "user", "key": "u1", "label": "spammer",
                                            "applied": True}]
    # The decision went through the rules as an event: they counted a strike for the same user.
    assert body["event"]["type"] == "review.decision" and body["event"]["rules"] == ["Confirmed spam"]
    labels = api.call("GET", "/v1/entities/user/u1/labels", "viewer").json()["labels"]
    assert {(lab["label"], lab["source"], lab["actor"]) for lab in labels} == {
        ("spammer", "manual", "ann"), ("strike", "rule", "Confirmed spam")}
    # The next event of that user sees the label at once.
    assert _post(api, 2)["verdict"] == "block"
    assert _post(api, 3, user="u2")["verdict"] == "allow"
    detail = api.call("GET", f"/v1/review/items/{item}", "viewer").json()
    assert detail["decision"]["id"] == body["decision"]["id"]
    assert [e["kind"] for e in detail["log"]] == ["opened", "claimed", "decided"]


def test_refusals_are_clear_and_change_nothing(api: Api) -> None:
    item = api.item()
    decide = f"/v1/review/items/{item}/decide"
    refused = api.call("POST", decide, json={"action": "dismiss"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "not_held")
    api.call("POST", f"/v1/review/items/{item}/claim")
    other = api.call("POST", f"/v1/review/items/{item}/claim", "bob")
    assert (other.status_code, other.json()["error"]["code"]) == (409, "already_claimed")
    for body, status, code in (({"action": "ban"}, 422, "unknown_action"),
                               ({"action": "spammer"}, 422, "reason_required"),
                               ({"action": "spammer", "extra": 1}, 422, "invalid_body"),
                               ({"reason": "x"}, 422, "invalid_body")):
        response = api.call("POST", decide, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
        assert response.json()["error"]["message"]
    by_bob = api.call("POST", decide, "bob", json={"action": "dismiss"})
    assert (by_bob.status_code, by_bob.json()["error"]["code"]) == (409, "not_held")
    no_scope = api.call("POST", decide, "viewer", json={"action": "dismiss"})
    assert no_scope.status_code == 403
    detail = api.call("GET", f"/v1/review/items/{item}", "viewer").json()
    assert detail["item"]["state"] == "open" and detail["decision"] is None
    assert api.call("GET", "/v1/entities/user/u1/labels", "viewer").json()["labels"] == []
    assert api.call("POST", decide, json={"action": "dismiss"}).status_code == 201
    twice = api.call("POST", decide, json={"action": "dismiss"})
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "already_decided")
    missing = api.call("GET", "/v1/review/items/item_nope", "viewer")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "no_item")


def test_output_and_escalate_actions(api: Api) -> None:
    first, second = api.item("u1"), api.item("u2", key="e2")
    api.call("POST", f"/v1/review/items/{first}/claim")
    taken = api.call("POST", f"/v1/review/items/{first}/decide", json={"action": "takedown", "reason": "scam"})
    assert taken.status_code == 201
    store = SqliteStore(api.store_path)
    try:
        assert "takedowns" in store.outbox_status()  # delivered through the outbox, at least once
    finally:
        store.close()
    api.call("POST", f"/v1/review/items/{second}/claim")
    up = api.call("POST", f"/v1/review/items/{second}/decide", json={"action": "up", "reason": "unsure"})
    assert up.status_code == 201
    senior = api.call("GET", "/v1/review/queues/senior/items", "viewer").json()["items"]
    assert [(i["subject"]["key"], i["hits"]) for i in senior] == [("u2", 1)]


def test_skip_release_assign_and_queue_numbers(api: Api) -> None:
    item = api.item()
    assert api.call("POST", "/v1/review/queues/spam/claim").json()["item"]["id"] == item
    assert api.call("POST", f"/v1/review/items/{item}/skip").json()["item"]["claimed_by"] is None
    assert api.call("POST", "/v1/review/queues/spam/claim").json() == {"item": None}
    forbidden = api.call("POST", f"/v1/review/items/{item}/assign", "ann", json={"to": "ann"})
    assert forbidden.status_code == 403
    assigned = api.call("POST", f"/v1/review/items/{item}/assign", "lead", json={"to": "bob"}).json()
    assert assigned["item"]["claimed_by"] == "bob"
    assert api.call("POST", f"/v1/review/items/{item}/release", "bob").json()["item"]["claimed_by"] is None
    queues = {q["queue"]: q for q in api.call("GET", "/v1/review/queues", "viewer").json()["queues"]}
    assert queues["spam"]["pending"] == 1 and queues["senior"]["pending"] == 0
    metrics = api.call("GET", "/metrics", "viewer").text
    assert 'vigil_review_pending{queue="spam"} 1.0' in metrics
    assert 'vigil_review_breaches_total{queue="spam"} 0.0' in metrics
    unknown = api.call("POST", "/v1/review/queues/nope/claim")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "no_queue")


def test_openapi_is_generated_from_the_models(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    decide = document["paths"]["/v1/review/items/{item_id}/decide"]["post"]
    assert decide["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DecideRequest"}
    schema = document["components"]["schemas"]["DecideRequest"]
    assert schema["required"] == ["action"] and set(schema["properties"]) == {"action", "reason", "policy"}
    assert "ItemOut" in document["components"]["schemas"]


def test_a_decision_left_applying_is_applied_at_the_next_start(tmp_path: Path) -> None:
    """A process stopped between storing a decision and applying it: the next start applies it (the
    label is there, the decision's event decided), and marks it applied."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.vigil").write_text(RULES)
    path = tmp_path / "vigil.sqlite"
    from vigil.review import Review, validate

    review = Review(ReviewStore(sqlite_path=str(path)), validate({}, QUEUES))
    item, _ = review.store.add_hit("spam", "user", "u7", "e1", {"event": {"id": "e1"}}, 0.0, time.time())
    review.claim(item.id, "ann")
    stored = review.decide(item.id, "ann", "spammer", reason="crashed before applying").decision
    assert [d.id for d in review.store.decisions_applying()] == [stored.id]
    review.close()
    store = SqliteStore(path)
    _, secret = create_token(store, "viewer", ["read"])
    config = Settings(service=ServiceSettings(rules_dir=str(rules), token_cache_seconds=0.0), queues=QUEUES)
    with TestClient(create_app(config.service, store, config=config), base_url="http://localhost") as client:
        auth = {"Authorization": f"Bearer {secret.get_secret_value()}"}
        labels = client.get("/v1/entities/user/u7/labels", headers=auth).json()["labels"]
        assert {(lab["label"], lab["actor"]) for lab in labels} == {("spammer", "ann"), ("strike", "Confirmed spam")}
        decision = client.get(f"/v1/review/items/{item.id}", headers=auth).json()["decision"]
        assert decision["state"] == "applied"


def test_a_decision_whose_event_the_rules_cannot_read_still_stands(tmp_path: Path) -> None:
    """The rules read the decision event's reason as a number: its event is a dead letter (kept with the
    reason), and the decision and its label stand, answered 201 with the event's error, not a 422 that
    would say nothing changed."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.vigil").write_text('rule "Odd" when event is "review.decision" and event.reason > 5 then flag\n')
    store = SqliteStore(tmp_path / "vigil.sqlite")
    tokens = {n: create_token(store, n, [s])[1].get_secret_value() for n, s in (("ann", "review"), ("v", "read"))}
    config = Settings(service=ServiceSettings(rules_dir=str(rules), token_cache_seconds=0.0), queues=QUEUES)
    with TestClient(create_app(config.service, store, config=config), base_url="http://localhost") as client:
        api = Api(client, tmp_path / "vigil.sqlite", {"ann": tokens["ann"], "viewer": tokens["v"]})
        item = api.item()
        api.call("POST", f"/v1/review/items/{item}/claim")
        response = api.call("POST", f"/v1/review/items/{item}/decide", json={"action": "spammer", "reason": "spam"})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["event"]["dead_letter"] is True and body["event"]["error"]["code"] == "wrong_type"
        assert body["decision"]["state"] == "applied"
        labels = api.call("GET", "/v1/entities/user/u1/labels", "viewer").json()["labels"]
        assert [lab["label"] for lab in labels] == ["spammer"]


def test_the_sweep_escalates_an_item_past_its_target(api: Api) -> None:
    review = ReviewStore(sqlite_path=str(api.store_path))
    try:
        late, _ = review.add_hit("spam", "user", "old", "e1", {"event": {"id": "e1"}}, 1.0, time.time() - 90_000)
    finally:
        review.close()
    fresh = api.item("new", key="e2")
    assert api.call("POST", "/v1/review/sweep", "ann").status_code == 403  # a lead's (admin) work
    swept = api.call("POST", "/v1/review/sweep", "lead").json()["breached"]
    assert [i["id"] for i in swept] == [late.id]
    items = {i["id"]: i for i in api.call("GET", "/v1/review/queues/spam/items", "viewer").json()["items"]}
    assert (items[late.id]["breached"], items[late.id]["priority"]) == (True, 11.0)
    assert items[fresh]["breached"] is False
    assert api.call("GET", "/v1/review/queues/spam", "viewer").json()["breaches"] == 1
    assert api.call("POST", "/v1/review/sweep", "lead").json()["breached"] == []

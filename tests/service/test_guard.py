"""Host, origin and content type checks against CSRF and DNS rebinding, with or without auth (issue 11.12)."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from vigil.service.guard import hostname, served_names

from .helpers import Running

NEW_RULES = {"files": {"main.vigil": 'rule "Everything"\n  when event is "post"\n  then block\n'}}


def test_a_text_plain_post_from_a_foreign_page_cannot_replace_the_rules_without_auth(
        make_service: Callable[..., Running]) -> None:
    """The reported attack: a `text/plain` POST with a foreign Origin and Host replaced the rules (201)."""
    svc = make_service(auth=False, rules_source="store")
    body = orjson.dumps(NEW_RULES)
    attack = svc.client.post("/v1/rules", content=body, headers={
        "Content-Type": "text/plain", "Origin": "http://evil.example", "Host": "evil.example:8470"})
    assert attack.status_code == 400 and attack.json()["error"]["code"] == "unknown_host"
    # Each check refuses on its own: a foreign origin with the right Host (CSRF) ...
    csrf = svc.client.post("/v1/rules", content=body, headers={"Content-Type": "application/json",
                                                               "Origin": "http://evil.example"})
    assert csrf.status_code == 403 and csrf.json()["error"]["code"] == "cross_origin"
    # ... another port on the same host is another origin ...
    other_port = svc.client.post("/v1/rules", content=body, headers={"Content-Type": "application/json",
                                                                     "Origin": "http://localhost:3000"})
    assert other_port.status_code == 403
    # ... a cross-site fetch that sends no Origin, told by Sec-Fetch-Site ...
    fetch = svc.client.post("/v1/rules", content=body, headers={"Content-Type": "application/json",
                                                                "Sec-Fetch-Site": "cross-site"})
    assert fetch.status_code == 403
    # ... and the body types a form or a no-preflight fetch can send.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"Content-Type": content_type} if content_type else {}
        refused = svc.client.post("/v1/rules", content=body, headers=headers)
        assert refused.status_code == 415, content_type
        assert "application/json" in refused.json()["error"]["hint"]
    assert svc.client.get("/v1/rules").json()["seq"] == 1
    # The same upload from a same-origin page, or from a script with no Origin, is accepted.
    same_origin = svc.client.post("/v1/rules", json=NEW_RULES, headers={"Origin": "http://localhost",
                                                                        "Sec-Fetch-Site": "same-origin"})
    assert same_origin.status_code == 201, same_origin.text
    script = svc.client.post("/v1/rules", json={"files": {"main.vigil": NEW_RULES["files"]["main.vigil"] + "\n"}})
    assert script.status_code == 201, script.text
    assert svc.client.get("/v1/rules").json()["seq"] == 3


def test_the_checks_hold_with_auth_and_on_every_path(svc: Running) -> None:
    assert svc.client.get("/v1/rules", headers={**svc.headers("read"), "Host": "rebound.example"}).status_code == 400
    assert svc.client.get("/healthz", headers={"Host": "rebound.example"}).status_code == 400
    forged = svc.client.post("/v1/events", content=b'{"type": "post", "id": "x", "time": 0}',
                             headers={**svc.headers("ingest"), "Content-Type": "text/plain"})
    assert forged.status_code == 415
    assert svc.client.get("/healthz", headers={"Host": "127.0.0.1:8470"}).status_code == 200
    assert svc.client.get("/healthz", headers={"Host": "[::1]:8470"}).status_code == 200


def test_named_hosts_and_wildcard_addresses(make_service: Callable[..., Running]) -> None:
    named = make_service(host="0.0.0.0", allowed_hosts=("vigil.internal",))
    assert named.client.get("/healthz", headers={"Host": "vigil.internal:8470"}).status_code == 200
    assert named.client.get("/healthz", headers={"Host": "localhost"}).status_code == 400
    anything = make_service(host="0.0.0.0")
    assert anything.client.get("/healthz", headers={"Host": "whatever.example"}).status_code == 200


@pytest.mark.parametrize(("authority", "name"), [("localhost:8470", "localhost"), ("[::1]:80", "::1"),
                                                 ("::1", "::1"), ("Vigil.Internal", "vigil.internal")])
def test_hostname(authority: str, name: str) -> None:
    assert hostname(authority) == name


def test_served_names() -> None:
    assert served_names("10.0.0.5") == frozenset({"10.0.0.5"})
    assert served_names("127.0.0.1", ["*"]) is None

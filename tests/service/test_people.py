"""People over the HTTP service: tokens that act with their person's roles and are recorded by name,
console sessions with safe cookies, failed logins limited, user routes, and the audit log's routes
with the entries of label, rules and user changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.testclient import TestClient

from vigil.people import parse_grants
from vigil.service.auth import create_token

from .helpers import Running
from .test_rules import FLAG_ALL

PASSWORD = "correct horse battery"
RULES = {"main.vigil": FLAG_ALL}


def _person(svc: Running, name: str, *roles: str, password: str | None = PASSWORD) -> dict[str, str]:
    """A person with a token of their own: the token's headers."""
    service = svc.client.app.state.service  # type: ignore[attr-defined]
    service.people.create(name, parse_grants(roles), actor="root", password=password)
    _, secret = create_token(svc.store, f"{name}-token", ["read"], person=name)
    return {"Authorization": f"Bearer {secret.get_secret_value()}", "Content-Type": "application/json"}


def _audit(svc: Running, **params: Any) -> list[dict[str, Any]]:
    response = svc.client.get("/v1/audit", params=params, headers=svc.headers("admin"))
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def test_a_person_s_token_acts_with_their_roles_and_is_recorded_by_their_name(store_svc: Running) -> None:
    carol = _person(store_svc, "carol", "rules_manager")
    uploaded = store_svc.client.post("/v1/rules", json={"files": RULES, "message": "all"}, headers=carol)
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["author"] == "carol"  # never the token's name, carol-token
    refused = store_svc.client.post("/v1/entities/user/u1/labels", json={"label": "x", "reason": "r"}, headers=carol)
    assert refused.status_code == 403
    assert "carol may not labels.write" in refused.json()["error"]["message"]
    rolled = store_svc.client.post("/v1/rules/rollback", headers=carol)
    assert rolled.status_code == 200
    entries = _audit(store_svc, action="rules.")
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        ("carol", "rules.activate", "rules:2"), ("carol", "rules.rollback", "rules:1")]
    assert entries[0]["detail"]["previous"] == 1 and entries[0]["detail"]["token"]


def test_a_disabled_person_s_token_stops_working(svc: Running) -> None:
    dave = _person(svc, "dave", "analyst")
    assert svc.client.get("/v1/me", headers=dave).json() == {
        "actor": "dave", "kind": "person", "person": "dave", "roles": ["analyst"], "scopes": ["read"]}
    changed = svc.client.patch("/v1/users/dave", json={"disabled": True}, headers=svc.headers("admin"))
    assert changed.status_code == 200 and changed.json()["user"]["disabled"] is True
    refused = svc.client.get("/v1/me", headers=dave)
    assert refused.status_code == 401 and "disabled" in refused.json()["error"]["message"]


def test_tokens_of_nobody_keep_their_scopes_and_are_recorded_as_tokens(svc: Running) -> None:
    me = svc.client.get("/v1/me", headers=svc.headers("admin")).json()
    assert (me["actor"], me["kind"], me["person"]) == ("token:admin", "token", None)
    assert svc.client.get("/v1/me", headers=svc.headers("read")).json()["roles"] == ["analyst"]
    added = svc.client.post("/v1/entities/user/u1/labels", json={"label": "x", "reason": "ticket 1"},
                            headers=svc.headers("admin"))
    assert added.status_code == 201
    [entry] = _audit(svc, action="label.add")
    assert (entry["actor"], entry["target"], entry["detail"]["label"]) == ("token:admin", "user:u1", "x")


def test_a_session_cookie_is_http_only_strict_and_ends_at_logout(svc: Running) -> None:
    _person(svc, "erin", "review_lead")
    wrong = svc.client.post("/v1/session", json={"name": "erin", "password": "not the password"})
    assert wrong.status_code == 401 and "vigil_session" not in wrong.headers.get("set-cookie", "")
    login = svc.client.post("/v1/session", json={"name": "erin", "password": PASSWORD})
    assert login.status_code == 200, login.text
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    assert svc.client.get("/v1/me").json()["actor"] == "erin"  # the client sends the cookie back
    added = svc.client.post("/v1/entities/user/u2/labels", json={"label": "spammer", "reason": "seen"})
    assert added.status_code == 201 and added.json()["label"]["actor"] == "erin"
    assert svc.client.delete("/v1/session").json() == {"logged_out": True}
    assert svc.client.get("/v1/me").status_code == 401
    actions = [e["action"] for e in _audit(svc, actor="erin")]
    assert actions == ["session.login", "label.add", "session.logout"]


def test_the_cookie_is_secure_over_https(make_service: Callable[..., Running]) -> None:
    svc = make_service()
    _person(svc, "fred", "analyst")
    with TestClient(svc.client.app, base_url="https://localhost") as client:
        login = client.post("/v1/session", json={"name": "fred", "password": PASSWORD})
    assert "secure" in login.headers["set-cookie"].lower()


def test_failed_logins_are_limited_per_address_and_name(make_service: Callable[..., Running]) -> None:
    svc = make_service(auth_failure_rate=0.001, auth_failure_burst=3)
    _person(svc, "gina", "analyst")
    codes = [svc.client.post("/v1/session", json={"name": "gina", "password": f"guess {i}"}).status_code
             for i in range(3)]
    assert codes == [401, 401, 401]
    limited = svc.client.post("/v1/session", json={"name": "gina", "password": PASSWORD})
    assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_admins_manage_people_and_their_tokens(svc: Running) -> None:
    admin = svc.headers("admin")
    made = svc.client.post("/v1/users", json={"name": "hal", "roles": ["reviewer:spam"]}, headers=admin)
    assert made.status_code == 201 and made.json()["user"]["roles"] == ["reviewer:spam"]
    assert svc.client.post("/v1/users", json={"name": "hal"}, headers=admin).status_code == 409
    bad = svc.client.post("/v1/users", json={"name": "ivy", "roles": ["moderator"]}, headers=admin)
    assert bad.status_code == 422 and "unknown role 'moderator'" in bad.json()["error"]["message"]
    weak = svc.client.post("/v1/users", json={"name": "ivy", "password": "short"}, headers=admin)
    assert weak.status_code == 400 and "12 characters" in weak.json()["error"]["message"]
    token = svc.client.post("/v1/users/hal/tokens", json={"name": "hal-laptop"}, headers=admin)
    assert token.status_code == 201
    hal = {"Authorization": f"Bearer {token.json()['secret']}"}
    assert svc.client.get("/v1/me", headers=hal).json()["roles"] == ["reviewer:spam"]
    roles = svc.client.patch("/v1/users/hal", json={"roles": ["analyst"]}, headers=admin)
    assert roles.json()["user"]["roles"] == ["analyst"]
    assert svc.client.get("/v1/me", headers=hal).json()["roles"] == ["analyst"]
    assert svc.client.get("/v1/users", headers=hal).status_code == 403
    assert svc.client.get("/v1/audit", headers=hal).status_code == 403
    assert [e["action"] for e in _audit(svc, target="user:hal")] == ["user.create", "user.roles"]
    [made_token] = _audit(svc, action="token.create")
    assert made_token["detail"]["person"] == "hal"


def test_the_audit_routes_verify_and_page(svc: Running) -> None:
    for i in range(3):
        svc.client.post(f"/v1/entities/user/u{i}/labels", json={"label": "x", "reason": "r"},
                        headers=svc.headers("admin"))
    verified = svc.client.get("/v1/audit/verify", headers=svc.headers("admin")).json()
    assert (verified["ok"], verified["checked"], verified["head"]["seq"]) == (True, 3, 3)
    page = svc.client.get("/v1/audit", params={"limit": 2}, headers=svc.headers("admin")).json()
    assert [e["seq"] for e in page["entries"]] == [1, 2] and page["next"] == 2
    rest = svc.client.get("/v1/audit", params={"after": 2}, headers=svc.headers("admin")).json()
    assert [e["seq"] for e in rest["entries"]] == [3]
    assert svc.client.get("/v1/audit", params={"after": "x"}, headers=svc.headers("admin")).status_code == 400

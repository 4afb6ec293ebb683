"""The rules lifecycle over HTTP: each rule's stage (shadow, rollout, live, paused, draft) runs at once and is
audited by its person, promotion walks the stages, a rollback undoes a change; a diff between versions; a
rule's hits over time; and the guard, which pauses a rule firing on too many events just after it changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .helpers import Running, post, wait_for

SHOUT = "hey!!!!!"


def _stage(svc: Running, rule: str = "Shouting", scope: str = "admin", **body: Any) -> Any:
    return svc.client.post("/v1/rules/lifecycle/stage", json={"rule": rule, **body}, headers=svc.headers(scope))


def _call(svc: Running, path: str, **body: Any) -> Any:
    return svc.client.post(f"/v1/rules/lifecycle/{path}", json=body, headers=svc.headers("admin"))


def _rules(svc: Running) -> dict[str, Any]:
    return {r["rule"]: r for r in svc.get("/v1/rules/lifecycle").json()["rules"]}


def _hit(svc: Running, text: str = SHOUT, user: str = "u1") -> tuple[str, list[tuple[str, str]]]:
    body = svc.post_event(post(text, user=user), scope="ingest+read").json()
    return body["verdict"], [(h["rule"], h["mode"]) for h in body["explanation"]]


def test_every_rule_is_listed_with_its_written_mode_and_stage(svc: Running) -> None:
    rules = _rules(svc)
    assert set(rules) == {"Shouting", "Bad words", "Marked users", "Big spender"}
    assert rules["Shouting"]["stage"] == "live" and rules["Shouting"]["state"] is None
    assert rules["Shouting"]["written"] == {"mode": "live", "percent": None, "entity": None}


def test_shadow_runs_at_once_is_audited_and_rolls_back(svc: Running) -> None:
    assert _hit(svc) == ("flag", [("Shouting", "live")])
    response = _stage(svc, stage="shadow", reason="too many false positives")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"]["stage"] == "shadow" and body["state"]["actor"] == "token:admin"
    assert body["rule"]["stage"] == "shadow" and "+" in body["version"]
    assert _hit(svc) == ("allow", [("Shouting", "shadow")])
    [entry] = svc.get("/v1/audit?action=rules.stage", scope="admin").json()["entries"]
    assert entry["target"] == "rule:Shouting" and entry["detail"]["reason"] == "too many false positives"
    back = _call(svc, "rollback", rule="Shouting").json()
    assert back["state"]["stage"] is None and back["rule"]["stage"] == "live"
    assert _hit(svc) == ("flag", [("Shouting", "live")])
    history = svc.get("/v1/rules/lifecycle/history?rule=Shouting").json()["changes"]
    assert [c["describe"] for c in history] == ["as written", "shadow"]


def test_promotion_walks_from_draft_to_live(svc: Running) -> None:
    assert _stage(svc, stage="draft").json()["rule"]["stage"] == "draft"
    assert _hit(svc) == ("allow", [])  # a draft does not run
    assert _call(svc, "promote", rule="Shouting").json()["rule"]["stage"] == "shadow"
    refused = _call(svc, "promote", rule="Shouting")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "bad_rollout"
    rollout = _call(svc, "promote", rule="Shouting", percent=100, entity="user").json()["rule"]
    assert (rollout["stage"], rollout["percent"], rollout["entity"]) == ("rollout", 100.0, "user")
    assert _hit(svc) == ("flag", [("Shouting", "live")])  # 100% of users are in it
    assert _call(svc, "promote", rule="Shouting").json()["rule"]["stage"] == "live"
    assert _call(svc, "promote", rule="Shouting").status_code == 409


def test_pause_stops_a_rule_and_bad_changes_say_why(svc: Running) -> None:
    assert _stage(svc, stage="paused").status_code == 200
    assert _hit(svc) == ("allow", [])
    unknown = _stage(svc, rule="Shoutin", stage="paused")
    assert unknown.status_code == 404 and "did you mean 'Shouting'" in unknown.json()["error"]["hint"]
    entity = _stage(svc, stage="rollout", percent=5, entity="account")
    assert entity.status_code == 422 and "declared: user" in entity.json()["error"]["message"]
    assert _stage(svc, stage="rollout", percent=500, entity="user").status_code == 422
    assert _stage(svc, stage="on").status_code == 422
    assert _stage(svc, stage="live", scope="read").status_code == 403
    assert _call(svc, "rollback", rule="Big spender").status_code == 404  # never changed


def test_a_stage_holds_across_new_versions_of_the_text(store_svc: Running) -> None:
    assert _stage(store_svc, stage="shadow").status_code == 200
    files = store_svc.get("/v1/rules?files=true", scope="admin").json()["files"]
    files["main.vigil"] = files["main.vigil"].replace('contains "!!!!!"', 'contains "!!!"')
    assert store_svc.client.post("/v1/rules", json={"files": files}, headers=store_svc.headers()).status_code == 201
    assert _hit(store_svc, "hey!!!") == ("allow", [("Shouting", "shadow")])


def test_diff_between_two_versions(store_svc: Running) -> None:
    files = store_svc.get("/v1/rules?files=true", scope="admin").json()["files"]
    files["main.vigil"] = files["main.vigil"].replace("event.amount > 1000", "event.amount > 500")
    files["extra.vigil"] = 'rule "Everything" when event is "post" then flag\n'
    assert store_svc.client.post("/v1/rules", json={"files": files}, headers=store_svc.headers()).status_code == 201
    body = store_svc.get("/v1/rules/diff?base=1").json()
    assert (body["base"], body["other"], body["truncated"]) == (1, 2, False)
    assert {f["path"]: f["status"] for f in body["files"]} == {"extra.vigil": "added", "main.vigil": "changed"}
    main = next(f for f in body["files"] if f["path"] == "main.vigil")["diff"]
    assert "-  when event is \"purchase\" and event.amount > 1000\n+  when event is \"purchase\" and event.amount > 500\n" in main
    assert body["rules"] == {"added": ["Everything"], "removed": [], "changed": ["Big spender"]}
    assert store_svc.get("/v1/rules/diff?base=9").status_code == 404
    assert store_svc.get("/v1/rules/diff").status_code == 400


def test_hits_over_time_live_and_shadow(svc: Running) -> None:
    _hit(svc)
    _stage(svc, stage="shadow")
    _hit(svc)
    _hit(svc)
    body = svc.get("/v1/rules/hits?rule=Shouting&since=1h&by=minute").json()
    assert sum(b["live"] for b in body["buckets"]) == 1 and sum(b["shadow"] for b in body["buckets"]) == 2
    assert svc.get("/v1/rules/hits?rule=Shouting&since=30d&by=minute").status_code == 422
    assert svc.get("/v1/rules/hits?rule=Shouting&by=week").status_code == 400


EVERYTHING = 'rule "Everything" when event is "post" then flag\n'


def _upload_everything(svc: Running) -> None:
    files = svc.get("/v1/rules?files=true", scope="admin").json()["files"]
    files["everything.vigil"] = EVERYTHING
    assert svc.client.post("/v1/rules", json={"files": files}, headers=svc.headers()).status_code == 201


def test_the_guard_pauses_a_new_rule_that_fires_on_too_many_events(make_service: Callable[..., Running]) -> None:
    svc = make_service(rules_source="store", rule_guard_min_events=20, rule_guard_share=0.5)
    _upload_everything(svc)
    for i in range(25):
        svc.post_event(post(f"calm {i}"))
    assert wait_for(lambda: _rules(svc)["Everything"]["stage"] == "paused")
    state = _rules(svc)["Everything"]["state"]
    assert state["by_guard"] and state["actor"] == "guard" and "above the 50.0% allowed" in state["reason"]
    assert state["detail"]["guard"]["events"] >= 20
    assert _hit(svc, "calm") == ("allow", [])
    [entry] = svc.get("/v1/audit?action=rules.guard_pause", scope="admin").json()["entries"]
    assert entry["actor"] == "guard" and entry["target"] == "rule:Everything"
    assert 'vigil_rules_guard_paused_total{rule="Everything"} 1.0' in svc.get("/metrics").text
    # The other rules, older than the change, were not watched; a person may set it live again.
    assert _rules(svc)["Shouting"]["stage"] == "live"
    assert _call(svc, "promote", rule="Everything").json()["rule"]["stage"] == "live"


def test_the_guard_lets_a_rule_be_once_its_window_passed(make_service: Callable[..., Running]) -> None:
    svc = make_service(rules_source="store", rule_guard_min_events=20, rule_guard_share=0.5,
                       rule_guard_seconds=60.0)
    clock = [1000.0]
    manager = svc.client.app.state.service.rules  # type: ignore[attr-defined]
    manager.clock = lambda: clock[0]
    _upload_everything(svc)
    assert "Everything" in manager.guard.watches
    _stage(svc, rule="Everything", stage="shadow")  # moved to shadow: its hits change nothing, no longer watched
    assert "Everything" not in manager.guard.watches
    assert _call(svc, "rollback", rule="Everything").json()["rule"]["watched"]  # live again: watched again
    clock[0] += 61.0  # its first minute passed with no traffic
    assert wait_for(lambda: "Everything" not in manager.guard.watches)
    for i in range(25):
        svc.post_event(post(f"calm {i}"))
    assert _rules(svc)["Everything"]["stage"] == "live"
    assert svc.get("/v1/audit?action=rules.guard_pause", scope="admin").json()["entries"] == []

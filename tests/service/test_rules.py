"""Rules versions over HTTP and from disk: checked, activated atomically, rejected with the checker's
messages while the running version keeps serving, listed, rolled back, and hot reloaded."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from .helpers import COMMON, RULES, Running, post, wait_for, write_rules

BROKEN = 'entity user = event.actor.id\nrule "Oops"\n  when event is "post" and unknown_thing > 3\n  then flag\n'
FLAG_ALL = 'rule "Everything" when event is "post" then flag\n'


def _upload(svc: Running, files: dict[str, str], **extra: Any) -> Any:
    return svc.client.post("/v1/rules", json={"files": files, **extra}, headers=svc.headers("admin"))


def _active(svc: Running) -> dict[str, Any]:
    body: dict[str, Any] = svc.get("/v1/rules").json()
    return body


def test_active_version_describes_the_rules(svc: Running) -> None:
    body = _active(svc)
    assert body["seq"] == 1 and body["active"] is True
    assert body["author"].startswith("disk:")
    assert {r["name"] for r in body["rules"]} == {"Shouting", "Bad words", "Marked users", "Big spender"}
    assert body["paths"] == ["common.vigil", "lists/bad.txt", "main.vigil"]
    assert "files" not in body
    assert svc.get("/v1/rules?files=true").json()["files"]["common.vigil"] == COMMON


def test_upload_activates_a_new_version(store_svc: Running) -> None:
    response = _upload(store_svc, {"main.vigil": FLAG_ALL}, message="flag everything")
    assert response.status_code == 201
    body = response.json()
    assert (body["seq"], body["active"], body["author"], body["message"]) == (2, True, "token:admin", "flag everything")
    assert store_svc.post_event(post("calm")).json()["verdict"] == "flag"
    assert store_svc.post_event(post("calm")).json()["ruleset"] == body["version"]
    assert _active(store_svc)["seq"] == 2


def test_a_broken_upload_is_rejected_with_locations_and_the_old_version_serves(store_svc: Running) -> None:
    response = _upload(store_svc, {"main.vigil": BROKEN})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "rules_rejected"
    [diagnostic] = [d for d in error["diagnostics"] if d["severity"] == "error"]
    assert (diagnostic["file"], diagnostic["line"], diagnostic["column"]) == ("main.vigil", 3, 28)
    assert diagnostic["text"].startswith("main.vigil:3:28: error: unknown name")
    assert "^" in diagnostic["rendered"]
    assert _active(store_svc)["seq"] == 1
    assert store_svc.post_event(post("hey!!!!!")).json()["verdict"] == "flag"
    assert len(store_svc.get("/v1/rules/versions").json()["versions"]) == 1  # nothing stored


def test_an_upload_whose_own_tests_fail_is_rejected(store_svc: Running) -> None:
    failing = FLAG_ALL + 'test "nothing fires" given "post" with text = "x" expect allow\n'
    response = _upload(store_svc, {"main.vigil": failing})
    assert response.status_code == 422
    [failure] = response.json()["error"]["test_failures"]
    assert failure["name"] == "nothing fires"
    assert "expected verdict allow, got flag" in failure["failures"][0]
    assert _active(store_svc)["seq"] == 1


def test_dry_run_checks_without_storing(svc: Running) -> None:
    response = svc.client.post("/v1/rules?dry_run=true", json={"files": {"a.vigil": FLAG_ALL}},
                               headers=svc.headers("admin"))
    assert response.status_code == 200 and response.json()["dry_run"] is True
    assert _active(svc)["seq"] == 1


def test_upload_shape_is_checked(store_svc: Running) -> None:
    cases: list[Any] = [{"files": "x"}, {"files": {}}, {"files": {"../x.vigil": ""}}, {"files": {"/abs.vigil": ""}},
                        {"files": {"a.vigil": 3}}, {"files": {"a.vigil": ""}, "entry": ["b.vigil"]},
                        {"files": {"a.txt": ""}}, {"files": {"a.vigil": ""}, "message": 5}, ["files"]]
    for case in cases:
        response = store_svc.client.post("/v1/rules", json=case, headers=store_svc.headers("admin"))
        assert response.status_code == 422, case
        assert response.json()["error"]["code"] == "invalid_upload" or case == ["files"]
    assert store_svc.client.post("/v1/rules", content=b"{", headers=store_svc.headers("admin")).status_code == 400
    too_big = store_svc.client.post("/v1/rules", content=b" " * (9 << 20), headers=store_svc.headers("admin"))
    assert too_big.status_code == 413


def test_versions_activate_and_rollback(store_svc: Running) -> None:
    assert _upload(store_svc, {"main.vigil": FLAG_ALL}).status_code == 201
    versions = store_svc.get("/v1/rules/versions").json()
    assert [v["seq"] for v in versions["versions"]] == [2, 1] and versions["active"] == 2
    one = store_svc.get("/v1/rules/versions/1").json()
    assert one["files"]["main.vigil"] == RULES
    rolled = store_svc.client.post("/v1/rules/rollback", headers=store_svc.headers("admin"))
    assert rolled.status_code == 200 and rolled.json()["seq"] == 1
    assert store_svc.post_event(post("calm")).json()["verdict"] == "allow"
    assert store_svc.client.post("/v1/rules/rollback", headers=store_svc.headers("admin")).status_code == 409
    forward = store_svc.client.post("/v1/rules/versions/2/activate", headers=store_svc.headers("admin"))
    assert forward.status_code == 200
    assert store_svc.post_event(post("calm")).json()["verdict"] == "flag"
    assert store_svc.client.post("/v1/rules/versions/99/activate", headers=store_svc.headers("admin")).status_code == 404
    assert store_svc.get("/v1/rules/versions/99").status_code == 404
    assert store_svc.get("/v1/rules/versions/x").status_code == 400


def test_a_change_on_disk_is_picked_up_within_seconds(svc: Running) -> None:
    (svc.rules_dir / "extra.vigil").write_text('rule "Purchases" when event is "purchase" then flag\n')
    assert wait_for(lambda: _active(svc)["seq"] == 2)
    assert _active(svc)["author"].startswith("disk:")
    event = {"type": "purchase", "id": "p1", "time": 0, "actor": {"id": "u1"}, "amount": 1}
    assert svc.post_event(event).json()["verdict"] == "flag"


def test_a_broken_change_on_disk_keeps_the_old_version(svc: Running) -> None:
    (svc.rules_dir / "main.vigil").write_text(BROKEN)
    assert wait_for(lambda: 'vigil_rules_reloads_total{result="rejected",source="disk"} 1.0'
                    in svc.get("/metrics").text)
    assert _active(svc)["seq"] == 1
    assert svc.post_event(post("hey!!!!!")).json()["verdict"] == "flag"
    write_rules(svc.rules_dir, RULES.replace('then flag\n\nrule "Bad', 'then block\n\nrule "Bad')
                .replace("expect flag", "expect block"))
    assert wait_for(lambda: _active(svc)["seq"] == 2)
    assert svc.post_event(post("hey!!!!!")).json()["verdict"] == "block"


def test_a_version_activated_by_another_instance_is_picked_up(store_svc: Running) -> None:
    stored = store_svc.store.add_rules_version("elsewhere", {"r.vigil": FLAG_ALL}, ("r.vigil",), author="other",
                                         message="", now=0.0)
    store_svc.store.activate_rules_version(stored.seq)
    assert wait_for(lambda: _active(store_svc)["seq"] == stored.seq)
    assert store_svc.post_event(post("calm")).json()["verdict"] == "flag"


def test_uploads_under_traffic_fail_no_request(store_svc: Running) -> None:
    """The fault check: a broken upload while events flow is rejected, and no event request fails."""
    failures: list[int] = []
    sent = 0
    stop = threading.Event()

    def traffic() -> None:
        nonlocal sent
        while not stop.is_set():
            response = store_svc.post_event(post("hey!!!!!"))
            sent += 1
            if response.status_code != 200 or response.json()["verdict"] not in ("flag", "block"):
                failures.append(response.status_code)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        wait_for(lambda: sent > 20)
        for _ in range(3):
            assert _upload(store_svc, {"main.vigil": BROKEN}).status_code == 422
        good = RULES.replace('then flag\n\nrule "Bad', 'then block\n\nrule "Bad').replace("expect flag", "expect block")
        assert _upload(store_svc, {"main.vigil": good, "common.vigil": COMMON, "lists/bad.txt": "x\n"}).status_code == 201
        done = sent
        wait_for(lambda: sent > done + 20)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert sent > 40
    assert _active(store_svc)["seq"] == 2


DEEP = ('rule "Deep" when event is "post" and event.score' + " + 1" * 250 + " > 0 then flag\n")


def _rules_dir_state(svc: Running) -> Any:
    return svc.get("/readyz").json().get("rules_dir")


def test_a_disk_version_that_does_not_load_shows_in_readyz_and_is_retried(
        make_service: Callable[..., Running]) -> None:
    svc = make_service(reload_retry_interval=0.1)
    (svc.rules_dir / "deep.vigil").write_text(DEEP)  # fails to compile (Python's nesting limit) or to check
    assert wait_for(lambda: _rules_dir_state(svc) is not None)
    ready = svc.get("/readyz")
    assert ready.status_code == 200  # the old version still decides events
    state = ready.json()["rules_dir"]
    assert state["path"] == str(svc.rules_dir) and state["error"] and state["attempts"] >= 1
    assert ready.json()["warnings"] and _active(svc)["seq"] == 1
    assert wait_for(lambda: (_rules_dir_state(svc) or {}).get("attempts", 0) >= 3)  # tried again, unchanged
    assert svc.post_event(post("hey!!!!!")).json()["verdict"] == "flag"
    (svc.rules_dir / "deep.vigil").unlink()
    assert wait_for(lambda: _rules_dir_state(svc) is None)
    assert "warnings" not in svc.get("/readyz").json()


def test_a_disk_load_that_failed_for_a_passing_reason_succeeds_on_retry(
        make_service: Callable[..., Running]) -> None:
    svc = make_service(reload_retry_interval=0.1)
    blocker = sqlite3.connect(svc.store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the store refuses writes (busy) while this transaction lasts
    try:
        (svc.rules_dir / "extra.vigil").write_text(FLAG_ALL)
        assert wait_for(lambda: _rules_dir_state(svc) is not None, timeout=30)
        assert _active(svc)["seq"] == 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert wait_for(lambda: _active(svc)["seq"] == 2, timeout=30)  # no change on disk since: a retry did it
    assert _rules_dir_state(svc) is None
    assert svc.post_event(post("calm")).json()["verdict"] == "flag"


def test_an_upload_whose_tests_ask_for_too_many_events_is_refused_before_they_run(store_svc: Running) -> None:
    # `given 999999999999999999` grew the server to 22.8 GB until the kernel killed it (issue 11.2)
    huge = FLAG_ALL + 'test "huge" given 999999999999999999 "post" with text = "x" expect flag\n'
    for query in ("?dry_run=true", ""):
        response = store_svc.client.post(f"/v1/rules{query}", json={"files": {"main.vigil": huge}},
                                   headers=store_svc.headers("admin"))
        assert response.status_code == 422
        [diagnostic] = [d for d in response.json()["error"]["diagnostics"] if d["severity"] == "error"]
        assert diagnostic["message"] == "a `given` gives at most 10,000 events, not 999,999,999,999,999,999"
    assert _active(store_svc)["seq"] == 1


def test_a_large_version_is_loaded_in_a_worker_process_and_activates(store_svc: Running) -> None:
    words = ", ".join(f'"bw{i}q"' for i in range(30_000))  # over 256 KiB: loaded off the serving process
    big = (f'entity user = event.actor.id\nlist "big" of words = [{words}]\n'
           'rule "Big list" when event is "post" and event.text contains any of list "big" then block\n'
           'rule "Pattern" when event is "post" and event.text matches /^x+y$/i then flag\n'
           'test "a listed word blocks"\n  given "post" from user "u" with text = "hello bw29999q"\n  expect block\n')
    assert store_svc.client.app.state.service.rules.loader.wanted({"main.vigil": big})
    response = _upload(store_svc, {"main.vigil": big})
    assert response.status_code == 201, response.text
    assert store_svc.post_event(post("so bw12345q there")).json()["verdict"] == "block"
    assert store_svc.post_event(post("XXXY")).json()["verdict"] == "flag"  # the regex came across too
    assert store_svc.post_event(post("bw12345")).json()["verdict"] == "allow"
    broken = _upload(store_svc, {"main.vigil": big.replace('"big" then block', '"bigg" then block')})
    assert broken.status_code == 422
    assert "did you mean" in broken.text or "bigg" in broken.text
    failing = _upload(store_svc, {"main.vigil": big.replace("expect block", "expect allow")})
    assert failing.status_code == 422 and failing.json()["error"]["test_failures"]
    assert _active(store_svc)["seq"] == 2


def test_a_version_python_cannot_compile_is_refused_everywhere(svc: Running, store_svc: Running) -> None:
    """Issue 11.1: 250 additions passed the checker, then a 500 SyntaxError half-replaced the running
    version (every event 500 while /v1/rules showed the old one). Now the checker refuses it: dry run,
    upload and a change on disk alike, and the old version keeps deciding."""
    for query in ("?dry_run=true", ""):
        response = store_svc.client.post(f"/v1/rules{query}", json={"files": {"main.vigil": DEEP}},
                                         headers=store_svc.headers("admin"))
        assert response.status_code == 422, response.text
        [diagnostic] = [d for d in response.json()["error"]["diagnostics"] if d["severity"] == "error"]
        assert "nests 253 levels deep" in diagnostic["text"]
    assert _active(store_svc)["seq"] == 1
    assert store_svc.post_event(post("hey!!!!!")).json()["verdict"] == "flag"
    (svc.rules_dir / "deep.vigil").write_text(DEEP)
    assert wait_for(lambda: 'vigil_rules_reloads_total{result="rejected",source="disk"} 1.0'
                    in svc.get("/metrics").text)
    assert _active(svc)["seq"] == 1
    assert svc.post_event(post("hey!!!!!")).json()["verdict"] == "flag"

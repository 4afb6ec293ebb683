"""Child-safety reports (issue 14.9): a decision with a report action builds a CyberTipline-like package
(reporter, incident time, the account, hashes and matched bank entries, the events' metadata with IP
and time), stores it in its own restricted table, delivers it through the outbox to the configured
sink (a real webhook receiver on loopback here), and serves it as JSON to the child-safety role only,
each view audited. A text-only case is reported too, flagged, never skipped (Coop #661)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from starlette.testclient import TestClient

from tests.backends.servers import free_port
from tests.sinks.receiver import Received, receiver
from vigil.audit import AuditLog
from vigil.people import People, parse_grants
from vigil.review import ReviewConfigError, ReviewStore, validate
from vigil.review.child_safety import build_report
from vigil.service import ServiceSettings, create_app
from vigil.service.auth import create_token
from vigil.settings import Settings
from vigil.stores.sqlite import SqliteStore

RULES = 'rule "Anything" when event is "post" and event.text == "never" then flag\n'
QUEUES = {"csam": {"child_safety": True, "actions": {"report_csam": {"kind": "label", "label": "csam-reported"},
                                                     "dismiss": {"kind": "dismiss"}}}}
PEOPLE = {"ann": ["reviewer"], "boss": ["admin"], "carol": ["child_safety_reviewer"]}
SECRET = b"ncmec-test-secret"


class Api:
    def __init__(self, client: TestClient, path: Path, tokens: dict[str, str], received: Received) -> None:
        self.client, self.path, self.tokens, self.received = client, path, tokens, received

    def call(self, method: str, path: str, who: str, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers={"Authorization": f"Bearer {self.tokens[who]}"}, **kwargs)

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
    port = free_port()
    config = Settings(service=ServiceSettings(rules_dir=str(rules), token_cache_seconds=0.0), queues=QUEUES,
                      review={"reports": {"actions": ["report_csam"], "sink": "ncmec",
                                          "reporter": {"company": "Example Social", "email": "safety@example.org"}}},
                      sinks={"ncmec": {"kind": "webhook", "url": f"http://127.0.0.1:{port}/report",
                                       "secret": SECRET.decode(), "poll": 0.05, "backoff": 0.05}})
    with receiver(port, SECRET) as received, \
            TestClient(create_app(config.service, store, config=config), base_url="http://localhost") as client:
        yield Api(client, path, tokens, received)


def test_a_text_only_csam_decision_is_reported_delivered_and_restricted(api: Api) -> None:
    review = ReviewStore(sqlite_path=str(api.path))
    try:
        item, _ = review.add_hit("csam", "user", "u1", "e1", {"event": {"source": "http:x", "id": "p1", "type": "post",
                                                                        "time": 1767225600.0}, "rules": ["Grooming"]},
                                 0.0, time.time())
    finally:
        review.close()
    api.call("POST", f"/v1/review/items/{item.id}/claim", "carol")
    decided = api.call("POST", f"/v1/review/items/{item.id}/decide", "carol",
                       json={"action": "report_csam", "reason": "grooming messages"})
    assert decided.status_code == 201, decided.text
    listed = api.call("GET", "/v1/review/reports", "carol").json()["reports"]
    assert [(r["item"], r["actor"], r["text_only"]) for r in listed] == [(item.id, "carol", True)]
    report = api.call("GET", f"/v1/review/reports/{listed[0]['id']}", "carol").json()
    assert report["text_only"] is True and report["files"] == [] and "text-only" in report["note"]
    assert report["reportedPerson"]["key"] == "u1"
    assert report["reporter"]["reportingPerson"]["company"] == "Example Social"
    assert report["incidentSummary"]["incidentDateTime"] == 1767225600.0
    assert [e["id"] for e in report["events"]] == ["p1"]
    # Restricted: a plain reviewer and an admin get the 404 of a report that does not exist.
    for who in ("ann", "boss"):
        assert api.call("GET", "/v1/review/reports", who).json()["reports"] == []
        hidden = api.call("GET", f"/v1/review/reports/{report['id']}", who)
        assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "no_report")
    assert api.audit("child_safety.report") == [("carol", f"report:{report['id']}")]
    assert api.audit("child_safety.report.view") == [("carol", f"report:{report['id']}")]
    # Delivered to the configured sink through the outbox, signed, once.
    deadline = time.monotonic() + 20
    while not api.received.messages:
        assert time.monotonic() < deadline, "the report never reached the receiver"
        time.sleep(0.05)
    (sent,) = api.received.messages.values()
    assert sent["type"] == "child_safety_report" and sent["report"]["id"] == report["id"]
    assert api.received.bad_signatures == 0 and api.received.key_mismatches == 0


def test_a_dismissal_makes_no_report(api: Api) -> None:
    review = ReviewStore(sqlite_path=str(api.path))
    try:
        item, _ = review.add_hit("csam", "user", "u2", "e2", {"event": {"id": "p2"}}, 0.0, time.time())
    finally:
        review.close()
    api.call("POST", f"/v1/review/items/{item.id}/claim", "carol")
    assert api.call("POST", f"/v1/review/items/{item.id}/decide", "carol", json={"action": "dismiss"}).status_code == 201
    assert api.call("GET", "/v1/review/reports", "carol").json()["reports"] == []


def test_the_package_carries_hashes_matched_entries_and_ips() -> None:
    match = {"bank": "ncmec-hashes", "entry": "h42", "hash": "f" * 64, "distance": 3, "tags": ["csam"], "source": "ncmec"}
    recorded = [{"source": "api", "event_id": "p1", "event": {"type": "post", "ip": "203.0.113.7",
                                                               "actor": {"id": "u1", "ip_address": "198.51.100.2"}},
                 "decisions": [{"explanation": [{"rule": "Known CSAM", "features": {
                     'event.image matches bank "ncmec-hashes"': [match]}}]}]}]
    report = build_report(report_id="report_1", decision={"id": "dec_1", "actor": "carol", "action": "report_csam",
                                                          "reason": "", "policy": "", "created_at": 2.0},
                          item={"id": "item_1", "queue": "csam", "subject": {"entity": "user", "key": "u1"}},
                          evidence=[{"event": {"source": "api", "id": "p1", "time": 1.0}, "rules": ["Known CSAM"]}],
                          recorded=recorded, reporter={"company": "Example"}, now=3.0)
    assert report["text_only"] is False and report["note"] == ""
    assert [(f["bank"], f["entry"], f["hash"], f["distance"]) for f in report["files"]] == [
        ("ncmec-hashes", "h42", "f" * 64, 3)]
    assert report["reportedPerson"]["ips"] == ["203.0.113.7", "198.51.100.2"]
    assert report["events"][0]["in_record"] is True and report["events"][0]["metadata"]["type"] == "post"


def test_a_report_action_belongs_in_a_child_safety_queue() -> None:
    with pytest.raises(ReviewConfigError, match="queues.spam.actions.csam: a child-safety report action"):
        validate({"reports": {"actions": ["csam"]}}, {"spam": {"actions": {"csam": {"kind": "dismiss"}}}})


def test_reports_through_the_cli(tmp_path: Path) -> None:
    """`vigil review reports` and `vigil review report ID -o FILE` against a real server: a plain
    reviewer sees none and cannot export one."""
    from click.testing import CliRunner

    from tests.review import serving
    from vigil.cli import main

    rules = ('entity user = event.actor.id\nrule "Possible CSAM" when event is "post" and event.text contains '
             '"csam-test-marker" then review, output "safety-review" with subject user\n')
    toml = ('[sinks.review]\nkind = "queue"\nqueue = "csam"\npoll = 0.05\n[outputs]\n"safety-review" = "review"\n'
            '[review.reports]\nactions = ["report_csam"]\n[queues.csam]\nchild_safety = true\n'
            '[queues.csam.actions.report_csam]\nkind = "dismiss"\n')
    with serving.served(tmp_path, rules, toml, {"ann": ["reviewer"], "carol": ["child_safety_reviewer"]}) as (url, tokens):
        def review(who: str, *args: str) -> Any:
            return CliRunner().invoke(main, ["review", "--url", url, "--token", tokens[who], *args])

        import httpx

        httpx.post(f"{url}/v1/events", headers={"Authorization": f"Bearer {tokens['ingest']}"}, timeout=30,
                   json={"type": "post", "id": "p1", "time": time.time(), "actor": {"id": "u9"}, "text": "csam-test-marker"})
        deadline = time.monotonic() + 20
        while "user:u9" not in (claimed := review("carol", "claim", "csam").output):
            assert time.monotonic() < deadline, claimed
            time.sleep(0.05)
        assert review("carol", "decide", claimed.split()[0], "report_csam").exit_code == 0
        listing = review("carol", "reports").output
        assert "TEXT ONLY" in listing
        report_id = listing.split()[0]
        out = tmp_path / "report.json"
        assert review("carol", "report", report_id, "-o", str(out)).exit_code == 0
        assert '"text_only": true' in out.read_text() and (out.stat().st_mode & 0o777) == 0o600
        assert review("ann", "reports").output.strip() == "no reports you may see"
        refused = review("ann", "report", report_id)
        assert refused.exit_code != 0 and "404 no_report" in refused.output


def test_a_report_decision_left_applying_is_reported_at_the_next_start(tmp_path: Path) -> None:
    """A process stopped between storing a report decision and making its report: the next start makes
    it (the report is part of applying the decision), once."""
    from vigil.review import Review

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "main.vigil").write_text(RULES)
    path = tmp_path / "vigil.sqlite"
    settings = {"reports": {"actions": ["report_csam"]}}
    review = Review(ReviewStore(sqlite_path=str(path)), validate(settings, QUEUES))
    item, _ = review.store.add_hit("csam", "user", "u7", "e1", {"event": {"id": "p7"}}, 0.0, time.time())
    review.claim(item.id, "carol")
    review.decide(item.id, "carol", "report_csam")
    review.close()
    store = SqliteStore(path)
    people = People.over(store, AuditLog.over(store), hasher=PasswordHasher.from_parameters(CHEAPEST))
    people.create("carol", parse_grants(["child_safety_reviewer"]), actor="root")
    people.close()
    token = create_token(store, "carol", ["review"], person="carol")[1].get_secret_value()
    config = Settings(service=ServiceSettings(rules_dir=str(rules), token_cache_seconds=0.0), queues=QUEUES,
                      review=settings)
    with TestClient(create_app(config.service, store, config=config), base_url="http://localhost") as client:
        reports = client.get("/v1/review/reports", headers={"Authorization": f"Bearer {token}"}).json()["reports"]
        assert [(r["item"], r["actor"]) for r in reports] == [(item.id, "carol")]

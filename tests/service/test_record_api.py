"""The record over HTTP: an entity's timeline, a recorded event as it was decided, and decisions that
outlive the in-memory recent ones."""

from __future__ import annotations

from collections.abc import Callable

from .helpers import Running, post


def test_entity_timeline_shows_events_and_labels_paged(svc: Running) -> None:
    sent = [post("hello", user="u7"), post("a badword here", user="u7"), post("hello", user="u8")]
    for body in sent:
        assert svc.post_event(body, scope="admin").status_code == 200
    response = svc.get("/v1/entities/user/u7", scope="admin")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [e["event_id"] for e in body["events"]] == [sent[1]["id"], sent[0]["id"]]
    assert body["events"][0]["verdict"] == "review" and body["events"][0]["rules"] == ["Bad words"]
    assert body["events"][0]["decisions"][0]["explanation"][0]["rule"] == "Bad words"
    labels = {label["label"]: label for label in body["labels"]}
    assert labels["potty-mouth"]["present"] and labels["potty-mouth"]["source"] == "rule"
    assert labels["potty-mouth"]["actor"] == "Bad words" and labels["potty-mouth"]["expires_at"] is not None
    assert len(body["label_history"]) == 1
    assert body["next_cursor"] is None
    # Paged: one event a page, the cursor leads to the older one.
    first = svc.get("/v1/entities/user/u7?limit=1", scope="admin").json()
    assert [e["event_id"] for e in first["events"]] == [sent[1]["id"]] and first["next_cursor"]
    second = svc.get(f"/v1/entities/user/u7?limit=1&after={first['next_cursor']}", scope="admin").json()
    assert [e["event_id"] for e in second["events"]] == [sent[0]["id"]]
    assert svc.get("/v1/entities/user/u7?limit=0", scope="admin").status_code == 400
    assert svc.get("/v1/entities/user/u7?after=junk", scope="admin").json()["error"]["code"] == "bad_cursor"


def test_a_token_reads_only_the_sources_it_may(svc: Running) -> None:
    assert svc.post_event(post("hello", user="u9")).status_code == 200  # sent by the "ingest" token
    assert svc.get("/v1/entities/user/u9", scope="read").json()["events"] == []
    assert len(svc.get("/v1/entities/user/u9", scope="admin").json()["events"]) == 1
    assert svc.client.get("/v1/entities/user/u9").status_code == 401


def test_a_recorded_event_is_explained_as_it_was_decided(svc: Running) -> None:
    body = post("a badword", user="u5")
    assert svc.post_event(body, scope="ingest+read").json()["verdict"] == "review"
    stored = svc.get(f"/v1/record/events/{body['id']}", scope="ingest+read").json()
    assert stored["decisions"][0]["verdict"] == "review" and stored["event"]["text"] == "a badword"
    assert svc.get("/v1/record/events/nope", scope="admin").status_code == 404


def test_decisions_outlive_the_recent_ones_in_memory(make_service: Callable[..., Running]) -> None:
    svc = make_service(recent_decisions=1)
    first, second = post("a badword", user="u3"), post("hello", user="u3")
    for body in (first, second):
        assert svc.post_event(body, scope="ingest+read").status_code == 200
    outcome = svc.get(f"/v1/decisions/{first['id']}", scope="ingest+read").json()
    assert outcome["status"] == "decided" and outcome["recorded"] is True
    assert outcome["decision"]["verdict"] == "review"

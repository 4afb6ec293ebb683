"""POST /v1/events, /v1/events/batch and GET /v1/decisions: decisions, bad input, limits, async mode."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from vigil.service.auth import create_token

from .helpers import Running, event, post, wait_for, write_rules


def test_one_event_gets_a_decision_with_its_explanation(svc: Running) -> None:
    response = svc.post_event(post("hello!!!!!"))
    assert response.status_code == 200
    body = response.json()
    assert body["verdict"] == "flag"
    assert body["rules"] == ["Shouting"]
    assert body["explanation"][0]["rule"] == "Shouting"
    assert body["ruleset"]


def test_effects_are_applied_and_returned(svc: Running) -> None:
    body = svc.post_event(post("what a badword", user="u9")).json()
    assert body["verdict"] == "review"
    assert body["effects"][0] == {"kind": "label", "entity": "user", "key": "u9", "label": "potty-mouth",
                                  "expires_at": body["effects"][0]["expires_at"]}
    labels = svc.get("/v1/entities/user/u9/labels?all=true").json()["labels"]
    assert [label["label"] for label in labels] == ["potty-mouth"]


def test_malformed_json_is_a_400_and_a_dead_letter_with_its_bytes(svc: Running) -> None:
    response = svc.client.post("/v1/events", content=b'{"type": "post", oops', headers=svc.headers("ingest"))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "malformed_json" and error["hint"]
    letters = svc.store.dead_letters()
    assert letters[-1].raw == b'{"type": "post", oops'
    assert letters[-1].source == "http:ingest"


def test_wrong_shape_and_wrong_types_are_422_and_dead_letters(svc: Running) -> None:
    before = svc.dead_letters()
    missing_id = svc.post_event({"type": "post", "time": 0})
    assert missing_id.status_code == 422
    assert missing_id.json()["error"]["code"] == "invalid_event"
    assert '"id"' in missing_id.json()["error"]["message"]
    not_an_object = svc.post_event([1, 2, 3])
    assert not_an_object.status_code == 422
    wrong_type = svc.post_event(event("purchase", actor={"id": "u1"}, amount="a lot"))
    assert wrong_type.status_code == 422
    assert wrong_type.json()["error"]["code"] == "wrong_type"
    assert svc.dead_letters() == before + 3
    # Nothing else is affected: the next good event is decided as usual.
    assert svc.post_event(event("purchase", actor={"id": "u1"}, amount=5000)).json()["verdict"] == "review"


def test_a_10_mb_body_is_refused_from_its_length_without_reading_it(svc: Running) -> None:
    before = svc.dead_letters()
    reads = 0

    def body() -> Iterator[bytes]:  # a generator body: only what the server pulls is ever produced
        nonlocal reads
        for _ in range(10):
            reads += 1
            yield b"x" * (1 << 20)

    response = svc.client.post("/v1/events", content=body(),
                                headers={**svc.headers("ingest"), "Content-Length": str(10 << 20)})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert "1048576" in response.json()["error"]["message"]
    assert svc.dead_letters() == before + 1
    assert svc.store.dead_letters()[-1].raw == b""  # counted, but none of its bytes kept
    assert svc.post_event(post("still fine")).status_code == 200
    assert reads < 10  # the server stopped at the declared length; the rest was never asked for


def test_a_chunked_body_is_cut_off_at_the_limit(make_service: Callable[..., Running]) -> None:
    svc = make_service(max_body_bytes=1000)

    def chunks() -> Iterator[bytes]:
        for _ in range(50):
            yield b"y" * 100

    response = svc.client.post("/v1/events", content=chunks(), headers=svc.headers("ingest"))
    assert response.status_code == 413


def test_batches_decide_each_event_and_report_bad_ones(svc: Running) -> None:
    good, bad = post("hi!!!!!!"), {"type": "post"}
    response = svc.client.post("/v1/events/batch", json={"events": [good, bad, post("calm")]},
                               headers=svc.headers("ingest"))
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["results"][0]["verdict"] == "flag"
    assert body["results"][1]["error"]["code"] == "invalid_event"
    assert body["results"][2]["verdict"] == "allow"
    plain_list = svc.client.post("/v1/events/batch", json=[post("x")], headers=svc.headers("ingest"))
    assert plain_list.json()["accepted"] == 1


def test_batch_limits(make_service: Callable[..., Running]) -> None:
    svc = make_service(max_batch=3)
    response = svc.client.post("/v1/events/batch", json=[post("x") for _ in range(4)], headers=svc.headers("ingest"))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_long"
    not_a_list = svc.client.post("/v1/events/batch", json={"events": 3}, headers=svc.headers("ingest"))
    assert not_a_list.status_code == 422
    broken = svc.client.post("/v1/events/batch", content=b"[{", headers=svc.headers("ingest"))
    assert broken.status_code == 400


def test_async_mode_accepts_then_decides(svc: Running) -> None:
    body = post("later!!!!!")
    response = svc.client.post("/v1/events?mode=async", json=body, headers=svc.headers("ingest"))
    assert response.status_code == 202
    assert response.json()["location"] == f"/v1/decisions/{body['id']}"

    def decided() -> bool:
        r = svc.client.get(f"/v1/decisions/{body['id']}", headers=svc.headers("ingest"))
        return r.status_code == 200 and r.json()["status"] == "decided"

    assert wait_for(decided)
    outcome = svc.client.get(f"/v1/decisions/{body['id']}", headers=svc.headers("ingest")).json()
    assert outcome["decision"]["verdict"] == "flag"
    batch = svc.client.post("/v1/events/batch?mode=async", json=[post("a"), {"nope": 1}], headers=svc.headers("ingest"))
    assert batch.status_code == 202
    assert batch.json()["accepted"] == 1


def test_async_mode_refuses_bad_events_at_once(svc: Running) -> None:
    response = svc.client.post("/v1/events?mode=async", content=b"nope", headers=svc.headers("ingest"))
    assert response.status_code == 400


def test_a_full_queue_is_a_503(make_service: Callable[..., Running]) -> None:
    svc = make_service(queue_size=1)
    codes = [svc.client.post("/v1/events?mode=async", json=post("x"), headers=svc.headers("ingest")).status_code
             for _ in range(200)]
    # The drain task runs between requests, so the queue may never fill; if it did, the answer was 503.
    assert set(codes) <= {202, 503}


def test_unknown_decision_and_bad_mode(svc: Running) -> None:
    assert svc.client.get("/v1/decisions/nope", headers=svc.headers("ingest")).status_code == 404
    response = svc.client.post("/v1/events?mode=later", json=post("x"), headers=svc.headers("ingest"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_mode"


def test_unknown_paths_and_methods_are_json_errors(svc: Running) -> None:
    missing = svc.client.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = svc.client.get("/v1/events", headers=svc.headers("ingest"))
    assert wrong.status_code == 405
    assert orjson.loads(wrong.content)["error"]["code"] == "method_not_allowed"


def _deep(depth: int) -> str:
    return "[" * depth + "0" + "]" * depth


def test_a_batch_with_one_deeply_nested_item_answers_per_item(svc: Running) -> None:
    """One item nested 990 levels deep made the whole batch a 500, after the earlier items' labels were
    applied, and left no dead letter (issue 11.6)."""
    before = svc.dead_letters()
    good, bad = post("a badword", user="u9"), post("a badword", user="X")
    body = "[" + orjson.dumps(good).decode() + "," + orjson.dumps(bad).decode().replace('"X"', _deep(990)) + "]"
    response = svc.client.post("/v1/events/batch", content=body, headers=svc.headers("ingest"))
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert first["verdict"] == "review"
    assert second["error"]["code"] == "invalid_event"
    assert "levels deep" in second["error"]["message"]
    assert svc.dead_letters() == before + 1
    assert "levels deep" in svc.store.dead_letters()[-1].reason
    # The same item alone: a 422 with the reason, and a dead letter.
    alone = svc.client.post("/v1/events", content=orjson.dumps(bad).decode().replace('"X"', _deep(990)),
                            headers=svc.headers("ingest"))
    assert alone.status_code == 422 and "levels deep" in alone.json()["error"]["message"]
    assert svc.dead_letters() == before + 2


def test_a_decision_holding_a_value_too_deep_to_encode_still_renders(
        rules_dir: Path, make_service: Callable[..., Running]) -> None:
    """A feature value over 254 levels deep (past orjson's limit) made the decision, and then GET
    /v1/decisions/{id} forever, a 500 after its label was applied (issue 11.6)."""
    write_rules(rules_dir, 'use "common.vigil"\nrule "Has meta"\n  when event is "post" and event.meta exists\n'
                           '  then flag, label user "meta" for 1 day\n')
    running = make_service(max_depth=1000)
    deep = post("hi", user="u7")
    body = orjson.dumps(deep).decode()[:-1] + ', "meta": ' + _deep(300) + "}"
    response = running.client.post("/v1/events", content=body, headers=running.headers("ingest"))
    assert response.status_code == 200, response.text
    assert response.json()["verdict"] == "flag"
    assert "too deep to show" in response.text
    again = running.get(f"/v1/decisions/{deep['id']}", scope="ingest")
    assert again.status_code == 200 and again.json()["decision"]["verdict"] == "flag"
    assert [label["label"] for label in running.get("/v1/entities/user/u7/labels").json()["labels"]] == ["meta"]


COUNTING = """\
entity user = event.actor.id
define posts = count of "post" by user in the last 1 hour
rule "Second post" when event is "post" and posts >= 2 then flag
"""


def test_event_ids_are_per_source(make_service: Callable[..., Running], rules_dir: Path) -> None:
    (rules_dir / "main.vigil").write_text(COUNTING)
    (rules_dir / "common.vigil").unlink()
    svc = make_service()
    now = time.time()
    first = {"type": "post", "id": "same", "time": now, "actor": {"id": "u1"}}
    second = {"type": "post", "id": "same", "time": now + 1, "actor": {"id": "u1"}}
    assert svc.post_event(first, scope="ingest").json()["verdict"] == "allow"
    # Another source reusing the id is another event: it counts (it was taken for a redelivery)
    assert svc.post_event(second, scope="ingest+read").json()["verdict"] == "flag"
    # A redelivery from the same source is still recognised: nothing counted twice
    assert svc.post_event(first, scope="ingest").json()["verdict"] == "allow"
    # Each source reads its own decision (one overwrote the other)
    mine = svc.client.get("/v1/decisions/same", headers=svc.headers("ingest")).json()
    theirs = svc.client.get("/v1/decisions/same", headers=svc.headers("ingest+read")).json()
    assert (mine["decision"]["verdict"], theirs["decision"]["verdict"]) == ("allow", "flag")
    ambiguous = svc.client.get("/v1/decisions/same", headers=svc.headers("admin"))
    assert ambiguous.status_code == 409 and "?source=" in ambiguous.json()["error"]["hint"]
    named = svc.client.get("/v1/decisions/same?source=ingest%2Bread", headers=svc.headers("admin")).json()
    assert named["decision"]["verdict"] == "flag"


def test_a_token_reads_only_the_decisions_of_the_sources_it_was_granted(
        make_service: Callable[..., Running], rules_dir: Path) -> None:
    (rules_dir / "main.vigil").write_text(COUNTING)
    (rules_dir / "common.vigil").unlink()
    svc = make_service()
    _, granted = create_token(svc.store, "dashboard", ["read"], read_sources=["ingest"])
    svc.secrets["dashboard"] = granted.get_secret_value()
    now = time.time()
    assert svc.post_event({"type": "post", "id": "theirs", "time": now, "actor": {"id": "u1"}},
                          scope="ingest+read").status_code == 200
    assert svc.post_event({"type": "post", "id": "mine", "time": now, "actor": {"id": "u2"}}).status_code == 200
    # Another ingest token can neither find the id nor name its source
    hidden = svc.client.get("/v1/decisions/theirs", headers=svc.headers("ingest"))
    assert hidden.status_code == 404
    named = svc.client.get("/v1/decisions/theirs?source=ingest%2Bread", headers=svc.headers("ingest"))
    assert named.status_code == 403 and "--read-source" in named.json()["error"]["hint"]
    # A read token granted the "ingest" source reads that source's decisions, and only those
    assert svc.client.get("/v1/decisions/mine", headers=svc.headers("dashboard")).json()["status"] == "decided"
    assert svc.client.get("/v1/decisions/mine?source=ingest", headers=svc.headers("dashboard")).status_code == 200
    assert svc.client.get("/v1/decisions/theirs", headers=svc.headers("dashboard")).status_code == 404
    # A read token with no grant reads nothing; an admin token reads every source
    assert svc.client.get("/v1/decisions/mine", headers=svc.headers("read")).status_code == 404
    assert svc.client.get("/v1/decisions/theirs", headers=svc.headers("admin")).status_code == 200

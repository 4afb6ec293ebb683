"""Quality checks (issue 14.7, Coop #208): golden items handed out at a queue's rate like any other
item, scored on decision and never doing anything; a share of decisions sent to a second, different
reviewer with their agreement recorded; numbers per queue and per reviewer. Over real SQLite and
PostgreSQL, and through the API."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.review.conftest import Clock
from tests.review.test_api import Api, api  # noqa: F401 - the API fixture over the real app
from vigil.review import ReviewError
from vigil.review.quality import Quality

QUEUES = {"spam": {"golden_rate": 1.0, "second_review_rate": 0.0,
                   "actions": {"spammer": {"kind": "label", "label": "spammer"}, "dismiss": {"kind": "dismiss"}}}}


def _review(review_over: Callable[..., Any], state_store: Any, queues: dict[str, Any]) -> Any:
    review = review_over(queues)
    review.quality = Quality.over(state_store, review.store)
    return review


def test_golden_items_are_served_like_any_other_scored_and_never_act(review_over: Callable[..., Any],
                                                                     state_store: Any, clock: Clock) -> None:
    review = _review(review_over, state_store, QUEUES)
    source, _ = review.store.add_hit("spam", "user", "u1", "e1", {"event": {"id": "e1"}}, 0.0, clock.now)
    golden = review.quality.add_golden(source, "spammer", "lead", clock.now)
    real, _ = review.store.add_hit("spam", "user", "u2", "e2", {"event": {"id": "e2"}}, 0.0, clock.now)
    served = review.claim_next("spam", "ann")
    assert served.id not in (source.id, real.id) and (served.subject_key, served.claimed_by) == ("u1", "ann")
    assert [e["event"] for e in review.store.evidence(served.id)] == [{"id": "e1"}]
    assert [e["kind"] for e in review.store.log(served.id)] == ["opened", "claimed"]  # as any item's
    decided = review.decide(served.id, "ann", "dismiss")
    assert decided.decision.effects == [] and decided.check["agreed"] is False
    # Never the same golden item twice to one person: ann gets the next real item.
    assert review.claim_next("spam", "ann").id in (source.id, real.id)
    bob = review.claim_next("spam", "bob")
    assert bob.subject_key == "u1" and review.decide(bob.id, "bob", "spammer").check["agreed"] is True
    numbers = review.quality.numbers(["spam"])
    assert numbers["queues"] == [{"queue": "spam", "golden_answered": 2, "golden_correct": 1, "golden_accuracy": 0.5,
                                  "second_reviews": 0, "agreed": 0, "agreement_rate": None}]
    assert [(r["reviewer"], r["golden_accuracy"]) for r in numbers["reviewers"]] == [("ann", 0.0), ("bob", 1.0)]
    assert golden["answer"] == "spammer"
    # A hit of the subject goes to its real item, never into a golden copy.
    again, _ = review.store.add_hit("spam", "user", "u1", "e9", {"event": {"id": "e9"}}, 0.0, clock.now)
    assert again.id == source.id


def test_a_share_of_decisions_goes_to_a_second_different_reviewer(review_over: Callable[..., Any],
                                                                  state_store: Any, clock: Clock) -> None:
    queues = {"spam": {**QUEUES["spam"], "golden_rate": 0.0, "second_review_rate": 1.0}}
    review = _review(review_over, state_store, queues)
    item, _ = review.store.add_hit("spam", "user", "u1", "e1", {"event": {"id": "e1"}}, 0.0, clock.now)
    review.claim(item.id, "ann")
    assert review.decide(item.id, "ann", "spammer").check is None
    assert review.claim_next("spam", "ann") is None  # never offered to the first reviewer
    (second,) = review.store.items("spam")
    for step in (lambda: review.claim(second.id, "ann"),):
        try:
            step()
            raise AssertionError("the first reviewer claimed the second review")
        except ReviewError as error:
            assert (error.status, error.code) == (409, "same_reviewer")
    assert review.claim_next("spam", "bob").id == second.id
    scored = review.decide(second.id, "bob", "dismiss")
    assert scored.decision.effects == [] and scored.check["agreed"] is False
    assert review.store.items("spam") == []  # a second review is not reviewed again
    numbers = review.quality.numbers(["spam"])
    assert (numbers["queues"][0]["second_reviews"], numbers["queues"][0]["agreement_rate"]) == (1, 0.0)
    assert [(r["reviewer"], r["second_reviews"]) for r in numbers["reviewers"]] == [("ann", 1), ("bob", 1)]


def test_quality_through_the_api(api: Api) -> None:  # noqa: F811
    source = api.item("u1", key="e1")
    refused = api.call("POST", "/v1/review/queues/spam/golden", "ann", json={"item": source, "answer": "spammer"})
    assert refused.status_code == 403
    bad = api.call("POST", "/v1/review/queues/spam/golden", "lead", json={"item": source, "answer": "ban"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "unknown_action")
    made = api.call("POST", "/v1/review/queues/spam/golden", "lead", json={"item": source, "answer": "spammer"})
    assert made.status_code == 201, made.text
    # The queue of test_api hands out golden items only when its rate says so: serve this one directly.
    review = api.client.app.state.review  # type: ignore[attr-defined]
    served = review.quality.serve_golden("spam", "ann", time.time(), 600, 1.0)
    decided = api.call("POST", f"/v1/review/items/{served.id}/decide", "ann",
                       json={"action": "spammer", "reason": "scam"})
    assert decided.status_code == 201, decided.text
    body = decided.json()
    assert body["check"] == {"kind": "golden", "agreed": True, "expected": "spammer"}
    assert body["decision"]["effects"] == [] and "skipped" in body["event"]
    assert api.call("GET", "/v1/entities/user/u1/labels", "viewer").json()["labels"] == []  # no effect at all
    assert api.call("GET", "/v1/review/quality", "ann").status_code == 403
    numbers = api.call("GET", "/v1/review/quality", "lead").json()
    assert {q["queue"]: q["golden_accuracy"] for q in numbers["queues"]}["spam"] == 1.0
    assert [(r["reviewer"], r["golden_answered"]) for r in numbers["reviewers"]] == [("ann", 1)]



def test_golden_items_and_numbers_through_the_cli_and_a_real_server(tmp_path: Any) -> None:
    """`vigil review golden` and `vigil review quality` against a real `vigil serve`: a golden item made
    by a lead is handed to a reviewer at the queue's rate 1, and the numbers show the answer scored."""
    import httpx
    from click.testing import CliRunner

    from tests.review import serving
    from vigil.cli import main

    rules = ('entity user = event.actor.id\nrule "Spam" when event is "post" and event.text contains "spam" '
             'then flag, output "spam-review" with subject user\n')
    toml = ('[sinks.review]\nkind = "queue"\nqueue = "spam"\npoll = 0.05\n[outputs]\n"spam-review" = "review"\n'
            '[queues.spam]\ngolden_rate = 1.0\n[queues.spam.actions.spammer]\nkind = "label"\nlabel = "spammer"\n')
    with serving.served(tmp_path, rules, toml, {"ann": ["reviewer"], "lead": ["review_lead"]}) as (url, tokens):
        def review(who: str, *args: str) -> Any:
            return CliRunner().invoke(main, ["review", "--url", url, "--token", tokens[who], *args])

        httpx.post(f"{url}/v1/events", headers={"Authorization": f"Bearer {tokens['ingest']}"}, timeout=30,
                   json={"type": "post", "id": "p1", "time": time.time(), "actor": {"id": "u1"}, "text": "spam"})
        deadline = time.monotonic() + 20
        while "user:u1" not in (listing := review("lead", "items", "spam").output):
            assert time.monotonic() < deadline, listing
            time.sleep(0.05)
        made = review("lead", "golden", "spam", listing.split()[0], "spammer")
        assert made.exit_code == 0 and "answer spammer" in made.output, made.output
        served = review("ann", "claim", "spam").output
        assert served.split()[0] != listing.split()[0] and "user:u1" in served  # a copy, like any item
        assert review("ann", "decide", served.split()[0], "spammer").exit_code == 0
        shown = review("lead", "quality")
        assert "queue spam: golden 1/1 (100%)" in shown.output and "reviewer ann: golden 1/1" in shown.output
        assert review("ann", "quality").exit_code != 0

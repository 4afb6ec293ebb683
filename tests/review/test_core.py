"""Queues, items, claims and decisions over the real stores (SQLite and PostgreSQL): one open item per
queue and subject, two reviewers never holding one item (threads racing on separate connections), leases
lapsing back to the queue on a controlled clock, every refused decision changing nothing, deadlines
escalating and the numbers per queue."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from vigil.review import ReviewError

from .conftest import Clock

QUEUES = {
    "spam": {"target": 3600, "require_reason": True, "escalate_to": "senior", "breach_raise": 5,
             "actions": {"spammer": {"kind": "label", "label": "spammer"},
                         "dismiss": {"kind": "dismiss", "require_reason": False},
                         "up": {"kind": "escalate", "queue": "senior"}}},
    "senior": {"target": 7200},
}


def _hit(review: Any, key: str, subject: str = "u1", priority: float = 0.0, queue: str = "spam") -> Any:
    item, _added = review.store.add_hit(queue, "user", subject, key, {"event": {"id": key}, "rules": ["R"]},
                                        priority, review.clock())
    return item


def test_one_open_item_per_queue_and_subject(review_over: Callable[..., Any], clock: Clock) -> None:
    review = review_over(QUEUES)
    first = _hit(review, "e1", priority=1)
    clock.now += 10
    second = _hit(review, "e2", priority=7)
    again = _hit(review, "e2", priority=9)  # the same message delivered twice: taken once
    assert first.id == second.id == again.id
    assert (again.hits, again.priority) == (2, 7)
    assert [e["key"] for e in review.store.evidence(first.id)] == ["e1", "e2"]
    _hit(review, "e3", priority=0)
    assert review.item(first.id).priority == 7  # priority only rises
    assert _hit(review, "e4", queue="senior").id != first.id  # another queue, another item
    assert _hit(review, "e5", subject="u2").id != first.id


def test_items_are_handed_out_by_priority_then_age(review_over: Callable[..., Any], clock: Clock) -> None:
    review = review_over(QUEUES)
    old = _hit(review, "a", subject="old")
    clock.now += 1
    urgent = _hit(review, "b", subject="urgent", priority=5)
    clock.now += 1
    young = _hit(review, "c", subject="young")
    got = [review.claim_next("spam", "ann").id for _ in range(3)]
    assert got == [urgent.id, old.id, young.id]
    assert review.claim_next("spam", "ann") is None


def test_two_reviewers_racing_never_hold_one_item(review_over: Callable[..., Any]) -> None:
    """Eight reviewers, each on its own connection (as separate processes), race for the same items:
    every item is won by exactly one of them."""
    setup = review_over(QUEUES)
    for n in range(12):
        _hit(setup, f"e{n}", subject=f"u{n}")
    reviewers = [review_over(QUEUES) for _ in range(8)]
    barrier = threading.Barrier(len(reviewers))
    won: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait()
            while (item := reviewers[index].claim_next("spam", f"r{index}")) is not None:
                won.setdefault(item.id, []).append(f"r{index}")
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(reviewers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(won) == 12 and all(len(holders) == 1 for holders in won.values())


def test_two_reviewers_claiming_one_item_by_id(review_over: Callable[..., Any]) -> None:
    setup = review_over(QUEUES)
    item = _hit(setup, "e1")
    reviewers = [review_over(QUEUES) for _ in range(6)]
    barrier = threading.Barrier(len(reviewers))
    outcomes: list[str] = []

    def work(index: int) -> None:
        barrier.wait()
        try:
            reviewers[index].claim(item.id, f"r{index}")
            outcomes.append("won")
        except ReviewError as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(reviewers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already_claimed"] * 5 + ["won"]


def test_a_lease_lapses_back_to_the_queue(review_over: Callable[..., Any], clock: Clock) -> None:
    review = review_over(QUEUES, {"lease": 600})
    item = _hit(review, "e1")
    review.claim(item.id, "ann")
    clock.now += 599
    with pytest.raises(ReviewError) as refused:
        review.claim(item.id, "bob")
    assert refused.value.code == "already_claimed"
    assert review.claim_next("spam", "bob") is None
    clock.now += 1
    assert review.item(item.id).holder(clock.now) is None
    assert review.claim_next("spam", "bob").id == item.id
    with pytest.raises(ReviewError) as late:
        review.decide(item.id, "ann", "spammer", reason="late")
    assert late.value.code == "not_held"
    kinds = [(e["kind"], e["actor"]) for e in review.store.log(item.id)]
    assert kinds == [("opened", "rules"), ("claimed", "ann"), ("lease_expired", "ann"), ("claimed", "bob")]


def test_ann_deciding_after_her_own_lease_ended(review_over: Callable[..., Any], clock: Clock) -> None:
    review = review_over(QUEUES, {"lease": 60})
    item = _hit(review, "e1")
    review.claim(item.id, "ann")
    clock.now += 61
    with pytest.raises(ReviewError) as late:
        review.decide(item.id, "ann", "spammer", reason="late")
    assert (late.value.status, late.value.code) == (409, "lease_expired")
    assert review.item(item.id).state == "open"


@pytest.mark.parametrize(("who", "action", "reason", "status", "code"), [
    ("bob", "spammer", "spam", 409, "not_held"),
    ("ann", "ban-forever", "spam", 422, "unknown_action"),
    ("ann", "spammer", "  ", 422, "reason_required"),
])
def test_refused_decisions_change_nothing(review_over: Callable[..., Any], who: str, action: str, reason: str,
                                          status: int, code: str) -> None:
    review = review_over(QUEUES)
    item = _hit(review, "e1")
    review.claim(item.id, "ann")
    with pytest.raises(ReviewError) as refused:
        review.decide(item.id, who, action, reason=reason)
    assert (refused.value.status, refused.value.code) == (status, code)
    after = review.item(item.id)
    assert (after.state, after.holder(review.clock()), after.decision_id) == ("open", "ann", None)
    assert review.store.decisions_applying() == []


def test_deciding_twice_is_refused(review_over: Callable[..., Any]) -> None:
    review = review_over(QUEUES)
    item = _hit(review, "e1")
    review.claim(item.id, "ann")
    decided = review.decide(item.id, "ann", "spammer", reason="spam links", policy="spam/1")
    assert decided.decision.effects == [{"kind": "label", "entity": "user", "key": "u1", "label": "spammer"}]
    with pytest.raises(ReviewError) as twice:
        review.decide(item.id, "ann", "dismiss")
    assert twice.value.code == "already_decided"
    assert review.item(item.id).decision_id == decided.decision.id
    # The subject's next hit opens a new item: the decided one is closed.
    assert _hit(review, "e2").id != item.id


def test_a_decision_event_names_the_subject_for_the_rules(review_over: Callable[..., Any]) -> None:
    review = review_over(QUEUES)
    item = _hit(review, "e1")
    review.claim(item.id, "ann")
    decision = review.decide(item.id, "ann", "spammer", reason="spam").decision
    event = review.decision_event(decision)
    assert (event["type"], event["id"], event["user"], event["action"], event["reviewer"], event["actor"]) == (
        "review.decision", decision.id, "u1", "spammer", "ann", {"id": "u1", "type": "user"})


def test_deadline_breach_escalates_once_and_is_counted(review_over: Callable[..., Any], clock: Clock) -> None:
    review = review_over(QUEUES)
    item = _hit(review, "e1", priority=1)
    clock.now += 3599
    assert review.sweep() == []
    clock.now += 1
    assert [i.id for i in review.sweep()] == [item.id]
    moved = review.item(item.id)
    assert (moved.queue, moved.priority, moved.breached) == ("senior", 6, True)
    assert review.sweep() == []  # once
    assert review.metrics("spam")["breaches"] == 1
    assert review.metrics("senior")["pending"] == 1


def test_queue_numbers(review_over: Callable[..., Any], clock: Clock) -> None:
    review = review_over(QUEUES)
    items = [_hit(review, f"e{n}", subject=f"u{n}") for n in range(3)]
    clock.now += 100
    for n, item in enumerate(items[:2]):
        review.claim(item.id, "ann")
        clock.now += 10 * (n + 1)
        review.decide(item.id, "ann", "dismiss")
    numbers = review.metrics("spam")
    assert numbers == {"queue": "spam", "target": 3600.0, "pending": 1, "oldest_age": 130.0,
                       "handled_per_hour": 2, "median_handling_time": 120.0, "breaches": 0}


def test_skip_is_recorded_and_not_offered_again(review_over: Callable[..., Any]) -> None:
    review = review_over(QUEUES)
    item = _hit(review, "e1")
    review.claim_next("spam", "ann")
    review.release(item.id, "ann", skip=True)
    assert review.claim_next("spam", "ann") is None
    assert review.claim_next("spam", "bob").id == item.id
    assert [e["kind"] for e in review.store.log(item.id)] == ["opened", "claimed", "skipped", "claimed"]


def test_a_lead_assigns_an_item(review_over: Callable[..., Any]) -> None:
    review = review_over(QUEUES)
    item = _hit(review, "e1")
    review.claim(item.id, "bob", by="lead")
    assert review.item(item.id).holder(review.clock()) == "bob"
    assert review.store.log(item.id)[-1] == {"kind": "assigned", "actor": "lead", "at": review.clock(),
                                             "to": "bob", "lease_until": review.clock() + 600}

"""Review: queues of items for people to decide, over the review tables (store.py).

Items arrive through a queue sink (sink.py) from the outbox, so an item is opened exactly when the
decision that asked for it commits. A reviewer claims an item with a lease; deciding it checks the claim,
the action and the reasons the queue requires, stores the decision, and returns what to apply: label
changes (the caller applies them through the engine's serialised path, as manual labels), messages for
sinks, an escalation. The caller then sends the decision through the rules as an event
(`decision_event`). Nothing here knows HTTP: errors are ReviewError with a status and a code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vigil.people.roles import QueueRef
from vigil.review.settings import ActionSettings, ReviewSettings

if TYPE_CHECKING:
    from vigil.review.child_safety import Reports
    from vigil.review.quality import Quality
from vigil.review.store import DecisionRow, Item, ReviewStore

EVENT_SUBJECT = "event"  # the subject type of an item about one event (a review verdict): key SOURCE/ID
DECISION_EVENT = "review.decision"
MAX_REASON = 2000
HANDLED_WINDOW = 3600.0  # "handled per hour": decisions in the last hour


class ReviewError(Exception):
    """A request the review system refuses, nothing changed: `status` (4xx), `code`, a message and a hint."""

    def __init__(self, status: int, code: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Decided:
    """A stored decision and the item it closed."""

    decision: DecisionRow
    item: Item
    check: dict[str, Any] | None = None  # a quality check's score (vigil.review.quality); None for real items


class Review:
    def __init__(self, store: ReviewStore, settings: ReviewSettings | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings if settings is not None else ReviewSettings()
        self.clock = clock
        self.quality: Quality | None = None  # golden items and second reviews, when attached
        self.reports: Reports | None = None  # child-safety reports, when attached

    def close(self) -> None:
        if self.quality is not None:
            self.quality.close()
        if self.reports is not None:
            self.reports.close()
        self.store.close()

    # ---- reading ----
    def item(self, item_id: str) -> Item:
        item = self.store.get(item_id)
        if item is None:
            raise ReviewError(404, "no_item", f"no review item {item_id!r}", "list a queue's items: GET /v1/review/queues/NAME/items")
        return item

    def queues(self) -> list[str]:
        return sorted(set(self.settings.queues) | {self.settings.default_queue})

    def queue_ref(self, name: str) -> QueueRef:
        """The queue as a permission check sees it: its name, and whether it is a child-safety queue."""
        return QueueRef(name, self.settings.queue(name).child_safety)

    def deadline(self, item: Item) -> float:
        return item.created_at + self.settings.queue(item.queue).target

    def item_json(self, item: Item, now: float | None = None) -> dict[str, Any]:
        now = self.clock() if now is None else now
        holder = item.holder(now)
        return {"id": item.id, "queue": item.queue, "subject": {"entity": item.subject_type, "key": item.subject_key},
                "state": item.state, "priority": item.priority, "created_at": item.created_at,
                "updated_at": item.updated_at, "hits": item.hits, "deadline": self.deadline(item),
                "breached": item.breached, "claimed_by": holder,
                "lease_until": item.lease_until if holder is not None else None,
                "decided_at": item.decided_at, "decision_id": item.decision_id}

    # ---- claims ----
    def claim(self, item_id: str, actor: str, *, by: str | None = None) -> Item:
        now = self.clock()
        item = self.item(item_id)
        self._not_first(item_id, actor)
        claimed = self.store.claim(item_id, actor, now, self.settings.lease_of(item.queue), by=by)
        if claimed is None:
            current = self.item(item_id)
            if current.state != "open":
                raise ReviewError(409, "already_decided", f"item {item_id} is {current.state}", "claim another item")
            raise ReviewError(409, "already_claimed", f"item {item_id} is held by {current.holder(now)!r} until "
                              f"{current.lease_until}", "claim another item, or wait for the lease to end")
        return claimed

    def claim_next(self, queue: str, actor: str) -> Item | None:
        self._known_queue(queue)
        if self.quality is not None:
            golden = self.quality.serve_golden(queue, actor, self.clock(), self.settings.lease_of(queue),
                                               self.settings.queue(queue).golden_rate)
            if golden is not None:
                return golden
        return self.store.claim_next(queue, actor, self.clock(), self.settings.lease_of(queue))

    def _not_first(self, item_id: str, actor: str) -> dict[str, Any] | None:
        """The item's quality check; ReviewError 409 when it is a second review and `actor` decided the first."""
        check = self.quality.check(item_id) if self.quality is not None else None
        if check is not None and check["kind"] == "second" and check["first_actor"] == actor:
            raise ReviewError(409, "same_reviewer", f"{actor} made the first decision of item {item_id}'s subject: "
                              "a second review needs another person", "claim another item")
        return check

    def release(self, item_id: str, actor: str, *, skip: bool = False) -> Item:
        if not self.store.release(item_id, actor, self.clock(), skip=skip):
            self._not_held(self.item(item_id), actor)
        return self.item(item_id)

    def known_queue(self, queue: str) -> None:
        """Nothing for a queue the settings declare or that has items; ReviewError 404 otherwise."""
        self._known_queue(queue)

    def _known_queue(self, queue: str) -> None:
        if queue not in self.settings.queues and queue != self.settings.default_queue and not self.store.items(queue, limit=1):
            # The hint never names a child-safety queue: whoever asks may not know it exists.
            shown = [q for q in self.queues() if not self.queue_ref(q).child_safety]
            raise ReviewError(404, "no_queue", f"no review queue {queue!r}", f"queues: {', '.join(shown)}")

    def _not_held(self, item: Item, actor: str) -> None:
        now = self.clock()
        if item.state != "open":
            raise ReviewError(409, "already_decided", f"item {item.id} is already {item.state}"
                              + (f" (decision {item.decision_id})" if item.decision_id else ""))
        if item.claimed_by == actor:
            raise ReviewError(409, "lease_expired", f"your lease on item {item.id} ended at {item.lease_until}",
                              f"claim it again: POST /v1/review/items/{item.id}/claim")
        holder = item.holder(now)
        raise ReviewError(409, "not_held", f"item {item.id} is not held by {actor!r}"
                          + (f" (held by {holder!r})" if holder else ""),
                          f"claim it first: POST /v1/review/items/{item.id}/claim")

    # ---- deciding ----
    def action(self, queue: str, name: str) -> ActionSettings:
        actions = self.settings.queue(queue).actions
        if name not in actions:
            raise ReviewError(422, "unknown_action", f"queue {queue!r} has no action {name!r}",
                              f"actions here: {', '.join(sorted(actions))}")
        return actions[name]

    def decide(self, item_id: str, actor: str, action_name: str, *, reason: str = "",
               policy: str = "") -> Decided:
        """Close the item `actor` holds with the named action. Raises ReviewError (nothing changed) for an
        unknown item or action, a missing required reason or policy, an item not held or decided already."""
        item = self.item(item_id)
        queue = self.settings.queue(item.queue)
        action = self.action(item.queue, action_name)
        reason, policy = reason.strip(), policy.strip()
        if len(reason) > MAX_REASON or len(policy) > 200:
            raise ReviewError(422, "too_long", f"a reason has at most {MAX_REASON} characters, a policy 200")
        if (action.require_reason if action.require_reason is not None else queue.require_reason) and not reason:
            raise ReviewError(422, "reason_required", f"action {action_name!r} in queue {item.queue!r} needs a reason",
                              '{"action": "…", "reason": "why, for the record and an appeal"}')
        if (action.require_policy if action.require_policy is not None else queue.require_policy) and not policy:
            raise ReviewError(422, "policy_required", f"action {action_name!r} in queue {item.queue!r} needs a policy",
                              '{"action": "…", "reason": "…", "policy": "spam/2.1"}')
        if action.kind in ("label", "unlabel") and item.subject_type == EVENT_SUBJECT:
            raise ReviewError(422, "no_entity", f"item {item.id} is about an event, which cannot carry labels",
                              "send an output about the entity (output \"queue\" about user) to label it")
        check = self._not_first(item_id, actor)
        now = self.clock()
        # A quality check (golden item, second review) is scored and never does anything.
        decision = self.store.decide(item_id, actor, now, action=action_name, reason=reason, policy=policy,
                                     effects=[] if check is not None else self._effects(item, action, now))
        if decision is None:
            self._not_held(self.item(item_id), actor)
            raise AssertionError("unreachable")  # pragma: no cover - _not_held always raises
        if self.quality is not None:
            if check is not None:
                check = self.quality.score(item_id, actor, action_name, now)
            else:
                self.quality.maybe_second(item, decision.id, action_name, actor, now, queue.second_review_rate)
        return Decided(decision, item, check)

    @staticmethod
    def _effects(item: Item, action: ActionSettings, now: float) -> list[dict[str, Any]]:
        """What a decision does, as data stored with it (so that an appeal can undo exactly this)."""
        if action.kind in ("label", "unlabel"):
            out: dict[str, Any] = {"kind": action.kind, "entity": item.subject_type, "key": item.subject_key,
                                   "label": action.label}
            if action.expires_in is not None:
                out["expires_at"] = now + action.expires_in
            return [out]
        if action.kind == "escalate":
            return [{"kind": "escalate", "queue": action.queue}]
        if action.kind == "output":
            return [{"kind": "output", "sink": action.sink}]
        return []

    def escalate(self, decided: Decided) -> None:
        """An escalate decision's move: the item's evidence, in an item of the other queue."""
        for effect in decided.decision.effects:
            if effect["kind"] != "escalate":
                continue
            target = str(effect["queue"])
            for evidence in self.store.evidence(decided.item.id):
                key = evidence.pop("key")
                evidence.pop("added_at", None)
                self.store.add_hit(target, decided.item.subject_type, decided.item.subject_key, key,
                                   evidence, decided.item.priority, decided.decision.created_at)

    def decision_event(self, decision: DecisionRow) -> dict[str, Any]:
        """The decision as an event for the rules, of type review.decision. Its `actor` is the subject the
        decision is about, so that rule sets keyed on `entity user = event.actor.id` count and label the
        same user; the person who decided is `reviewer`. The subject is also under its own type
        (`"user": "u1"`) and in `subject`."""
        event: dict[str, Any] = {
            "type": DECISION_EVENT, "id": decision.id, "time": decision.created_at, "decision": decision.id,
            "item": decision.item_id, "queue": decision.queue, "action": decision.action,
            "reviewer": decision.actor, "reason": decision.reason, "policy": decision.policy,
            "subject": {"entity": decision.subject_type, "key": decision.subject_key},
            "actor": {"id": decision.subject_key, "type": decision.subject_type},
            "effects": [e["kind"] for e in decision.effects],
        }
        if decision.subject_type not in event:
            event[decision.subject_type] = decision.subject_key
        return event

    # ---- deadlines ----
    def sweep(self) -> list[Item]:
        """Escalate every open item past its queue's target: priority raised, moved where the queue says.
        Each item breaches once per queue it is in. Returns the items that breached now."""
        now = self.clock()
        late: list[Item] = []
        for name, queue in sorted(self.settings.queues.items()):
            late += self.store.breach(name, now - queue.target, now, raise_by=queue.breach_raise,
                                      move_to=queue.escalate_to)
        if self.settings.default_queue not in self.settings.queues:
            queue = self.settings.queue(self.settings.default_queue)
            late += self.store.breach(self.settings.default_queue, now - queue.target, now,
                                      raise_by=queue.breach_raise, move_to=queue.escalate_to)
        return late

    def metrics(self, queue: str) -> dict[str, Any]:
        now = self.clock()
        numbers = self.store.queue_numbers(queue, now, now - HANDLED_WINDOW)
        numbers["handled_per_hour"] = numbers.pop("handled")
        return {"queue": queue, "target": self.settings.queue(queue).target, **numbers}

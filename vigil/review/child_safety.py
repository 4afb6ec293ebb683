"""Child safety: which review items are child-safety material, so that nobody without the
`child_safety_reviewer` role sees them (Coop #1154: child-safety jobs visible to ordinary moderators
after a queue change).

An item is restricted when its queue is a child-safety queue (`[queues.NAME] child_safety = true`),
and also when its content went to one: decided with an escalation into one, moved or merged into one
at a deadline breach. So an item an ordinary reviewer escalates to the child-safety queue disappears
from their queue's history too, not only from its open items.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import orjson

from vigil.people.roles import Principal, QueueRef, can
from vigil.review.core import Review
from vigil.review.store import Item


def child_safety_queues(review: Review) -> frozenset[str]:
    return frozenset(name for name, queue in review.settings.queues.items() if queue.child_safety)


def restricted_ids(review: Review, items: Sequence[Item]) -> set[str]:
    """The ids of `items` that are child-safety material (see the module's docstring)."""
    queues = child_safety_queues(review)
    if not queues or not items:
        return set()
    found = {i.id for i in items if i.queue in queues}
    rest = [i.id for i in items if i.id not in found]
    if not rest:
        return found
    marks = ", ".join("?" for _ in rest)
    with review.store.tx() as tx:
        decisions = tx.execute(f"SELECT item_id, effects FROM review_decisions WHERE item_id IN ({marks})",
                               rest).fetchall()
        moves = tx.execute(f"SELECT item_id, detail FROM review_log WHERE kind = 'breached' AND item_id IN ({marks})",
                           rest).fetchall()
    for item_id, effects in decisions:
        if any(e.get("kind") == "escalate" and e.get("queue") in queues for e in orjson.loads(effects)):
            found.add(str(item_id))
    for item_id, detail in moves:
        moved: dict[str, Any] = orjson.loads(detail)
        if moved.get("moved_to") in queues or moved.get("queue") in queues:
            found.add(str(item_id))
    return found


def item_queue(review: Review, item: Item, restricted: Collection[str] | None = None) -> QueueRef:
    """The item's queue as a permission check sees it: a child-safety queue when the item is restricted
    (`restricted`: the restricted ids among a page of items, when already known; else looked up)."""
    ref = review.queue_ref(item.queue)
    if ref.child_safety:
        return ref
    if restricted is None:
        restricted = restricted_ids(review, [item])
    return QueueRef(item.queue, child_safety=item.id in restricted)


def may_see(principal: Principal, queue: QueueRef) -> bool:
    return can(principal, "review.view", queue)

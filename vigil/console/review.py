"""The Review pages: the queues a reviewer may see (pending, oldest age, deadline state), an item with
everything needed to decide it, and the queue's actions, each through the review system's own
functions (vigil.review, as the API's routes call them) and the API's way of applying a decision."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from vigil.people.roles import QueueRef, can
from vigil.review.core import Review
from vigil.service.review import review_of

from .web import in_thread, page, principal_of, render


def queue_ref(review: Review, name: str) -> QueueRef:
    """The queue as the permission check sees it (a child-safety queue, where its settings say so)."""
    return QueueRef(name, bool(getattr(review.settings.queue(name), "child_safety", False)))


def visible_queues(request: Request, review: Review) -> list[str]:
    principal = principal_of(request)
    return [q for q in review.queues() if principal is not None and can(principal, "review.view", queue_ref(review, q))]


def deadline_state(numbers: dict[str, Any]) -> str:
    """ok, near (the oldest item past three quarters of the target) or breached."""
    target, oldest = float(numbers["target"]), float(numbers["oldest_age"])
    if numbers["pending"] and oldest >= target:
        return "breached"
    if numbers["pending"] and oldest >= 0.75 * target:
        return "near"
    return "ok"


@page("review.view")
async def queues(request: Request) -> Response:
    review = review_of(request)
    rows = []
    for name in visible_queues(request, review):
        numbers = await in_thread(review.metrics, name)
        rows.append({**numbers, "state": deadline_state(numbers)})
    return render(request, "review/queues.html", {"queues": rows})

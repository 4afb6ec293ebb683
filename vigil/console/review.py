"""The Review pages: the queues a reviewer may see (pending, oldest age, deadline state), an item with
everything needed to decide it, and the queue's actions, each through the review system's own
functions (vigil.review, as the API's routes call them) and the API's way of applying a decision."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from vigil.people.roles import QueueRef, can
from vigil.review.core import EVENT_SUBJECT, Review, ReviewError
from vigil.review.store import Item
from vigil.service.access import permit
from vigil.service.errors import ApiError
from vigil.service.record import read_timeline
from vigil.service.review import apply_decision, review_of
from vigil.service.state import service

from .web import CONSOLE_PATH, action, in_thread, page, principal_of, render


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
        principal = principal_of(request)
        may_claim = principal is not None and can(principal, "review.claim", queue_ref(review, name))
        rows.append({**numbers, "state": deadline_state(numbers), "may_claim": may_claim})
    return render(request, "review/queues.html", {"queues": rows})


# ---- a queue, an item, and the reviewer's steps ----
def _queue_name(request: Request, review: Review) -> str:
    name = str(request.path_params["queue"])
    if name not in visible_queues(request, review):
        raise ReviewError(404, "no_queue", f"no review queue {name!r} that you may see", "open one from the list")
    return name


@page("review.view")
async def queue(request: Request) -> Response:
    review = review_of(request)
    name = _queue_name(request, review)
    numbers = await in_thread(review.metrics, name)
    items = await in_thread(review.store.items, name, "open", 100)
    now = time.time()
    rows = [review.item_json(i, now) for i in items]
    return render(request, "review/queue.html", {"queue": {**numbers, "state": deadline_state(numbers)},
                                                 "items": rows, "now": now,
                                                 "flash": request.query_params.get("done", "")})


@action("review.view")
async def claim_next(request: Request) -> Response:
    review = review_of(request)
    name = _queue_name(request, review)
    actor = permit(request, "review.claim", queue_ref(review, name)).actor
    item = await in_thread(review.claim_next, name, actor)
    if item is None:
        return RedirectResponse(f"{CONSOLE_PATH}/review/{quote(name, safe='')}?done=empty", status_code=303)
    return RedirectResponse(f"{CONSOLE_PATH}/review/items/{quote(item.id, safe='')}", status_code=303)


async def _item_of(request: Request, permission: str) -> tuple[Review, Item, str]:
    """The item of the path, if the caller may do `permission` in its queue (404 for a queue they may not
    see, so that a child-safety item says nothing); and the caller's name."""
    review = review_of(request)
    item: Item = await in_thread(review.item, str(request.path_params["item_id"]))
    if item.queue not in visible_queues(request, review):
        raise ReviewError(404, "no_item", f"no review item {item.id!r}")
    actor = permit(request, permission, queue_ref(review, item.queue)).actor
    return review, item, actor


def _media(value: Any, path: str = "") -> list[dict[str, str]]:
    """Images inside an event: `data:image/…;base64,` strings of raster types (shown blurred). A URL is
    never loaded (the policy allows only this origin and data:), only shown as text."""
    found: list[dict[str, str]] = []
    if isinstance(value, str):
        head = value[:40].lower()
        if any(head.startswith(f"data:image/{kind};base64,") for kind in RASTER) and len(value) <= MAX_MEDIA:
            found.append({"path": path, "src": value})
    elif isinstance(value, dict):
        for k, v in list(value.items())[:200]:
            found += _media(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:200]):
            found += _media(v, f"{path}[{i}]")
    return found[:20]


RASTER = ("png", "jpeg", "jpg", "gif", "webp")
MAX_MEDIA = 4 << 20


def _fields(event: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """An event's fields, flattened one level for reading (media strings left out: they are shown as media)."""
    if not event:
        return []
    out: list[tuple[str, Any]] = []
    for key, value in list(event.items())[:100]:
        if isinstance(value, dict) and len(value) <= 20:
            out += [(f"{key}.{k}", v) for k, v in value.items()]
        else:
            out.append((key, value))
    return [(k, v) for k, v in out if not (isinstance(v, str) and v[:11].lower().startswith("data:image/"))]


async def _evidence(request: Request, review: Review, item: Item) -> list[dict[str, Any]]:
    """Each evidence event with what the record holds of it: the event as received (redacted) and each
    rule that fired with the values it used."""
    rows = await in_thread(review.store.evidence, item.id, 50)
    engine = service(request).engine
    recorder = engine.recorder if engine is not None else None
    record = getattr(recorder, "record", None)
    out: list[dict[str, Any]] = []
    # The caller may see this queue's items (checked by _item_of), so they read the item's own evidence
    # events from the record, whichever source sent them, and nothing else.
    for row in rows:
        event_ref = row.get("event") or {}
        stored = None
        if record is not None and event_ref.get("id") is not None:
            wanted = [str(event_ref["source"])] if event_ref.get("source") else None
            found = await in_thread(record.find, str(event_ref["id"]), wanted)
            stored = found[0] if found else None
        hits: list[dict[str, Any]] = []
        if stored is not None:
            for decision in stored.decisions:
                hits += [h for h in decision.get("explanation", []) if isinstance(h, dict)]
        elif row.get("reasons"):
            hits = list(row["reasons"])
        event = stored.event if stored is not None else None
        out.append({"ref": event_ref, "rules": row.get("rules", []), "verdict": stored.verdict if stored else row.get("verdict"),
                    "params": row.get("params", {}), "hits": hits, "fields": _fields(event),
                    "media": _media(event), "added_at": row.get("added_at")})
    return out


@page("review.view")
async def item_page(request: Request) -> Response:
    review, item, actor = await _item_of(request, "review.view")
    queue = review.settings.queue(item.queue)
    evidence = await _evidence(request, review, item)
    log = await in_thread(review.store.log, item.id)
    decision = await in_thread(review.store.decision, item.decision_id) if item.decision_id else None
    subject: dict[str, Any] | None = None
    if item.subject_type != EVENT_SUBJECT:
        try:
            subject = await read_timeline(request, item.subject_type, item.subject_key, limit=10)
        except ApiError:
            subject = None  # no record: the item still shows
    now = time.time()
    principal = principal_of(request)
    may_see_media = principal is not None and can(principal, "review.media", queue_ref(review, item.queue))
    person = await in_thread(service(request).people.get, actor) if principal is not None else None
    actions = [{"name": name, "kind": a.kind, "label": a.label, "queue": a.queue, "sink": a.sink,
                "reason": a.require_reason if a.require_reason is not None else queue.require_reason}
               for name, a in queue.actions.items()]
    return render(request, "review/item.html", {
        "item": review.item_json(item, now), "held": item.holder(now) == actor, "evidence": evidence, "log": log,
        "decision": decision.to_json() if decision is not None else None, "subject": subject, "actions": actions,
        "queue_settings": queue, "may_see_media": may_see_media,
        "may_claim": principal is not None and can(principal, "review.claim", queue_ref(review, item.queue)), "blur_media": blur_of(person),
        "flash": request.query_params.get("done", ""), "error": None})


def blur_of(person: Any) -> bool:
    """The person's setting: media blurred until revealed (the default)."""
    prefs = getattr(person, "preferences", None) or {}
    return bool(prefs.get("blur_media", True))


@action("review.view")
async def claim(request: Request) -> Response:
    review, item, actor = await _item_of(request, "review.claim")
    await in_thread(review.claim, item.id, actor)
    return RedirectResponse(f"{CONSOLE_PATH}/review/items/{quote(item.id, safe='')}", status_code=303)


@action("review.view")
async def release(request: Request) -> Response:
    review, item, actor = await _item_of(request, "review.claim")
    skip = request.state.form.get("skip") == "1"
    await in_thread(review.release, item.id, actor, skip=skip)
    return RedirectResponse(f"{CONSOLE_PATH}/review/{quote(item.queue, safe='')}?done={'skipped' if skip else 'released'}",
                            status_code=303)


@action("review.view")
async def decide(request: Request) -> Response:
    """Decide the held item with the form's action and reason, apply it as the API does, then go on to the
    queue's next item (claimed), or back to the queue when none is left."""
    review, item, actor = await _item_of(request, "review.decide")
    form = request.state.form
    svc = service(request)
    svc.running_engine  # noqa: B018 - refuse (503) before anything is stored when the engine is away
    decided = await in_thread(review.decide, item.id, actor, form.get("action", ""),
                              reason=form.get("reason", ""), policy=form.get("policy", ""))
    await apply_decision(svc, review, decided.decision)
    nxt = await in_thread(review.claim_next, item.queue, actor) if form.get("then") == "next" else None
    done = quote(f"decided {decided.decision.action}", safe="")
    if nxt is not None:
        return RedirectResponse(f"{CONSOLE_PATH}/review/items/{quote(nxt.id, safe='')}?done={done}", status_code=303)
    return RedirectResponse(f"{CONSOLE_PATH}/review/{quote(item.queue, safe='')}?done={done}", status_code=303)

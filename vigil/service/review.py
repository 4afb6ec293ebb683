"""Routes: review queues, items, claims and decisions (issue 14; docs/review.md).

Each route is declared once in `ROUTES` with its typed request and response models (pydantic), from
which both the Starlette routes and their part of the OpenAPI document are made. Store work runs in a
thread; a decision's label changes go through the engine's serialised path (as manual labels, visible
to the next event's rules at once), and the decision itself is then decided by the rules as an event
of type `review.decision`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vigil.effects import OutboxMessage
from vigil.people.roles import Principal, QueueRef, can, visible
from vigil.review.child_safety import Reports, build_report, item_queue, may_see, restricted_ids
from vigil.review.core import Decided, Review, ReviewError
from vigil.review.quality import Quality
from vigil.review.store import DecisionRow, Item, new_id
from vigil.service.access import caller, permit
from vigil.service.errors import ApiError, JSONResponse
from vigil.service.ingest import EventRejected
from vigil.service.limits import read_body
from vigil.service.openapi import model_ref
from vigil.service.state import Service, service
from vigil.signals.labels import MANUAL
from vigil.sinks.router import idempotency_key
from vigil.stores.base import LabelBackend

log = logging.getLogger("vigil.review")

MAX_BODY = 64 << 10
DECISION_SOURCE = "review"  # the source of review.decision events


# ---- models ----
class DecideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str = Field(min_length=1, max_length=100, description="one of the queue's actions")
    reason: str = Field(default="", max_length=2000, description="why; required where the queue or action says")
    policy: str = Field(default="", max_length=200, description="the policy applied, e.g. spam/2.1")


class GoldenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: str = Field(min_length=1, max_length=100, description="the item whose evidence becomes a golden item")
    answer: str = Field(min_length=1, max_length=100, description="the right action (one of the queue's)")


class GoldenOut(BaseModel):
    id: str
    queue: str
    subject: Subject
    answer: str
    created_by: str
    created_at: float
    evidence: int


class QualityRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    golden_answered: int
    golden_correct: int
    golden_accuracy: float | None
    second_reviews: int
    agreed: int
    agreement_rate: float | None


class QualityOut(BaseModel):
    queues: list[QualityRow]
    reviewers: list[QualityRow]


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, max_length=100, description="the reviewer who is to hold the item")


class Subject(BaseModel):
    entity: str
    key: str


class ItemOut(BaseModel):
    id: str
    queue: str
    subject: Subject
    state: str
    priority: float
    created_at: float
    updated_at: float
    hits: int
    deadline: float
    breached: bool
    claimed_by: str | None
    lease_until: float | None
    decided_at: float | None
    decision_id: str | None


class DecisionOut(BaseModel):
    id: str
    item_id: str
    queue: str
    action: str
    actor: str
    reason: str
    policy: str
    created_at: float
    state: str
    subject: Subject
    effects: list[dict[str, Any]]


class ItemDetail(BaseModel):
    item: ItemOut
    evidence: list[dict[str, Any]]
    log: list[dict[str, Any]]
    decision: DecisionOut | None


class ItemList(BaseModel):
    queue: str
    items: list[ItemOut]


class ClaimOut(BaseModel):
    item: ItemOut | None = Field(description="the item claimed; null when the queue has none free")


class DecideOut(BaseModel):
    decision: DecisionOut
    item: ItemOut
    event: dict[str, Any] = Field(description="the rules' decision of the review.decision event, or the "
                                  "error that kept them from deciding it (the decision stands either way)")
    check: dict[str, Any] | None = Field(default=None, description="a quality check's score (golden: with the "
                                         "expected answer); null for a real item")


class QueueMetrics(BaseModel):
    queue: str
    target: float = Field(description="target handling time, seconds")
    pending: int
    oldest_age: float
    handled_per_hour: int
    median_handling_time: float | None
    breaches: int


class QueueList(BaseModel):
    queues: list[QueueMetrics]


class ReportSummary(BaseModel):
    id: str
    created_at: float
    item: str
    queue: str
    decision: str
    actor: str
    text_only: bool = Field(description="no media hashes: a text-only case, reported all the same")


class ReportList(BaseModel):
    reports: list[ReportSummary]


class ReportOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    schema_: str = Field(alias="schema")
    id: str
    text_only: bool


class SweepOut(BaseModel):
    breached: list[ItemOut]


# ---- helpers ----
def review_of(request: Request) -> Review:
    review: Review | None = getattr(request.app.state, "review", None)
    if review is None:
        raise ApiError(503, "no_review", "this service runs without review queues",
                       "add a [sinks.NAME] table with kind = \"queue\" (docs/review.md)")
    return review


def hidden_queue(queue: str) -> ApiError:
    """The answer for a queue the caller may not see: the same 404 as for a queue that does not exist,
    so that a child-safety queue's existence does not leak."""
    return ApiError(404, "no_queue", f"no review queue {queue!r}", "list the queues you can see: GET /v1/review/queues")


def hidden_item(item_id: str) -> ApiError:
    return ApiError(404, "no_item", f"no review item {item_id!r}", "list a queue's items: GET /v1/review/queues/NAME/items")


async def queue_access(request: Request, review: Review, queue: str, action: str) -> Principal:
    """The caller, if they may do `action` in `queue`: 404 where they may not see the queue (a child-safety
    queue without the role) or it does not exist, 403 where they see it but may not do this."""
    ref = review.queue_ref(queue)
    if not may_see(caller(request), ref):
        raise hidden_queue(queue)
    await _run(review.known_queue, queue)
    return permit(request, action, ref)


async def item_access(request: Request, review: Review, item_id: str, action: str) -> tuple[Principal, Item, QueueRef]:
    """The caller, the item and its queue, if they may do `action` to it: 404 where the item does not
    exist or they may not see it (child-safety material without the role), 403 where they may not act."""
    item = await _run(review.item, item_id)
    ref = await _run(item_queue, review, item)
    if not may_see(caller(request), ref):
        raise hidden_item(item_id)
    return permit(request, action, ref), item, ref


async def _model(request: Request, model: type[BaseModel]) -> Any:
    raw = await read_body(request, MAX_BODY)
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, "invalid_body", f"{where}: {first['msg']}",
                       f"the body: {orjson.dumps(model.model_json_schema().get('properties', {})).decode()[:300]}") from None


async def _run(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))
    except ReviewError as error:
        raise ApiError(error.status, error.code, error.message, error.hint) from None


def _item(review: Review, item: Any) -> dict[str, Any]:
    return review.item_json(item)


def _decision(decision: DecisionRow) -> dict[str, Any]:
    return decision.to_json()


# ---- routes ----
async def list_queues(request: Request) -> Response:
    principal = permit(request, "review.view")
    review = review_of(request)
    shown = visible(principal, [review.queue_ref(q) for q in review.queues()])
    queues = [await _run(review.metrics, q.name) for q in shown]
    return JSONResponse({"queues": queues})


async def queue_metrics(request: Request) -> Response:
    review = review_of(request)
    queue = request.path_params["queue"]
    await queue_access(request, review, queue, "review.view")
    return JSONResponse(await _run(review.metrics, queue))


async def list_items(request: Request) -> Response:
    review = review_of(request)
    queue = request.path_params["queue"]
    principal = await queue_access(request, review, queue, "review.view")
    state = request.query_params.get("state", "open")
    if state not in ("open", "decided", "merged"):
        raise ApiError(400, "bad_state", f"unknown state {state!r}", "state=open (default), decided or merged")
    items = await _run(review.store.items, queue, state)
    restricted = await _run(restricted_ids, review, items)
    shown = [i for i in items if may_see(principal, item_queue(review, i, restricted))]
    if review.queue_ref(queue).child_safety and shown:
        await audit(request, principal, "review.list", f"queue:{queue}", {"state": state, "items": [i.id for i in shown]})
    return JSONResponse({"queue": queue, "items": [_item(review, i) for i in shown]})


async def get_item(request: Request) -> Response:
    review = review_of(request)
    principal, item, ref = await item_access(request, review, request.path_params["item_id"], "review.view")
    if ref.child_safety:
        # Every view of a child-safety item is in the audit log, before anything of it is shown.
        await audit(request, principal, "review.view", f"item:{item.id}", {"queue": item.queue})
    evidence = await _run(review.store.evidence, item.id)
    history = await _run(review.store.log, item.id)
    decision = await _run(review.store.decision, item.decision_id) if item.decision_id else None
    return JSONResponse({"item": _item(review, item), "evidence": evidence, "log": history,
                         "decision": _decision(decision) if decision is not None else None})


async def claim_next(request: Request) -> Response:
    review = review_of(request)
    queue = request.path_params["queue"]
    principal = await queue_access(request, review, queue, "review.claim")
    item = await _run(review.claim_next, queue, principal.actor)
    return JSONResponse({"item": _item(review, item) if item is not None else None})


async def claim_item(request: Request) -> Response:
    review = review_of(request)
    principal, item, _ = await item_access(request, review, request.path_params["item_id"], "review.claim")
    return JSONResponse({"item": _item(review, await _run(review.claim, item.id, principal.actor))})


async def assign_item(request: Request) -> Response:
    review = review_of(request)
    lead, item, ref = await item_access(request, review, request.path_params["item_id"], "review.assign")
    body: AssignRequest = await _model(request, AssignRequest)
    person = await anyio.to_thread.run_sync(service(request).people.get, body.to)
    if person is None or person.disabled:
        raise ApiError(422, "unknown_reviewer", f"no active person named {body.to!r}",
                       "assign to a person: `vigil user list` names them")
    if not can(person.principal(), "review.claim", ref):
        # Never hand an item to someone who may not see it (a child-safety item to a plain reviewer).
        raise ApiError(422, "not_permitted", f"{body.to} may not claim items in queue {item.queue!r} "
                       f"(roles: {', '.join(person.principal().roles()) or 'none'})",
                       "an admin grants roles with `vigil user roles NAME --role ROLE[:QUEUE]`")
    assigned = await _run(review.claim, item.id, body.to, by=lead.actor)
    await audit(request, lead, "review.assign", f"item:{item.id}", {"queue": item.queue, "to": body.to})
    return JSONResponse({"item": _item(review, assigned)})


async def release_item(request: Request) -> Response:
    review = review_of(request)
    principal, item, _ = await item_access(request, review, request.path_params["item_id"], "review.claim")
    return JSONResponse({"item": _item(review, await _run(review.release, item.id, principal.actor))})


async def skip_item(request: Request) -> Response:
    review = review_of(request)
    principal, item, _ = await item_access(request, review, request.path_params["item_id"], "review.claim")
    return JSONResponse({"item": _item(review, await _run(review.release, item.id, principal.actor, skip=True))})


async def decide_item(request: Request) -> Response:
    review = review_of(request)
    principal, item, _ = await item_access(request, review, request.path_params["item_id"], "review.decide")
    body: DecideRequest = await _model(request, DecideRequest)
    svc = service(request)
    svc.running_engine  # noqa: B018 - refuse (503) before anything is stored when the engine is away
    decided: Decided = await _run(review.decide, item.id, principal.actor, body.action,
                                  reason=body.reason, policy=body.policy)
    await audit(request, principal, "review.decide", f"item:{item.id}",
                {"decision": decided.decision.id, "queue": item.queue, "action": body.action,
                 "subject": f"{item.subject_type}:{item.subject_key}"})
    event = await apply_decision(svc, review, decided.decision)
    item = await _run(review.item, decided.item.id)
    stored = await _run(review.store.decision, decided.decision.id)
    check = decided.check
    shown = None if check is None else {"kind": check["kind"], "agreed": check["agreed"],
                                        **({"expected": check["expected"]} if check["kind"] == "golden" else {})}
    return JSONResponse({"decision": _decision(stored or decided.decision), "item": _item(review, item),
                         "event": event, "check": shown}, status_code=201)


# ---- quality checks ----
def quality_of(review: Review) -> Quality:
    if review.quality is None:
        raise ApiError(503, "no_quality", "quality checks are not running", "restart the service")
    return review.quality


async def add_golden(request: Request) -> Response:
    review = review_of(request)
    queue = request.path_params["queue"]
    lead = await queue_access(request, review, queue, "review.assign")
    body: GoldenRequest = await _model(request, GoldenRequest)
    item = await _run(review.item, body.item)
    ref = await _run(item_queue, review, item)
    if item.queue != queue or not may_see(lead, ref):
        raise ApiError(422, "not_in_queue", f"no item {body.item!r} in queue {queue!r}", "give an item of this queue")
    await _run(review.action, queue, body.answer)  # 422 unknown_action
    golden = await _run(quality_of(review).add_golden, item, body.answer, lead.actor, time.time())
    await audit(request, lead, "review.golden.add", f"golden:{golden['id']}", {"item": item.id, "queue": queue,
                                                                              "answer": body.answer})
    return JSONResponse(golden, status_code=201)


async def quality_numbers(request: Request) -> Response:
    principal = permit(request, "review.assign")
    review = review_of(request)
    shown = [q.name for q in visible(principal, [review.queue_ref(q) for q in review.queues()])]
    return JSONResponse(await _run(quality_of(review).numbers, shown))


async def sweep(request: Request) -> Response:
    principal = permit(request, "review.assign")
    review = review_of(request)
    late = await _run(review.sweep)
    restricted = await _run(restricted_ids, review, late)
    return JSONResponse({"breached": [_item(review, i) for i in late
                                      if may_see(principal, item_queue(review, i, restricted))]})


# ---- child-safety reports ----
def reports_of(request: Request) -> Reports:
    reports = review_of(request).reports
    if reports is None:
        raise ApiError(503, "no_reports", "child-safety reports are not open yet", "retry in a moment")
    return reports


async def make_report(svc: Service, review: Review, decision: DecisionRow) -> dict[str, Any]:
    """Build, store (restricted, once per decision) and send through the outbox the report package of a
    decision. Part of applying it, so a process stopped before the report makes it at its next start."""
    reports = review.reports
    if reports is None:
        raise RuntimeError("child-safety reports are not open")
    item = await anyio.to_thread.run_sync(review.item, decision.item_id)
    evidence = await anyio.to_thread.run_sync(review.store.evidence, item.id)
    recorder = getattr(svc.engine, "recorder", None) if svc.engine is not None else None
    record = getattr(recorder, "record", None)

    def recorded() -> list[dict[str, Any]]:
        if record is None:
            return []
        found = [record.get(str(e["event"].get("source", "")), str(e["event"].get("id", "")))
                 for e in evidence if isinstance(e.get("event"), dict)]
        return [f.to_json() for f in found if f is not None]

    now = time.time()
    package = build_report(report_id=new_id("report"), decision=decision.to_json(), item=review.item_json(item),
                           evidence=evidence, recorded=await anyio.to_thread.run_sync(recorded),
                           reporter=review.settings.reports.reporter, now=now)
    report = await anyio.to_thread.run_sync(lambda: reports.add(package, decision_id=decision.id, actor=decision.actor))
    if report["id"] == package["id"]:  # made now, not at an earlier try
        await anyio.to_thread.run_sync(lambda: svc.audit.append(
            decision.actor, "child_safety.report", f"report:{report['id']}",
            {"item": item.id, "decision": decision.id, "text_only": report["text_only"]}))
    sink = review.settings.reports.sink
    if sink is not None:
        key = idempotency_key(DECISION_SOURCE, decision.id, "child_safety_report")
        message = OutboxMessage(sink, key, orjson.dumps({"type": "child_safety_report", "key": key, "report": report}), now)
        await anyio.to_thread.run_sync(lambda: svc.store.commit_effects([], [message]))
    else:
        log.warning("child-safety report %s was stored but is not sent: set [review.reports] sink", report["id"])
    return report


def _report_queue(queue: str) -> QueueRef:
    return QueueRef(queue, child_safety=True)  # a report is child-safety material wherever it came from


async def list_reports(request: Request) -> Response:
    principal = caller(request)
    reports = await anyio.to_thread.run_sync(reports_of, request)
    found = await anyio.to_thread.run_sync(reports.list)
    shown = [r for r in found if may_see(principal, _report_queue(r["queue"]))]
    if shown:
        await audit(request, principal, "child_safety.report.list", "reports", {"reports": [r["id"] for r in shown]})
    return JSONResponse({"reports": shown})


async def get_report(request: Request) -> Response:
    principal = caller(request)
    report_id = request.path_params["report_id"]
    reports = await anyio.to_thread.run_sync(reports_of, request)
    report = await anyio.to_thread.run_sync(reports.get, report_id)
    if report is None or not may_see(principal, _report_queue(report["item"]["queue"])):
        raise ApiError(404, "no_report", f"no child-safety report {report_id!r}", "list them: GET /v1/review/reports")
    await audit(request, principal, "child_safety.report.view", f"report:{report_id}", {"item": report["item"]["id"]})
    return JSONResponse(report)


async def audit(request: Request, principal: Principal, action: str, target: str, detail: dict[str, Any]) -> None:
    """Append to the audit log, off the event loop."""
    log_ = service(request).audit
    await anyio.to_thread.run_sync(lambda: log_.append(principal, action, target, detail))


# ---- applying a decision ----
async def apply_decision(svc: Service, review: Review, decision: DecisionRow) -> dict[str, Any]:
    """A stored decision's effects, then its event through the rules; marks it applied. Safe to run again
    (at start, for decisions a stopped process left `applying`): label changes to the same state and
    outbox messages with the same keys change nothing twice."""
    quality = review.quality
    if quality is not None and await anyio.to_thread.run_sync(lambda: quality.check(decision.item_id) is not None):
        # A quality check's decision has no effects and is not an event for the rules.
        await anyio.to_thread.run_sync(review.store.applied, decision.id, [])
        return {"skipped": "a quality check: scored, with no effects"}
    if decision.action in review.settings.reports.actions:
        await make_report(svc, review, decision)
    engine = svc.running_engine
    effects = [dict(e) for e in decision.effects]
    labels = [e for e in effects if e["kind"] in ("label", "unlabel")]
    if labels:
        now = time.time()

        def change(backend: LabelBackend) -> list[bool]:
            changed = []
            for e in labels:
                record = backend.set(e["entity"], e["key"], e["label"], present=e["kind"] == "label", now=now,
                                     source=MANUAL, actor=decision.actor, expires_at=e.get("expires_at"),
                                     reason=f"review decision {decision.id}: {decision.reason}".strip(": "))
                changed.append(record is not None)
            return changed

        for effect, changed in zip(labels, await svc.engine_threads.run(engine.with_labels, change)):
            effect["applied"] = changed
    messages = [OutboxMessage(str(e["sink"]), idempotency_key(DECISION_SOURCE, decision.id, "output", str(e["sink"])),
                              orjson.dumps({"type": "review.decision", "decision": decision.to_json()}), time.time())
                for e in effects if e["kind"] == "output"]
    if messages:
        await anyio.to_thread.run_sync(lambda: svc.store.commit_effects([], messages))
    if any(e["kind"] == "escalate" for e in effects):
        item = await anyio.to_thread.run_sync(review.item, decision.item_id)
        await anyio.to_thread.run_sync(review.escalate, Decided(decision, item))
    raw = orjson.dumps(review.decision_event(decision))
    try:
        outcome = await svc.ingest.decide(await svc.ingest.parse(raw, DECISION_SOURCE), raw, DECISION_SOURCE)
    except EventRejected as error:
        if error.status >= 500:
            # Not decided (the engine busy or stopping): the decision stays `applying`, and the next start
            # applies it again, its event included. The decision itself stands.
            log.warning("review decision %s: its event was not decided (%s); retried at the next start",
                        decision.id, error.message)
            return {"error": error.body()["error"], "retried": "at the next start"}
        # The rules could not read the event (a field of the wrong type): it is a dead letter, kept with the
        # reason, and retrying would fail the same way.
        await anyio.to_thread.run_sync(review.store.applied, decision.id, effects)
        return {"error": error.body()["error"], "dead_letter": True}
    await anyio.to_thread.run_sync(review.store.applied, decision.id, effects)
    return outcome.to_json()


async def resume_decisions(svc: Service, review: Review) -> int:
    """Apply the decisions a stopped process stored but did not finish applying."""
    pending = await anyio.to_thread.run_sync(review.store.decisions_applying)
    for decision in pending:
        log.info("applying review decision %s, left unfinished by the last process", decision.id)
        await apply_decision(svc, review, decision)
    return len(pending)


async def sweep_forever(review: Review) -> None:
    """Escalate items past their queue's target every `[review] sweep_interval` seconds."""
    import asyncio

    while True:
        await asyncio.sleep(review.settings.sweep_interval)
        try:
            late = await anyio.to_thread.run_sync(review.sweep)
            if late:
                log.info("review: %d items passed their queue's target and were escalated", len(late))
        except Exception:  # the database away for a while: look again next time
            log.exception("review: the deadline sweep failed; trying again")


class ReviewCollector:
    """Per queue on /metrics: pending, the oldest pending item's age, decisions in the last hour, their
    median handling time, breaches; read from the store when Prometheus scrapes."""

    def __init__(self, review: Callable[[], Review | None]) -> None:
        self.review = review

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        review = self.review()
        if review is None:
            return
        # Child-safety queues stay off /metrics: a scrape has no person to check the role of.
        numbers = [review.metrics(q) for q in review.queues() if not review.queue_ref(q).child_safety]
        families = [
            (GaugeMetricFamily, "vigil_review_pending", "Open review items.", "pending"),
            (GaugeMetricFamily, "vigil_review_oldest_age_seconds", "Age of the oldest open item.", "oldest_age"),
            (GaugeMetricFamily, "vigil_review_handled_last_hour", "Items decided in the last hour.",
             "handled_per_hour"),
            (GaugeMetricFamily, "vigil_review_median_handling_seconds",
             "Median time from opening to decision, over the last hour.", "median_handling_time"),
            (CounterMetricFamily, "vigil_review_breaches", "Items that passed their queue's target.", "breaches"),
        ]
        for family, name, text, key in families:
            metric = family(name, text, labels=["queue"])
            for q in numbers:
                if q[key] is not None:
                    metric.add_metric([q["queue"]], q[key])
            yield metric


# ---- the table: routes and their OpenAPI ----
@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    endpoint: Callable[[Request], Awaitable[Response]]
    summary: str
    scope: str
    response: type[BaseModel]
    request: type[BaseModel] | None = None


ROUTES = [
    Endpoint("GET", "/v1/review/queues", list_queues, "Queues and their numbers", "review.view", QueueList),
    Endpoint("GET", "/v1/review/queues/{queue}", queue_metrics, "One queue's numbers", "review.view",
             QueueMetrics),
    Endpoint("GET", "/v1/review/queues/{queue}/items", list_items, "A queue's items (?state=open|decided|merged), "
             "in the order they are handed out", "review.view", ItemList),
    Endpoint("POST", "/v1/review/queues/{queue}/claim", claim_next, "Claim the queue's next free item", "review.claim",
             ClaimOut),
    Endpoint("GET", "/v1/review/items/{item_id}", get_item, "An item with its evidence, log and decision",
             "review.view", ItemDetail),
    Endpoint("POST", "/v1/review/items/{item_id}/claim", claim_item, "Claim (or renew) an item", "review.claim", ClaimOut),
    Endpoint("POST", "/v1/review/items/{item_id}/release", release_item, "Hand a held item back", "review.claim",
             ClaimOut),
    Endpoint("POST", "/v1/review/items/{item_id}/skip", skip_item, "Hand a held item back, never to be offered "
             "to you again", "review.claim", ClaimOut),
    Endpoint("POST", "/v1/review/items/{item_id}/assign", assign_item, "Give an item to a reviewer (a lead)",
             "review.assign", ClaimOut, AssignRequest),
    Endpoint("POST", "/v1/review/items/{item_id}/decide", decide_item, "Decide a held item", "review.decide", DecideOut,
             DecideRequest),
    Endpoint("GET", "/v1/review/reports", list_reports, "Child-safety reports, newest first (each view audited)",
             "review.view` in a child-safety queue", ReportList),
    Endpoint("GET", "/v1/review/reports/{report_id}", get_report, "A child-safety report package as JSON "
             "(its view audited)", "review.view` in a child-safety queue", ReportOut),
    Endpoint("POST", "/v1/review/queues/{queue}/golden", add_golden, "Make an item's evidence a golden item with "
             "its known answer", "review.assign", GoldenOut, GoldenRequest),
    Endpoint("GET", "/v1/review/quality", quality_numbers, "Golden accuracy and second-review agreement per queue "
             "and per reviewer", "review.assign", QualityOut),
    Endpoint("POST", "/v1/review/sweep", sweep, "Escalate the items past their queue's target now", "review.assign",
             SweepOut),
]

routes = [Route(e.path, e.endpoint, methods=[e.method]) for e in ROUTES]

ERROR_CODES = {"403": "The caller's roles do not permit this here (nothing changed).",
               "404": "No such queue or item, or one the caller may not see.", "409": "Held by someone else, decided already, or your lease "
               "ended (nothing changed).", "422": "Unknown action, a required reason or policy missing, a "
               "bad body (nothing changed).", "503": "The service runs without review queues, or is starting."}


def openapi_paths() -> tuple[dict[str, Any], dict[str, Any]]:
    """The review routes' part of the OpenAPI document, from the models: (paths, component schemas)."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        return model_ref(model, schemas)

    for e in ROUTES:
        op: dict[str, Any] = {"summary": e.summary, "security": [{"token": []}],
                              "description": f"Needs the `{e.scope}` permission in the queue (docs/review.md, \"People, "
                                             "roles and permissions\"); a child-safety queue or item the "
                                             "caller may not see is a 404, as if it did not exist.",
                              "responses": {"201" if e.endpoint in (decide_item, add_golden) else "200": {
                                  "description": e.summary, "content": {"application/json": {"schema": ref(e.response)}}},
                                  **{code: {"description": text, "content": {"application/json": {
                                      "schema": {"$ref": "#/components/schemas/Error"}}}}
                                     for code, text in ERROR_CODES.items()}}}
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in ("queue", "item_id", "report_id") if "{" + name + "}" in e.path]
        if params:
            op["parameters"] = params
        if e.request is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(e.request)}}}
        paths.setdefault(e.path, {})[e.method.lower()] = op
    return paths, schemas

"""Routes: POST /v1/events, POST /v1/events/batch, GET /v1/decisions/{event_id}."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vigil.events import Event
from vigil.service.auth import charge, may_read_source, require, token_source
from vigil.service.errors import ApiError, JSONResponse
from vigil.service.limits import BodyTooLarge, read_body
from vigil.service.state import service


def _async(request: Request) -> bool:
    mode = request.query_params.get("mode", "sync")
    if mode not in ("sync", "async"):
        raise ApiError(400, "bad_mode", f"unknown mode {mode!r}", "use mode=sync (the default) or mode=async")
    return mode == "async"


async def _body(request: Request, limit: int, source: str) -> bytes:
    try:
        return await read_body(request, limit)
    except BodyTooLarge as error:
        # The event is lost to us, so it is counted as a dead letter, but none of its bytes are kept.
        svc = service(request)
        await svc.ingest.reject(b"", error.message, source)
        raise


async def post_event(request: Request) -> Response:
    """Decide one event; ?mode=async accepts it (202) to decide in the background."""
    token = require(request, "ingest")
    svc = service(request)
    asynchronous = _async(request)
    source = f"http:{token.name}"
    raw = await _body(request, svc.settings.max_body_bytes, source)
    event = await svc.ingest.parse(raw, source)
    if asynchronous:
        await svc.ingest.enqueue(event, raw, source)
        return JSONResponse({"event_id": event.id, "status": "queued",
                             "location": f"/v1/decisions/{event.id}"}, status_code=202)
    return JSONResponse((await svc.ingest.decide(event, raw, source)).to_json())


async def post_batch(request: Request) -> Response:
    """Decide a JSON array of events (or {"events": [...]}); each event gets a decision or an error."""
    token = require(request, "ingest")
    svc = service(request)
    asynchronous = _async(request)
    source = f"http:{token.name}"
    raw = await _body(request, svc.settings.max_batch_bytes, source)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        await svc.ingest.reject(raw, f"batch is not valid JSON: {error}", source)
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {error}",
                       'send a JSON array of events, or {"events": [...]}') from None
    items: Any = data.get("events") if isinstance(data, dict) else data
    if not isinstance(items, list):
        await svc.ingest.reject(raw, "batch is not a list of events", source)
        raise ApiError(422, "invalid_batch", "a batch is a JSON array of events, or an object with \"events\"",
                       '[{"type": "post", "id": "e1", "time": 0}, ...]')
    if len(items) > svc.settings.max_batch:
        raise ApiError(413, "batch_too_long", f"the batch has {len(items)} events, more than {svc.settings.max_batch}",
                       "split it into smaller batches")
    charge(request, svc.buckets, len(items))  # the rate limit counts events: the request paid for one
    results: list[dict[str, Any] | None] = []
    events: list[Event] = []  # to decide, in order, in one engine thread: results[i] is None for each
    rejected = 0
    for item in items:
        try:
            event = await svc.ingest.parse_item(item, None, source)
        except ApiError as error:
            rejected += 1
            results.append(error.body())
            continue
        if asynchronous:
            try:
                await svc.ingest.enqueue(event, None, source)
            except ApiError as error:  # the queue filled up part way: the rest are refused, not lost
                rejected += 1
                results.append({"event_id": event.id, **error.body()})
                continue
            results.append({"event_id": event.id, "status": "queued"})
            continue
        events.append(event)
        results.append(None)
    if events:
        outcomes = await svc.ingest.decide_batch(events, source)
        rejected += sum("error" in outcome for outcome in outcomes)
        decided = iter(outcomes)
        results = [next(decided) if r is None else r for r in results]
    body = {"results": results, "accepted": len(items) - rejected, "rejected": rejected}
    return JSONResponse(body, status_code=202 if asynchronous else 200)


async def get_decision(request: Request) -> Response:
    """The outcome of a recent event: decided (with the decision), queued, or dead-lettered. Ids are per
    source: the token's own event of that id, else the one readable source's that sent it (?source=NAME
    picks). A token reads its own source's decisions and those it was granted (admin: all)."""
    token = require(request, "ingest", "read")
    event_id = request.path_params["event_id"]
    named = request.query_params.get("source")
    if named is not None and not may_read_source(token, f"http:{named}"):
        raise ApiError(403, "forbidden", f"token {token.name!r} may not read the decisions of source {named!r}",
                       f"grant it: `vigil token create NAME --read-source {named}`, or use an admin token")
    outcome = service(request).ingest.outcome(event_id, f"http:{named}" if named else token_source(token),
                                              readable=lambda source: may_read_source(token, source))
    if outcome is None:
        from vigil.service.record import recorded_outcome

        outcome = await recorded_outcome(request, token, event_id, named)  # older ones: from the record
    if outcome is None:
        raise ApiError(404, "unknown_event", f"no decision for event {event_id!r}",
                       "the most recent decisions are kept in memory (--recent-decisions), older ones in the "
                       "record while it keeps them (record.retention_days); none without a durable store")
    return JSONResponse(outcome, status_code=202 if outcome.get("status") in ("queued", "deciding") else 200)


routes = [
    Route("/v1/events", post_event, methods=["POST"]),
    Route("/v1/events/batch", post_batch, methods=["POST"]),
    Route("/v1/decisions/{event_id}", get_decision, methods=["GET"]),
]

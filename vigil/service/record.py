"""Routes over the record: GET /v1/entities/{type}/{key} (an entity's timeline) and
GET /v1/record/events/{event_id} (a recorded event with its decisions as they were made).

Read like the decisions: a token reads its own source's events, those of the sources it was granted,
and an admin token every source's. The record is read in a worker thread, never on the event loop."""

from __future__ import annotations

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vigil.record.timeline import MAX_PAGE, entity_timeline
from vigil.record.writer import Recorder
from vigil.service.auth import may_read_source, require, token_source
from vigil.service.errors import ApiError, JSONResponse
from vigil.service.state import Service, service
from vigil.stores.base import ApiToken


def readable_sources(token: ApiToken) -> tuple[str, ...] | None:
    """The sources whose events `token` may read; None: every source."""
    if "admin" in token.scopes or "*" in token.read_sources:
        return None
    return (token_source(token), *(f"http:{name}" for name in token.read_sources))


def _recorder(svc: Service) -> Recorder:
    recorder = svc.engine.recorder if svc.engine is not None else None
    if not isinstance(recorder, Recorder):
        raise ApiError(404, "no_record", "this service keeps no record of events",
                       "run it with a durable store (--db FILE or postgresql://…), or set record.enabled")
    return recorder


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "50")
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, "bad_limit", f"limit {raw!r} is not a number from 1 to {MAX_PAGE}",
                       f"give ?limit=50 (at most {MAX_PAGE}) and follow next_cursor with ?after=")
    return limit


async def get_entity(request: Request) -> Response:
    """An entity's recent events and decisions (one page; ?after=next_cursor for the next), its labels
    with their history, its counters and the entities seen with it."""
    timeline = await read_timeline(request, request.path_params["entity_type"], request.path_params["key"],
                                   _limit(request), request.query_params.get("after"))
    return JSONResponse(timeline)


async def read_timeline(request: Request, entity_type: str, key: str, limit: int = 50,
                        after: str | None = None) -> dict[str, object]:
    """The timeline of `entity_type`:`key` as the caller may read it (the sources of their token), as
    JSON: the API's route and the console's entity page both answer with this."""
    token = require(request, "read")
    svc = service(request)
    recorder = _recorder(svc)
    engine = svc.engine

    def read() -> dict[str, object]:
        return entity_timeline(recorder.record, entity_type, key, labels=engine.labels if engine else None,
                               counters=engine, redactor=recorder.redactor, limit=limit, after=after,
                               sources=readable_sources(token)).to_json()

    try:
        return await anyio.to_thread.run_sync(read)
    except ValueError as error:
        raise ApiError(400, "bad_cursor", str(error), "pass ?after= the next_cursor of the previous page") from None


async def get_recorded_event(request: Request) -> Response:
    """A recorded event as it was received (redacted) and decided, both stages, from the record: the
    decision as it was made, never re-run. ?source=NAME picks among senders of the same id."""
    token = require(request, "ingest", "read")
    recorder = _recorder(service(request))
    event_id = request.path_params["event_id"]
    named = request.query_params.get("source")
    if named is not None and not may_read_source(token, f"http:{named}"):
        raise ApiError(403, "forbidden", f"token {token.name!r} may not read the events of source {named!r}",
                       f"grant it: `vigil token create NAME --read-source {named}`, or use an admin token")
    sources = [f"http:{named}"] if named is not None else readable_sources(token)
    found = await anyio.to_thread.run_sync(lambda: recorder.record.find(event_id, sources))
    if not found:
        raise ApiError(404, "unknown_event", f"event {event_id!r} is not in the record",
                       "it was never recorded here, was sent by a source this token may not read, or is past "
                       "retention (record.retention_days)")
    own = [s for s in found if s.source == token_source(token)]
    if len({s.source for s in found}) > 1 and not own:
        names = ", ".join(sorted(s.source.removeprefix("http:") for s in found))
        raise ApiError(409, "ambiguous_event", f"event id {event_id!r} was sent by several sources ({names})",
                       "add ?source=NAME")
    return JSONResponse((own or found)[0].to_json())


async def recorded_outcome(request: Request, token: ApiToken, event_id: str,
                           named: str | None) -> dict[str, object] | None:
    """GET /v1/decisions/{id} of an event no longer in memory, as the record holds it; None if it does not."""
    svc = service(request)
    recorder = svc.engine.recorder if svc.engine is not None else None
    if not isinstance(recorder, Recorder):
        return None
    sources = [f"http:{named}"] if named is not None else readable_sources(token)
    found = await anyio.to_thread.run_sync(lambda: recorder.record.find(event_id, sources))
    own = [s for s in found if s.source == token_source(token)] or found
    if not own:
        return None
    if len({s.source for s in own}) > 1:
        raise ApiError(409, "ambiguous_event", f"{len({s.source for s in own})} sources sent an event {event_id!r}",
                       "add ?source=NAME, the name of the token that sent it")
    stored = own[0]
    out: dict[str, object] = {"event_id": event_id, "status": "decided", "decision": stored.decisions[0],
                              "recorded": True}
    if len(stored.decisions) > 1:
        out["second_stage"] = stored.decisions[1]
    return out


routes = [
    Route("/v1/entities/{entity_type}/{key}", get_entity, methods=["GET"]),
    Route("/v1/record/events/{event_id:path}", get_recorded_event, methods=["GET"]),
]

"""Routes: an entity's labels and their history; manual labels added and removed with a reason.

A label set or removed here is "manual": rules cannot undo it while it is in force (see
vigil/signals/labels.py). A change made here takes effect at the wall-clock time of the request; reads
judge the labels at `?at=` (default now). Reads and changes run in the engine threads, under the
engine's lock (Engine.with_labels) like the decisions of both stages, so a person's change never falls
between a decision's reading of a label and its commit, and no store read or write blocks the loop.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vigil.dsl.runtime import FieldTypeError, parse_time
from vigil.service.access import permit
from vigil.service.auth import require
from vigil.service.errors import ApiError, JSONResponse
from vigil.service.limits import read_body
from vigil.service.people import audited
from vigil.service.state import service
from vigil.signals.labels import MANUAL
from vigil.stores.base import LabelBackend, LabelRecord

_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
MAX_KEY = 500
MAX_LABEL_BODY = 64 << 10


def record_json(r: LabelRecord, now: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"label": r.label, "present": r.present, "source": r.source, "actor": r.actor,
                           "reason": r.reason, "updated_at": r.updated_at, "expires_at": r.expires_at}
    if now is not None:
        out["active"] = r.active(now)
        out["held"] = r.held(now)  # a person's change that rules cannot undo
    return out


def _at(request: Request) -> float:
    """`?at=`: the time to judge labels at (RFC 3339 or epoch seconds), by default now."""
    raw = request.query_params.get("at")
    if raw is None or raw == "":
        return time.time()
    try:
        at = parse_time(float(raw) if _NUMBER.match(raw) else raw)
    except FieldTypeError:
        at = None
    if at is None or not math.isfinite(at):
        raise ApiError(400, "bad_time", f"`at` must be an RFC 3339 time or epoch seconds, got {raw!r}",
                       "?at=2026-01-01T00:00:00Z or ?at=1767225600")
    return at


def _entity(request: Request) -> tuple[str, str]:
    etype, key = request.path_params["entity_type"], request.path_params["key"]
    if not NAME.match(etype):
        raise ApiError(400, "bad_entity", f"entity type {etype!r} is not a name", "such as user, ip or pair")
    if not key or len(key) > MAX_KEY:
        raise ApiError(400, "bad_entity", f"entity key must be 1 to {MAX_KEY} characters")
    return etype, key


async def get_labels(request: Request) -> Response:
    """Labels as they were at `?at=` (default now): the active ones, or with ?all=true every label's record
    in effect then (also removed and expired ones; a person's removal still holds while `held`)."""
    require(request, "read")
    etype, key = _entity(request)
    at = _at(request)
    svc = service(request)
    show_all = request.query_params.get("all", "").lower() in ("1", "true", "yes")

    def read(labels: LabelBackend) -> list[LabelRecord]:
        return labels.as_of(etype, key, at) if show_all else labels.get(etype, key, at)

    records = await svc.engine_threads.run(svc.running_engine.with_labels, read)
    return JSONResponse({"entity_type": etype, "key": key, "at": at,
                         "labels": [record_json(r, at) for r in records]})


async def get_history(request: Request) -> Response:
    require(request, "read")
    etype, key = _entity(request)
    svc = service(request)
    history = await svc.engine_threads.run(svc.running_engine.labels.history, etype, key)
    return JSONResponse({"entity_type": etype, "key": key, "history": [record_json(r) for r in history]})


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await read_body(request, MAX_LABEL_BODY)
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_body", "the body must be a JSON object")
    return data


def _reason(data: dict[str, Any], request: Request) -> str:
    reason = data.get("reason", request.query_params.get("reason"))
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
        raise ApiError(422, "reason_required", "a manual label change needs a reason (1 to 2000 characters)",
                       '{"label": "spammer", "reason": "confirmed by review #123"}')
    return reason.strip()


def _expires_in(data: dict[str, Any], request: Request) -> float | None:
    raw = data.get("expires_in", request.query_params.get("expires_in"))
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            raw = None
    if raw is None or isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw < math.inf:
        raise ApiError(422, "invalid_expiry", '"expires_in" must be a positive number of seconds',
                       '{"label": "spammer", "reason": "…", "expires_in": 86400}')
    return float(raw)


def _label_state(labels: LabelBackend, etype: str, key: str, label: str, now: float) -> dict[str, Any] | None:
    current = [r for r in labels.as_of(etype, key, now) if r.label == label]
    return record_json(current[0], now) if current else None


async def change_label(request: Request, etype: str, key: str, label: str, *, present: bool | None, actor: str,
                  reason: str, expires_in: float | None) -> tuple[LabelRecord | None, dict[str, Any] | None]:
    """A person's change of one label (present=None: a release, if a person's change holds) and the
    label's state after it, in one step on the engine's serialised path."""
    now = time.time()
    svc = service(request)

    def change(labels: LabelBackend) -> tuple[LabelRecord | None, dict[str, Any] | None]:
        record = None
        if present is None:  # release: end a person's change now, stored as a removal expiring at once
            current = [r for r in labels.as_of(etype, key, now) if r.label == label]
            if current and current[0].held(now):
                record = labels.set(etype, key, label, present=False, now=now, source=MANUAL, actor=actor,
                                    expires_at=now, reason=reason)
        else:
            record = labels.set(etype, key, label, present=present, now=now, source=MANUAL, actor=actor,
                                expires_at=now + expires_in if expires_in is not None else None, reason=reason)
        return record, _label_state(labels, etype, key, label, now)

    return await svc.engine_threads.run(svc.running_engine.with_labels, change)


async def add_label(request: Request) -> Response:
    """Add a manual label: {"label", "reason", "expires_in" (seconds, optional)}."""
    actor = permit(request, "labels.write")
    etype, key = _entity(request)
    data = await _json_object(request)
    label = data.get("label")
    if not isinstance(label, str) or not label or len(label) > 200:
        raise ApiError(422, "invalid_label", '"label" must be a string of 1 to 200 characters')
    reason = _reason(data, request)
    expires_in = _expires_in(data, request)
    record, state = await change_label(request, etype, key, label, present=True, actor=actor.actor, reason=reason,
                                  expires_in=expires_in)
    if record is not None:
        await audited(request, actor, "label.add", f"{etype}:{key}",
                      {"label": label, "reason": reason, "expires_in": expires_in})
    return JSONResponse({"entity_type": etype, "key": key, "changed": record is not None, "label": state},
                        status_code=201 if record is not None else 200)


async def remove_label(request: Request) -> Response:
    """Remove a label by hand: kept as removed, so that rules cannot add it back, until `expires_in`
    seconds (optional; without it, until a person changes or releases it). Needs a reason."""
    actor = permit(request, "labels.write")
    etype, key = _entity(request)
    label = request.path_params["label"]
    data = await _json_object(request)
    reason = _reason(data, request)
    expires_in = _expires_in(data, request)
    record, state = await change_label(request, etype, key, label, present=False, actor=actor.actor, reason=reason,
                                  expires_in=expires_in)
    if record is not None:
        await audited(request, actor, "label.remove", f"{etype}:{key}",
                      {"label": label, "reason": reason, "expires_in": expires_in})
    return JSONResponse({"entity_type": etype, "key": key, "label": label, "changed": record is not None,
                         "state": state})


async def release_label(request: Request) -> Response:
    """End a person's change of a label (an addition or a removal) now: the label is absent, and rules may
    set it again. Stored as a manual removal that expires when it is made. Needs a reason."""
    actor = permit(request, "labels.write")
    etype, key = _entity(request)
    label = request.path_params["label"]
    data = await _json_object(request)
    reason = _reason(data, request)
    record, state = await change_label(request, etype, key, label, present=None, actor=actor.actor, reason=reason,
                                  expires_in=None)
    if record is not None:
        await audited(request, actor, "label.release", f"{etype}:{key}", {"label": label, "reason": reason})
    return JSONResponse({"entity_type": etype, "key": key, "label": label, "changed": record is not None,
                         "state": state})


routes = [
    Route("/v1/entities/{entity_type}/{key:path}/labels", get_labels, methods=["GET"]),
    Route("/v1/entities/{entity_type}/{key:path}/labels", add_label, methods=["POST"]),
    Route("/v1/entities/{entity_type}/{key:path}/labels/{label}", remove_label, methods=["DELETE"]),
    Route("/v1/entities/{entity_type}/{key:path}/labels/{label}/release", release_label, methods=["POST"]),
    Route("/v1/entities/{entity_type}/{key:path}/history", get_history, methods=["GET"]),
]

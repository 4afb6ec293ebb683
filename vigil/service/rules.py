"""Routes: the active rules version, uploads (checked, then activated atomically), versions, rollback."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vigil.dsl.loader import RuleSet
from vigil.people.roles import Principal
from vigil.service.access import permit
from vigil.service.auth import require
from vigil.service.errors import ApiError, JSONResponse
from vigil.service.limits import read_body
from vigil.service.people import audited
from vigil.service.reload import FollowsDirectory, RulesRejected, diagnostic_json, validate_files
from vigil.service.state import service
from vigil.stores.base import RulesVersion


def version_json(v: RulesVersion, *, files: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"seq": v.seq, "version": v.version, "created_at": v.created_at, "author": v.author,
                           "message": v.message, "active": v.active, "entry": list(v.entry),
                           "paths": sorted(v.files)}
    if files:
        out["files"] = v.files
    return out


def ruleset_json(r: RuleSet) -> dict[str, Any]:
    p = r.program
    return {"rules": [{"name": rule.name, "mode": rule.mode, "severity": rule.severity, "where": str(rule.span)}
                      for rule in p.rules], "tests": len(p.tests),
            "warnings": [diagnostic_json(d, r.sources) for d in r.warnings]}


def rejected(error: RulesRejected, active: RulesVersion | None) -> ApiError:
    serving = f"version {active.seq} keeps serving" if active is not None else "no version is active"
    return ApiError(422, "rules_rejected", f"{error.message}; {serving}",
                    "fix the errors listed (file:line:col) and upload again; `vigil check` shows the same",
                    extra={"diagnostics": error.diagnostics, "test_failures": error.test_failures})


def follows_directory(error: FollowsDirectory) -> ApiError:
    return ApiError(409, "rules_follow_directory", str(error), FollowsDirectory.hint,
                    extra={"rules_source": "directory", "rules_dir": str(error.rules_dir)})


async def get_active(request: Request) -> Response:
    require(request, "read")
    rules = service(request).rules
    if rules.active is None or rules.ruleset is None:
        raise ApiError(404, "no_rules", "no rules version is active", "upload one with POST /v1/rules")
    body = version_json(rules.active, files=request.query_params.get("files", "") in ("1", "true"))
    body["active"] = True
    body["source"] = rules.source
    body.update(ruleset_json(rules.ruleset))
    return JSONResponse(body)


async def upload(request: Request) -> Response:
    """{"files": {path: text}, "entry": [paths] (default: every .vigil file), "message": "..."};
    ?dry_run=true checks without storing. 201 with the new version, 422 with the checker's messages, or
    409 when the service follows a rules directory (a dry run is answered whatever the source)."""
    actor = permit(request, "rules.write")
    svc = service(request)
    previous = svc.rules.active.seq if svc.rules.active is not None else None
    dry_run = request.query_params.get("dry_run", "") in ("1", "true")
    if not dry_run:
        try:
            svc.rules.require_store("upload")  # before reading a body that would be refused anyway
        except FollowsDirectory as error:
            raise follows_directory(error) from None
    raw = await read_body(request, svc.settings.max_rules_bytes)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {error}",
                       '{"files": {"main.vigil": "..."}}') from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_upload", "the body must be a JSON object with \"files\"")
    message = data.get("message", "")
    try:
        if not isinstance(message, str):
            raise TypeError('"message" must be a string')
        files, entry = validate_files(data.get("files"), data.get("entry"))
    except (ValueError, TypeError) as error:
        raise ApiError(422, "invalid_upload", str(error), '{"files": {"main.vigil": "..."}, "entry": ["main.vigil"]}'
                       ) from None
    try:
        stored, ruleset = await svc.rules.upload(files, entry, author=actor.actor, message=message[:1000],
                                                 dry_run=dry_run)
    except FollowsDirectory as error:
        raise follows_directory(error) from None
    except RulesRejected as error:
        raise rejected(error, svc.rules.active) from None
    body: dict[str, Any] = version_json(stored) if stored is not None else {"version": ruleset.version,
                                                                            "dry_run": True}
    if stored is not None:
        body["active"] = True
        await _audit_activation(request, actor, "rules.activate", stored, previous, upload=True)
    body.update(ruleset_json(ruleset))
    return JSONResponse(body, status_code=200 if dry_run else 201)


async def list_versions(request: Request) -> Response:
    require(request, "read")
    svc = service(request)
    try:
        limit = max(1, min(1000, int(request.query_params.get("limit", "100"))))
    except ValueError:
        raise ApiError(400, "bad_limit", "limit must be a number") from None
    versions = await anyio.to_thread.run_sync(svc.rules_store.list_rules_versions, limit)
    return JSONResponse({"versions": [version_json(v) for v in versions],
                         "active": svc.rules.active.seq if svc.rules.active else None})


def _seq(request: Request) -> int:
    try:
        return int(request.path_params["seq"])
    except ValueError:
        raise ApiError(400, "bad_version", "a version is its number (seq), such as 3") from None


async def get_version(request: Request) -> Response:
    require(request, "read")
    svc = service(request)
    seq = _seq(request)
    found = await anyio.to_thread.run_sync(svc.rules_store.get_rules_version, seq)
    if found is None:
        raise ApiError(404, "unknown_version", f"no rules version {seq}", "GET /v1/rules/versions lists them")
    return JSONResponse(version_json(found, files=True))


async def activate(request: Request) -> Response:
    """Activate a stored version (roll back or forward to it)."""
    actor = permit(request, "rules.write")
    svc = service(request)
    previous = svc.rules.active.seq if svc.rules.active is not None else None
    seq = _seq(request)
    try:
        stored = await svc.rules.activate(seq)
    except FollowsDirectory as error:
        raise follows_directory(error) from None
    except KeyError:
        raise ApiError(404, "unknown_version", f"no rules version {seq}", "GET /v1/rules/versions lists them"
                       ) from None
    except RulesRejected as error:
        raise rejected(error, svc.rules.active) from None
    await _audit_activation(request, actor, "rules.activate", stored, previous)
    return JSONResponse({**version_json(stored), "active": True})


async def rollback(request: Request) -> Response:
    """Activate the version stored before the active one."""
    actor = permit(request, "rules.write")
    svc = service(request)
    previous = svc.rules.active.seq if svc.rules.active is not None else None
    try:
        stored = await svc.rules.rollback()
    except FollowsDirectory as error:
        raise follows_directory(error) from None
    except LookupError as error:
        raise ApiError(409, "no_earlier_version", str(error)) from None
    except RulesRejected as error:
        raise rejected(error, svc.rules.active) from None
    await _audit_activation(request, actor, "rules.rollback", stored, previous)
    return JSONResponse({**version_json(stored), "active": True})


async def _audit_activation(request: Request, actor: Principal, action: str, stored: RulesVersion,
                            previous: int | None, *, upload: bool = False) -> None:
    detail = {"version": stored.version, "previous": previous, "message": stored.message, "uploaded": upload}
    await audited(request, actor, action, f"rules:{stored.seq}", detail)


routes = [
    Route("/v1/rules", get_active, methods=["GET"]),
    Route("/v1/rules", upload, methods=["POST"]),
    Route("/v1/rules/versions", list_versions, methods=["GET"]),
    Route("/v1/rules/versions/{seq}", get_version, methods=["GET"]),
    Route("/v1/rules/versions/{seq}/activate", activate, methods=["POST"]),
    Route("/v1/rules/rollback", rollback, methods=["POST"]),
]

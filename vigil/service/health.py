"""Routes: /healthz (the process is up), /readyz (it can decide events), /metrics, /openapi.json."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vigil.service.auth import SCOPE_KEY, has_scope, require
from vigil.service.errors import JSONResponse
from vigil.service.metrics import CONTENT_TYPE
from vigil.service.openapi import openapi_document
from vigil.service.state import Service, service
from vigil.stores.base import ApiToken


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the engine runs an active rules version and the store answers. The details (problems,
    rules version, rules files that do not load) only with a token of the read scope, or without auth:
    a probe needs the status code alone."""
    svc = service(request)
    response = await _readiness(svc)
    token: ApiToken | None = request.scope.get(SCOPE_KEY)
    if svc.settings.auth and (token is None or not has_scope(token, "read")):
        status = "ready" if response.status_code == 200 else "not ready"
        return JSONResponse({"status": status, "details": "send a token with the read scope for the details"},
                            status_code=response.status_code)
    return response


async def _readiness(svc: Service) -> Response:
    problems: list[str] = []
    if svc.engine is None or svc.stopping:
        problems.append("the engine is not running")
    if svc.rules.active is None:
        problems.append("no rules version is active: start with --rules DIR or upload one")
    try:
        await anyio.to_thread.run_sync(svc.rules_store.active_rules_version)
    except Exception as error:  # noqa: BLE001 - whatever the backend raises, the answer is "not ready"
        problems.append(f"the store does not answer: {type(error).__name__}")
    warnings: list[str] = []
    if svc.engine is not None:
        flushing = svc.engine.counters.flush_status()
        if flushing.last_error:
            problems.append(f"counter updates are not being stored ({flushing.waiting} rows kept for the next "
                            f"try): {flushing.last_error}")
        if flushing.set_aside:  # each is a dead letter with its reason; the service goes on
            warnings.append(f"{flushing.set_aside} counter updates could not be stored: see the dead letters")
    if problems:
        return JSONResponse({"status": "not ready", "problems": problems, "warnings": warnings}, status_code=503)
    active = svc.rules.active
    body: dict[str, Any] = {"status": "ready", "rules": {"seq": active.seq, "version": active.version}
                            if active is not None else None}
    problem = svc.rules.disk_problem
    if problem is not None:  # the old version still decides events, so still ready; but say what is wrong
        body["warnings"] = [f"rules in {svc.rules.rules_dir} do not load; the active version serves on"]
        body["rules_dir"] = {"path": str(svc.rules.rules_dir), **problem.json()}
    warnings_list = body.setdefault("warnings", [])
    warnings_list.extend(warnings)
    if not warnings_list:
        del body["warnings"]
    return JSONResponse(body)


async def metrics(request: Request) -> Response:
    """Prometheus metrics (rule names with hit counts): the read scope, unless --public-metrics."""
    svc = service(request)
    if not svc.settings.public_metrics:
        require(request, "read")
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE)


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]

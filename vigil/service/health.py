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
    rules = svc.rules
    if rules.active is None:
        if rules.store_problem is not None:
            problems.append(f"the store's active rules version {rules.store_problem.seq} does not pass the gate "
                            "here: upload or activate another (details in rules_store)")
        else:
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
    if rules.notice is not None:  # a directory given but not loaded: the store is the source
        warnings.append(rules.notice)
    if rules.store_problem is not None and rules.active is not None:
        warnings.append(f"the store's active rules version {rules.store_problem.seq} does not pass the gate here; "
                        f"version {rules.active.seq} serves on")
    if problems:
        body: dict[str, Any] = {"status": "not ready", "problems": problems, "warnings": warnings,
                                "rules_source": rules.source}
        if rules.store_problem is not None:
            body["rules_store"] = rules.store_problem.json()
        return JSONResponse(body, status_code=503)
    active = rules.active
    body = {"status": "ready", "rules": {"seq": active.seq, "version": active.version, "source": rules.source}
            if active is not None else None}
    problem = rules.disk_problem
    if problem is not None:  # the old version still decides events, so still ready; but say what is wrong
        warnings.insert(0, f"rules in {rules.rules_dir} do not load; the active version serves on")
        body["rules_dir"] = {"path": str(rules.rules_dir), **problem.json()}
    if rules.store_problem is not None:
        body["rules_store"] = rules.store_problem.json()
    if warnings:
        body["warnings"] = warnings
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

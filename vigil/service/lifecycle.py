"""Routes: each rule's stage in its lifecycle (draft → shadow → rollout → live → paused, and back), the
diff between two rules versions, and a rule's hits over time from the record.

A stage change needs `rules.write` and is audited by the person (vigil/lifecycle/states.py); it runs at
once in this service and within a poll interval in every other instance and worker sharing the store.
A stage is kept for a rule's name, so it holds across new versions of the text; the rule must be in
the active version to be changed (a rollback works whatever the version).
"""

from __future__ import annotations

import difflib
import time
from typing import Any, Literal

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vigil.dsl.loader import RuleSet
from vigil.lifecycle.overlay import effective_modes, written_mode
from vigil.lifecycle.states import MAX_REASON, MAX_RULE_NAME, STAGES, LifecycleError, RuleState, next_stage
from vigil.service.access import permit
from vigil.service.errors import ApiError, JSONResponse
from vigil.service.openapi import model_ref
from vigil.service.people import _model
from vigil.service.search import _record, _when
from vigil.service.state import Service, service
from vigil.stores.base import RulesVersion

MAX_DIFF_LINES = 20_000  # lines of diff one answer carries at most (a larger one is cut, and says so)
BUCKETS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}
MAX_BUCKETS = 2000  # buckets one hits answer spans at most

Stage = Literal["draft", "shadow", "rollout", "live", "paused"]


class StageChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: str = Field(min_length=1, max_length=MAX_RULE_NAME)
    stage: Stage | None = Field(description="draft, shadow, rollout, live or paused; null: as the text says")
    percent: float | None = Field(default=None, gt=0, le=100, description="a rollout's share of entities")
    entity: str | None = Field(default=None, max_length=100, description="what a rollout is assigned by")
    reason: str = Field(default="", max_length=MAX_REASON)


class Promotion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: str = Field(min_length=1, max_length=MAX_RULE_NAME)
    percent: float | None = Field(default=None, gt=0, le=100, description="needed to promote shadow to a rollout")
    entity: str | None = Field(default=None, max_length=100)
    reason: str = Field(default="", max_length=MAX_REASON)


class RuleRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: str = Field(min_length=1, max_length=MAX_RULE_NAME)
    reason: str = Field(default="", max_length=MAX_REASON)


class StateOut(BaseModel):
    rule: str
    stage: Stage | None
    percent: float | None
    entity: str | None
    seq: int
    at: float
    actor: str
    reason: str
    detail: dict[str, Any]
    describe: str
    by_guard: bool


class WrittenMode(BaseModel):
    mode: str
    percent: float | None
    entity: str | None


class RuleStage(BaseModel):
    rule: str
    severity: str
    owner: str
    where: str
    written: WrittenMode
    stage: Stage
    percent: float | None
    entity: str | None
    state: StateOut | None
    watched: bool = Field(description="the guard watches it (it changed within the guard's window)")


class GuardOut(BaseModel):
    enabled: bool
    max_share: float
    min_events: int
    window: float
    paused: int = Field(description="rules this process's guard paused since it started")


class LifecycleOut(BaseModel):
    seq: int | None = Field(description="the active version")
    version: str | None = Field(description="what runs: the text's version with the stages' digest")
    rules: list[RuleStage]
    elsewhere: list[StateOut] = Field(description="stages of rules the active version does not have")
    guard: GuardOut


class ChangeOut(BaseModel):
    state: StateOut
    rule: RuleStage | None
    version: str | None


class HistoryOut(BaseModel):
    rule: str
    changes: list[StateOut]


class FileDiff(BaseModel):
    path: str
    status: Literal["added", "removed", "changed"]
    diff: str


class DiffOut(BaseModel):
    base: int
    other: int
    files: list[FileDiff]
    rules: dict[str, list[str]] = Field(description="added, removed, changed: by meaning, as backtests compare")
    truncated: bool


class HitsBucket(BaseModel):
    start: float
    live: int
    shadow: int


class HitsOut(BaseModel):
    rule: str
    since: float
    until: float
    by: str
    buckets: list[HitsBucket]


def _written(svc: Service) -> RuleSet:
    written = svc.rules.ruleset
    if written is None:
        raise ApiError(404, "no_rules", "no rules version is active", "upload one with POST /v1/rules")
    return written


def _rule_view(svc: Service, written: RuleSet, states: dict[str, RuleState]) -> list[dict[str, Any]]:
    watched = svc.rules.guard.watches
    return [{**m, "watched": m["rule"] in watched} for m in effective_modes(written, states)]


async def get_lifecycle(request: Request) -> Response:
    """Every rule of the active version with its stage, and the guard's settings."""
    permit(request, "read")
    svc = service(request)
    written = _written(svc)
    states = await anyio.to_thread.run_sync(svc.rule_states.current)
    names = {r.name for r in written.program.rules}
    guard = svc.rules.guard
    body = {"seq": svc.rules.active.seq if svc.rules.active else None,
            "version": svc.rules.running.version if svc.rules.running else written.version,
            "rules": _rule_view(svc, written, states),
            "elsewhere": [s.to_json() for n, s in sorted(states.items()) if n not in names and s.stage is not None],
            "guard": {"enabled": guard.settings.enabled, "max_share": guard.settings.max_share,
                      "min_events": guard.settings.min_events, "window": guard.settings.window,
                      "paused": guard.tripped}}
    return JSONResponse(body)


def _known_rule(written: RuleSet, rule: str) -> Any:
    for r in written.program.rules:
        if r.name == rule:
            return r
    close = difflib.get_close_matches(rule, [r.name for r in written.program.rules], n=1)
    hint = f"did you mean {close[0]!r}?" if close else "GET /v1/rules/lifecycle lists the rules"
    raise ApiError(404, "unknown_rule", f"the active rules version has no rule {rule!r}", hint)


def _entity(written: RuleSet, entity: str | None) -> None:
    if entity is not None and entity not in written.program.entities:
        declared = ", ".join(sorted(written.program.entities)) or "none"
        raise ApiError(422, "unknown_entity", f"a rollout by {entity!r}: the rules declare no such entity "
                       f"(declared: {declared})", "name an entity the rules declare, e.g. `entity user = …`")


async def _changed(request: Request, state: RuleState) -> Response:
    svc = service(request)
    await svc.rules.apply_states()  # runs here now; elsewhere within a poll interval
    written = svc.rules.ruleset
    rule = None
    if written is not None:
        states = await anyio.to_thread.run_sync(svc.rule_states.current)
        rule = next((m for m in _rule_view(svc, written, states) if m["rule"] == state.rule), None)
    return JSONResponse({"state": state.to_json(), "rule": rule,
                         "version": svc.rules.running.version if svc.rules.running else None})


async def _run(fn: Any) -> RuleState:
    try:
        state: RuleState = await anyio.to_thread.run_sync(fn)
    except LifecycleError as error:
        raise ApiError(error.status, error.code, str(error)) from None
    return state


async def set_stage(request: Request) -> Response:
    """Put a rule in a stage (null: back to what its text says)."""
    actor = permit(request, "rules.write")
    svc = service(request)
    change: StageChange = await _model(request, StageChange)
    written = _written(svc)
    _known_rule(written, change.rule)
    if change.stage == "rollout":
        _entity(written, change.entity)
    state = await _run(lambda: svc.rule_states.change(change.rule, change.stage, actor=actor, percent=change.percent,
                                                      entity=change.entity, reason=change.reason))
    return await _changed(request, state)


async def promote(request: Request) -> Response:
    """One step along draft → shadow → rollout → live (paused: back to live)."""
    actor = permit(request, "rules.write")
    svc = service(request)
    ask: Promotion = await _model(request, Promotion)
    written = _written(svc)
    rule = _known_rule(written, ask.rule)
    current = (await anyio.to_thread.run_sync(svc.rule_states.current)).get(ask.rule)
    try:
        stage = next_stage(current.stage if current is not None else None, written_mode(rule)["mode"])
    except LifecycleError as error:
        raise ApiError(error.status, error.code, str(error)) from None
    if stage == "rollout" and (ask.percent is None or ask.entity is None):
        raise ApiError(422, "bad_rollout", f"promoting {ask.rule!r} from shadow is a rollout: give its percent and "
                       "entity", '{"rule": "…", "percent": 10, "entity": "user"}, or set the stage to live')
    if stage == "rollout":
        _entity(written, ask.entity)
    state = await _run(lambda: svc.rule_states.change(ask.rule, stage, actor=actor, percent=ask.percent,
                                                      entity=ask.entity, reason=ask.reason))
    return await _changed(request, state)


async def rollback(request: Request) -> Response:
    """Return a rule to the stage it had before its latest change."""
    actor = permit(request, "rules.write")
    svc = service(request)
    ask: RuleRef = await _model(request, RuleRef)
    state = await _run(lambda: svc.rule_states.rollback(ask.rule, actor=actor, reason=ask.reason))
    return await _changed(request, state)


async def history(request: Request) -> Response:
    """?rule=NAME&limit=100: a rule's stage changes, newest first."""
    permit(request, "read")
    svc = service(request)
    rule = request.query_params.get("rule", "")
    if not rule:
        raise ApiError(400, "no_rule", "name the rule: ?rule=NAME")
    try:
        limit = max(1, min(1000, int(request.query_params.get("limit", "100"))))
    except ValueError:
        raise ApiError(400, "bad_limit", "limit must be a number") from None
    changes = await anyio.to_thread.run_sync(lambda: svc.rule_states.history(rule, limit))
    return JSONResponse({"rule": rule, "changes": [c.to_json() for c in changes]})


def _version_param(request: Request, name: str, default: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise ApiError(400, f"no_{name}", f"name the version to compare: ?{name}=SEQ")
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "bad_version", f"`{name}` is a version's number (seq), such as 3") from None


def version_diff(base: RulesVersion, other: RulesVersion, max_lines: int = MAX_DIFF_LINES
                 ) -> tuple[list[dict[str, Any]], bool]:
    """Unified diffs, file by file, from `base` to `other`; whether they were cut at `max_lines`."""
    out, left = [], max_lines
    for path in sorted(set(base.files) | set(other.files)):
        a, b = base.files.get(path), other.files.get(path)
        if a == b:
            continue
        status = "added" if a is None else "removed" if b is None else "changed"
        lines = list(difflib.unified_diff((a or "").splitlines(keepends=True), (b or "").splitlines(keepends=True),
                                          f"{base.seq}/{path}", f"{other.seq}/{path}"))
        if len(lines) > left:
            out.append({"path": path, "status": status, "diff": "".join(lines[:left])})
            return out, True
        left -= len(lines)
        out.append({"path": path, "status": status, "diff": "".join(lines)})
    return out, False


def _rules_changed(svc: Service, base: RulesVersion, other: RulesVersion) -> dict[str, list[str]]:
    """The rules added, removed and changed by meaning (vigil.analysis.backtest.rule_fingerprints); empty
    lists where a version no longer passes the checker here."""
    from vigil.analysis.backtest import rule_fingerprints
    from vigil.gate import RulesRejected, load_checked

    functions = svc.rules.gate.functions
    try:
        then = rule_fingerprints(load_checked(base.files, base.entry, functions))
        now = rule_fingerprints(load_checked(other.files, other.entry, functions))
    except RulesRejected:
        return {"added": [], "removed": [], "changed": []}
    return {"added": sorted(set(now) - set(then)), "removed": sorted(set(then) - set(now)),
            "changed": sorted(n for n in set(now) & set(then) if now[n] != then[n])}


async def diff(request: Request) -> Response:
    """?base=SEQ&other=SEQ (default: the active version): what changed between two rules versions."""
    permit(request, "read")
    svc = service(request)
    active = svc.rules.active.seq if svc.rules.active is not None else None
    base_seq = _version_param(request, "base", None)
    other_seq = _version_param(request, "other", active)
    found = []
    for seq in (base_seq, other_seq):
        version = await anyio.to_thread.run_sync(svc.rules_store.get_rules_version, seq)
        if version is None:
            raise ApiError(404, "unknown_version", f"no rules version {seq}", "GET /v1/rules/versions lists them")
        found.append(version)
    base, other = found

    def answer() -> dict[str, Any]:
        files, truncated = version_diff(base, other)
        return {"base": base.seq, "other": other.seq, "files": files, "truncated": truncated,
                "rules": _rules_changed(svc, base, other)}

    return JSONResponse(await anyio.to_thread.run_sync(answer))


async def hits(request: Request) -> Response:
    """?rule=NAME&since=7d&until=…&by=minute|hour|day: the rule's live and shadow hits over time."""
    permit(request, "read")
    svc = service(request)
    record = _record(svc)
    rule = request.query_params.get("rule", "")
    if not rule:
        raise ApiError(400, "no_rule", "name the rule: ?rule=NAME")
    by = request.query_params.get("by", "hour")
    if by not in BUCKETS:
        raise ApiError(400, "bad_by", f"`by` is one of {', '.join(BUCKETS)}")
    now = time.time()
    since = _when(request.query_params.get("since"), now, "since", "7d")
    until = _when(request.query_params.get("until"), now, "until", None) or now
    assert since is not None  # it has a default
    bucket = BUCKETS[by]
    if (until - since) / bucket > MAX_BUCKETS:
        raise ApiError(422, "too_many_buckets", f"{(until - since) / bucket:.0f} buckets of a {by}: at most "
                       f"{MAX_BUCKETS}", "choose a shorter range or a larger `by`")
    rows = await anyio.to_thread.run_sync(lambda: record.rule_hits(rule, since=since, until=until, bucket=bucket))
    buckets: dict[float, dict[str, Any]] = {}
    for start, mode, n in rows:
        slot = buckets.setdefault(start, {"start": start, "live": 0, "shadow": 0})
        slot["live" if mode == "live" else "shadow"] += n
    return JSONResponse({"rule": rule, "since": since, "until": until, "by": by,
                         "buckets": [buckets[k] for k in sorted(buckets)]})


routes = [
    Route("/v1/rules/lifecycle", get_lifecycle, methods=["GET"]),
    Route("/v1/rules/lifecycle/stage", set_stage, methods=["POST"]),
    Route("/v1/rules/lifecycle/promote", promote, methods=["POST"]),
    Route("/v1/rules/lifecycle/rollback", rollback, methods=["POST"]),
    Route("/v1/rules/lifecycle/history", history, methods=["GET"]),
    Route("/v1/rules/diff", diff, methods=["GET"]),
    Route("/v1/rules/hits", hits, methods=["GET"]),
]

_DOCS: list[tuple[str, str, str, str, type[BaseModel] | None, type[BaseModel], list[str]]] = [
    ("GET", "/v1/rules/lifecycle", "Every rule of the active version with its stage, and the guard", "read", None,
     LifecycleOut, []),
    ("POST", "/v1/rules/lifecycle/stage", "Put a rule in a stage (audited; null: as its text says)", "rules.write",
     StageChange, ChangeOut, []),
    ("POST", "/v1/rules/lifecycle/promote", "One step along draft → shadow → rollout → live (paused: live)",
     "rules.write", Promotion, ChangeOut, []),
    ("POST", "/v1/rules/lifecycle/rollback", "Return a rule to its stage before its latest change", "rules.write",
     RuleRef, ChangeOut, []),
    ("GET", "/v1/rules/lifecycle/history", "A rule's stage changes, newest first", "read", None, HistoryOut,
     ["rule", "limit"]),
    ("GET", "/v1/rules/diff", "A unified diff between two rules versions, and the rules it changes", "read", None,
     DiffOut, ["base", "other"]),
    ("GET", "/v1/rules/hits", "A rule's live and shadow hits over time, from the record", "read", None, HitsOut,
     ["rule", "since", "until", "by"]),
]


def openapi_paths() -> tuple[dict[str, Any], dict[str, Any]]:
    """These routes' part of the OpenAPI document: (paths, component schemas)."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for method, path, summary, action, request_model, response, params in _DOCS:
        op: dict[str, Any] = {
            "summary": summary, "security": [{"token": []}],
            "description": f"Needs a role with the `{action}` permission.",
            "responses": {"200": {"description": summary,
                                  "content": {"application/json": {"schema": model_ref(response, schemas)}}}}}
        if params:
            op["parameters"] = [{"name": p, "in": "query", "required": p in ("rule", "base"),
                                 "schema": {"type": "string"}} for p in params]
        if request_model is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": model_ref(request_model, schemas)}}}
        paths.setdefault(path, {})[method.lower()] = op
    return paths, schemas


__all__ = ["STAGES", "openapi_paths", "routes", "version_diff"]

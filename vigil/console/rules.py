"""The Rules pages: every rule of the active version with its stage (flagged when the guard paused it),
its hits over time (live and shadow, from the record), the lifecycle's actions (promote, pause, roll
back), the versions with their authors and a diff between any two, and the editor: the checker's
diagnostics as one types, the rules' own tests, a backtest of the edit over the last N days, and saving
it as a new version through the one gate. Each calls what the API's routes call (vigil.service.lifecycle,
vigil.service.rules, vigil.analysis.backtest), with the same permission checks."""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from vigil.dsl.loader import RuleSet
from vigil.gate import RulesRejected, _beside, load_checked
from vigil.lifecycle.overlay import effective_modes, written_mode
from vigil.lifecycle.states import LifecycleError, next_stage
from vigil.service.access import permit
from vigil.service.errors import ApiError
from vigil.service.lifecycle import version_diff
from vigil.service.reload import FollowsDirectory, validate_files
from vigil.service.rules import rejected
from vigil.service.search import MAX_BACKTEST_EVENTS, _record
from vigil.service.state import Service, service

from .web import CONSOLE_PATH, action, in_thread, page, principal_of, render

MAX_BACKTEST_DAYS = 90


def _written(svc: Service) -> RuleSet:
    if svc.rules.ruleset is None:
        raise ApiError(404, "no_rules", "no rules version is active", "upload one with POST /v1/rules")
    return svc.rules.ruleset


@page("read")
async def rules_list(request: Request) -> Response:
    svc = service(request)
    written = _written(svc)
    states = await in_thread(svc.rule_states.current)
    watched = svc.rules.guard.watches
    rules = [{**m, "watched": m["rule"] in watched} for m in effective_modes(written, states)]
    versions = await in_thread(svc.rules_store.list_rules_versions, 50)
    return render(request, "rules/list.html", {
        "rules": rules, "versions": versions, "active": svc.rules.active,
        "running": svc.rules.running.version if svc.rules.running else written.version,
        "guard": svc.rules.guard.settings, "entities": sorted(written.program.entities),
        "source": svc.rules.source})


def _series(buckets: list[tuple[float, str, int]], since: float, until: float, step: float) -> dict[str, Any]:
    start = since - since % step
    xs = [start + i * step for i in range(int((until - start) // step) + 1)]
    live = dict.fromkeys(xs, 0)
    shadow = dict.fromkeys(xs, 0)
    for at, mode, n in buckets:
        (live if mode == "live" else shadow)[at] = (live if mode == "live" else shadow).get(at, 0) + n
    return {"x": xs, "series": [{"label": "live", "values": [live[x] for x in xs]},
                                {"label": "shadow", "values": [shadow[x] for x in xs]}]}


@page("read")
async def rule_detail(request: Request) -> Response:
    svc = service(request)
    written = _written(svc)
    name = request.query_params.get("name", "")
    states = await in_thread(svc.rule_states.current)
    found = next((m for m in effective_modes(written, states) if m["rule"] == name), None)
    if found is None:
        raise ApiError(404, "unknown_rule", f"the active rules version has no rule {name!r}",
                       "the Rules page lists them")
    history = await in_thread(svc.rule_states.history, name, 50)
    now = time.time()
    days = 1 if request.query_params.get("range") != "7d" else 7
    step = 600.0 if days == 1 else 3600.0
    since = now - days * 86400
    try:
        record = _record(svc)
        buckets = await in_thread(lambda: record.rule_hits(name, since=since, until=now, bucket=step))
        chart: dict[str, Any] | None = _series(buckets, since, now, step)
    except ApiError:
        chart = None  # a service without a record: no chart, said on the page
    return render(request, "rules/rule.html", {
        "rule": {**found, "watched": name in svc.rules.guard.watches}, "history": history, "chart": chart,
        "days": days, "entities": sorted(written.program.entities)})


def _back(rule: str | None = None) -> Response:
    target = f"{CONSOLE_PATH}/rules" + (f"/rule?name={urllib.parse.quote(rule, safe='')}" if rule else "")
    return RedirectResponse(target, status_code=303)


def _number(text: str) -> float | None:
    try:
        return float(text) if text.strip() else None
    except ValueError:
        raise ApiError(422, "bad_rollout", f"the percentage {text!r} is not a number", "e.g. 10") from None


@action("rules.write")
async def change_stage(request: Request) -> Response:
    """One form for the lifecycle: op = promote, pause, rollback or stage (with `stage`)."""
    svc = service(request)
    actor = principal_of(request)
    form: dict[str, str] = request.state.form
    rule, op, reason = form.get("rule", ""), form.get("op", ""), form.get("reason", "")[:1000]
    written = _written(svc)
    found = next((r for r in written.program.rules if r.name == rule), None)
    if found is None and op != "rollback":
        raise ApiError(404, "unknown_rule", f"the active rules version has no rule {rule!r}")
    percent, entity = _number(form.get("percent", "")), form.get("entity") or None
    try:
        if op == "rollback":
            await in_thread(svc.rule_states.rollback, rule, actor=actor, reason=reason)
        else:
            if op == "promote":
                current = (await in_thread(svc.rule_states.current)).get(rule)
                assert found is not None
                stage: str | None = next_stage(current.stage if current else None, written_mode(found)["mode"])
                if stage == "rollout" and (percent is None or entity is None):
                    raise ApiError(422, "bad_rollout", "promoting from shadow is a rollout: give its percentage "
                                   "and entity", "or choose the stage live")
            elif op == "pause":
                stage = "paused"
            elif op == "stage":
                stage = form.get("stage") or None
                stage = None if stage == "written" else stage
            else:
                raise ApiError(400, "bad_op", f"unknown action {op!r}")
            if stage == "rollout" and entity not in written.program.entities:
                raise ApiError(422, "unknown_entity", f"a rollout by {entity!r}: the rules declare no such entity",
                               f"declared: {', '.join(sorted(written.program.entities)) or 'none'}")
            await in_thread(svc.rule_states.change, rule, stage, actor=actor, percent=percent, entity=entity,
                            reason=reason)
    except LifecycleError as error:
        raise ApiError(error.status, error.code, str(error)) from None
    await svc.rules.apply_states()
    return _back(rule if form.get("back") == "rule" else None)


@page("read")
async def diff_page(request: Request) -> Response:
    svc = service(request)
    versions = await in_thread(svc.rules_store.list_rules_versions, 200)
    by_seq = {v.seq: v for v in versions}
    active = svc.rules.active.seq if svc.rules.active else None
    try:
        other = int(request.query_params.get("other") or active or 0)
        base = int(request.query_params.get("base") or (other - 1))
    except ValueError:
        raise ApiError(400, "bad_version", "a version is its number (seq), such as 3") from None
    if base not in by_seq or other not in by_seq:
        raise ApiError(404, "unknown_version", f"no rules version {base if base not in by_seq else other}",
                       "the Rules page lists the versions")
    files, truncated = await in_thread(version_diff, by_seq[base], by_seq[other])
    return render(request, "rules/diff.html", {"base": by_seq[base], "other": by_seq[other], "files": files,
                                               "truncated": truncated, "versions": versions})


def _files(svc: Service, form: dict[str, str]) -> tuple[dict[str, str], tuple[str, ...], str]:
    """The active version's files with the edited one replaced: (files, entry, the edited path)."""
    active = svc.rules.active
    path = form.get("path", "")
    files = dict(active.files) if active is not None else {}
    if not path:
        raise ApiError(422, "no_path", "name the file being edited")
    files[path] = form.get("text", "")
    try:
        files, entry = validate_files(files, list(active.entry) if active is not None and path in files
                                      and path in active.entry else None)
    except (TypeError, ValueError) as error:
        raise ApiError(422, "invalid_upload", str(error)) from None
    return files, entry, path


@page("read")
async def editor(request: Request) -> Response:
    svc = service(request)
    active = svc.rules.active
    if active is None:
        raise ApiError(404, "no_rules", "no rules version is active")
    path = request.query_params.get("path") or (active.entry[0] if active.entry else min(active.files))
    if path not in active.files:
        raise ApiError(404, "unknown_file", f"version {active.seq} has no file {path!r}")
    return render(request, "rules/edit.html", {"active": active, "path": path, "text": active.files[path],
                                               "paths": sorted(active.files)})


@action("read")
async def check(request: Request) -> Response:
    """The checker over the edit (htmx, as one types): its diagnostics, each with line and column."""
    svc = service(request)
    files, entry, path = _files(svc, request.state.form)
    try:
        ruleset = await in_thread(load_checked, files, entry, svc.rules.gate.functions)
        diagnostics = [d for d in ruleset.warnings]
        found = [{"line": d.span.line, "column": d.span.column, "severity": d.severity.value, "message": d.message,
                  "hint": d.hint or "", "file": d.span.file} for d in diagnostics]
        ok, rules = True, len(ruleset.program.rules)
    except RulesRejected as error:
        found = [{k: d[k] for k in ("line", "column", "severity", "message", "file")} | {"hint": d["hint"] or ""}
                 for d in error.diagnostics]
        ok, rules = False, 0
    return render(request, "rules/diagnostics.html", {"diagnostics": found, "ok": ok, "rules": rules, "path": path})


@action("read")
async def run_tests(request: Request) -> Response:
    """The rules' own tests over the edit, with the engine's signals (the gate's second half)."""
    svc = service(request)
    files, entry, _ = _files(svc, request.state.form)
    from vigil.dsl.testing import run_tests as run

    try:
        ruleset = await in_thread(load_checked, files, entry, svc.rules.gate.functions)
    except RulesRejected as error:
        return render(request, "rules/tests.html", {"error": error.message, "results": []})
    gate = svc.rules.gate
    # With the engine's signals beside it (a cache of their own: the engine's is not shared across threads),
    # as the gate runs them.
    results = await in_thread(lambda: run(ruleset, _beside(gate.signals), time_limit=gate.time_limit))
    return render(request, "rules/tests.html", {"error": None, "results": results})


@action("backtests.run")
async def backtest_edit(request: Request) -> Response:
    """The edit replayed over the last N days of the record (vigil.analysis.backtest, as POST /v1/backtests)."""
    from vigil.analysis.backtest import BacktestError, backtest

    svc = service(request)
    files, entry, _ = _files(svc, request.state.form)
    try:
        days = float(request.state.form.get("days", "7"))
        if not 0 < days <= MAX_BACKTEST_DAYS:
            raise ValueError
    except ValueError:
        raise ApiError(422, "bad_days", f"the days to replay are a number above 0 and at most {MAX_BACKTEST_DAYS}"
                       ) from None
    record = _record(svc)
    now = time.time()

    def replay() -> dict[str, Any]:
        candidate = load_checked(files, entry, svc.rules.gate.functions)
        return backtest(record, candidate, since=now - days * 86400, until=now, current=svc.rules.ruleset,
                        examples=5, max_events=MAX_BACKTEST_EVENTS).to_json()

    try:
        report, error = await in_thread(replay), None
    except RulesRejected as refused:
        report, error = None, refused.message
    except BacktestError as refused:
        report, error = None, str(refused)
    return render(request, "rules/backtest.html", {"report": report, "error": error, "days": days})


@action("rules.write")
async def save(request: Request) -> Response:
    """The edit as a new version, through the one gate (checker and tests), activated and audited."""
    from vigil.service.people import audited

    svc = service(request)
    permit(request, "rules.write")
    actor = principal_of(request)
    assert actor is not None  # signed in by `action`
    files, entry, _ = _files(svc, request.state.form)
    previous = svc.rules.active.seq if svc.rules.active else None
    try:
        stored, _ = await svc.rules.upload(files, entry, author=actor.actor,
                                           message=request.state.form.get("message", "")[:1000])
    except FollowsDirectory as error:
        raise ApiError(409, "rules_follow_directory", str(error), FollowsDirectory.hint) from None
    except RulesRejected as error:
        raise rejected(error, svc.rules.active) from None
    assert stored is not None
    await audited(request, actor, "rules.activate", f"rules:{stored.seq}",
                  {"version": stored.version, "previous": previous, "message": stored.message, "uploaded": True})
    return RedirectResponse(f"{CONSOLE_PATH}/rules/diff?base={previous or stored.seq}&other={stored.seq}",
                            status_code=303)

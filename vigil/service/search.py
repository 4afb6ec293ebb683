"""Routes: GET /v1/search (the record searched in the rules language) and POST /v1/backtests (a candidate
rules set replayed over it). docs/record.md says what they take and answer.

A search reads with the `read` scope, and only the events of the sources the token may read (its own,
those granted, every one for admin). A backtest replays every source's events, so it needs `admin`. Both
run in a worker thread, never on the event loop; a search is bounded by the `[search]` settings,
a backtest by the events it may replay (`MAX_BACKTEST_EVENTS`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vigil.analysis import search as run
from vigil.analysis.backtest import BacktestError, FieldTruth, backtest
from vigil.analysis.query import QueryError, compile_query, record_redact
from vigil.diagnostics import DiagnosticError
from vigil.dsl.loader import load_ruleset
from vigil.gate import diagnostic_json
from vigil.record.base import Query, Record
from vigil.service.access import permit
from vigil.service.auth import require, token_source
from vigil.service.errors import ApiError, JSONResponse
from vigil.service.limits import read_body
from vigil.service.reload import validate_files
from vigil.service.state import Service, service
from vigil.signals.labels import Labels
from vigil.stores.base import ApiToken

MAX_BACKTEST_EVENTS = 2_000_000  # events one backtest through the API may replay (the CLI has no limit)


def _record(svc: Service) -> Record:
    recorder = svc.engine.recorder if svc.engine is not None else None
    record = getattr(recorder, "record", None)
    if record is None:
        raise ApiError(404, "no_record", "this service keeps no record of events",
                       "run it with a durable store (--db FILE or postgresql://…), or set record.enabled")
    return record  # type: ignore[no-any-return]


def _sources(token: ApiToken) -> tuple[str, ...] | None:
    """The sources whose events `token` may read; None: every source (as vigil.service.auth.may_read_source)."""
    if "admin" in token.scopes or "*" in token.read_sources:
        return None
    return (token_source(token), *(f"http:{name}" for name in token.read_sources))


def _when(value: Any, now: float, name: str, default: str | None) -> float | None:
    text = value if isinstance(value, str) else default if value is None else str(value)
    if text is None:
        return None
    try:
        return run.parse_when(text, now)
    except ValueError as error:
        raise ApiError(400, "bad_time", f"`{name}`: {error}", f"?{name}=7d or ?{name}=2026-01-01T00:00:00Z") from None


def _number(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"bad_{name}", f"`{name}` must be a whole number, got {raw!r}") from None


async def get_search(request: Request) -> Response:
    """?q=CONDITION (or `top EXPR where CONDITION`), since (default 7d), until, limit, after, by=hour|day, top."""
    return JSONResponse(await search_record(request, request.query_params))


async def search_record(request: Request, params: Mapping[str, str]) -> dict[str, Any]:
    """A search of the record as the caller may read it, with the parameters of GET /v1/search (`q`,
    `since`, `until`, `limit`, `after`, `by`, `top`): the API's route and the console's search page both
    answer with this. Raises ApiError (bad query with its diagnostics, too broad, a bad cursor)."""
    token = require(request, "read")
    svc = service(request)
    record = _record(svc)
    text = params.get("q", "").strip()
    if not text:
        raise ApiError(400, "bad_query", "give the search as ?q=CONDITION",
                       '?q=rule "Known stuffing IP" fired and verdict is block')
    now = time.time()
    window = run.Window(_when(params.get("since"), now, "since", "7d"), _when(params.get("until"), now, "until", None),
                        _sources(token))
    by = params.get("by")
    if by is not None and by not in run.BUCKETS:
        raise ApiError(400, "bad_by", f"`by` is hour or day, not {by!r}")
    limit, top_n, after = _number(params, "limit", run.DEFAULT_ROWS), _number(params, "top", 10), params.get("after")
    engine = svc.engine
    context = engine.ruleset if engine is not None else None

    def answer() -> dict[str, Any]:
        labels = Labels(svc.store)  # its own working set: the labels' history as of each event's time

        def rule_exists(name: str) -> bool:
            return next(iter(record.scan(Query(rules=(name,), limit=1, sources=window.sources))), None) is not None

        redactor = getattr(getattr(engine, "recorder", None), "redactor", None)
        query = compile_query(text, context=context, rule_exists=rule_exists, labels=labels,
                              redact=record_redact(redactor) if redactor is not None else None)
        limits = svc.config.search.limits()
        if query.has_top:
            return run.top(record, query, window, n=top_n, limits=limits).to_json()
        if by is not None:
            return run.counts(record, query, window, by=by, limits=limits).to_json()
        return run.search(record, query, window, limit=limit, after=after, limits=limits).to_json()

    try:
        body: dict[str, Any] = await anyio.to_thread.run_sync(answer)
    except QueryError as error:
        raise ApiError(400, "bad_query", "the search has errors", "see `diagnostics`: line and column in the query",
                       extra={"diagnostics": error.to_json()}) from None
    except run.SearchRefused as error:
        raise ApiError(422, "search_too_broad", error.message, error.hint) from None
    except ValueError as error:  # a cursor that is not one
        raise ApiError(400, "bad_cursor", str(error), "pass ?after= the cursor of the previous page") from None
    return body


async def post_backtest(request: Request) -> Response:
    """{"files": {path: text}, "entry"?: [paths], "since"?: "30d", "until"?, "truth"?: FIELD,
    "positive_verdict"?: "flag", "examples"?: 5, "reviews"?: true} → the backtest's report (docs/record.md)."""
    permit(request, "backtests.run")
    svc = service(request)
    record = _record(svc)
    raw = await read_body(request, svc.settings.max_rules_bytes)
    try:
        body = orjson.loads(raw)
        if not isinstance(body, dict):
            raise TypeError("the body must be a JSON object")
        files, entry = validate_files(body.get("files"), body.get("entry"))
        examples = body.get("examples", 5)
        positive = body.get("positive_verdict", "flag")
        truth = body.get("truth")
        reviews = body.get("reviews", True)
        if not isinstance(reviews, bool):
            raise TypeError('"reviews" is true or false: score against reviewers\' decisions in the record')
        if not isinstance(examples, int) or not 0 <= examples <= 100:
            raise ValueError('"examples" is a number from 0 to 100')
        if truth is not None and not isinstance(truth, str):
            raise TypeError('"truth" is the dotted path of an event field, e.g. "truth.attack"')
    except (orjson.JSONDecodeError, TypeError, ValueError) as error:
        raise ApiError(400, "bad_request", str(error),
                       '{"files": {"rules.vigil": "rule …"}, "since": "30d", "truth": "truth.attack"}') from None
    now = time.time()
    since = _when(body.get("since"), now, "since", "30d")
    until = _when(body.get("until"), now, "until", None) or now
    assert since is not None  # it has a default
    engine = svc.engine
    # The active version as written: the rules' stages (vigil/lifecycle) are not edits of their text.
    current = svc.rules.ruleset if svc.rules.ruleset is not None else engine.ruleset if engine is not None else None
    functions = current.program.functions if current is not None else None

    def replay() -> dict[str, Any]:
        candidate = load_ruleset(list(entry), files=files, functions=functions)
        return backtest(record, candidate, since=since, until=until, current=current,
                        truth=FieldTruth(truth) if truth else None, positive_verdict=positive, examples=examples,
                        max_events=MAX_BACKTEST_EVENTS, reviews=reviews).to_json()

    try:
        report = await anyio.to_thread.run_sync(replay)
    except DiagnosticError as error:
        raise ApiError(400, "rules_invalid", "the candidate rules have errors", "see `diagnostics`",
                       extra={"diagnostics": [diagnostic_json(d, error.sources) for d in error.errors]}) from None
    except BacktestError as error:
        raise ApiError(422, "backtest_refused", str(error), "choose a range that holds stored events") from None
    return JSONResponse(report)


routes = [
    Route("/v1/search", get_search, methods=["GET"]),
    Route("/v1/backtests", post_backtest, methods=["POST"]),
]

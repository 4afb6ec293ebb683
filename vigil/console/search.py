"""The Search page: a rules-language condition with the checker's diagnostics as you type, the matching
events as a table, the top values of a field, a chart of matches over time, and a bulk label over the
results that first shows how many entities it will touch and needs a reason. Every search is the API's
own (`search_record`, the same limits); every label change the API's (`change_label`), audited."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from vigil.service.access import caller, permit
from vigil.service.errors import ApiError
from vigil.service.labels import change_label
from vigil.service.people import audited
from vigil.service.search import search_record

from .web import CONSOLE_PATH, action, epoch, page, render

BULK_MAX = 1000  # entities one bulk action may touch (a page of the search's results at most)
EXAMPLE = 'event is "post" and verdict is review'


def _params(source: Any) -> dict[str, str]:
    return {"q": str(source.get("q", "")).strip()[:4000], "since": str(source.get("since", "7d")).strip()[:40] or "7d",
            "top": str(source.get("top", "")).strip()[:200], "entity": str(source.get("entity", "user")).strip()[:100]}


async def _try(request: Request, params: dict[str, str]) -> tuple[dict[str, Any] | None, ApiError | None]:
    try:
        return await search_record(request, params), None
    except ApiError as error:
        return None, error


@page("read")
async def search_page(request: Request) -> Response:
    p = _params(request.query_params)
    context: dict[str, Any] = {"p": p, "example": EXAMPLE, "result": None, "error": None, "top": None,
                               "chart": None, "bulk": None}
    if p["q"]:
        result, error = await _try(request, {"q": p["q"], "since": p["since"], "limit": "100"})
        context.update(result=result, error=error)
        if result is not None:
            counts, _ = await _try(request, {"q": p["q"], "since": p["since"], "by": "hour"})
            if counts is not None and counts.get("buckets"):
                context["chart"] = {"x": [epoch(b["bucket"]) for b in counts["buckets"]],
                                    "series": [{"label": "matches per hour", "values": [b["count"] for b in counts["buckets"]]}]}
            if p["top"]:
                context["top"], context["top_error"] = await _try(
                    request, {"q": f"top {p['top']} where {p['q']}", "since": p["since"], "top": "10"})
    return render(request, "search.html", context)


@page("read")
async def check(request: Request) -> Response:
    """The checker's diagnostics for the condition typed so far (an htmx fragment)."""
    p = _params(request.query_params)
    error = None
    if p["q"]:
        _result, error = await _try(request, {"q": p["q"], "since": p["since"], "limit": "1"})
    return render(request, "search_check.html", {"p": p, "error": error})


def _keys(result: dict[str, Any], entity: str) -> list[str]:
    seen: dict[str, None] = {}
    for event in result.get("events", []):
        for etype, key in event.get("entities", []):
            if etype == entity:
                seen[str(key)] = None
    return list(seen)[:BULK_MAX]


@action("labels.write")
async def bulk(request: Request) -> Response:
    """Without `confirm`: a preview of how many entities the label would touch. With `confirm` equal to
    that count (the results may have changed since): label each, with the reason."""
    form = request.state.form
    p = _params(form)
    label, reason = form.get("label", "").strip(), form.get("reason", "").strip()
    if not p["q"]:
        raise ApiError(422, "bad_query", "search first: the bulk action works on a search's results")
    if not label or len(label) > 200:
        raise ApiError(422, "invalid_label", "give the label to add, 1 to 200 characters")
    if not reason or len(reason) > 2000:
        raise ApiError(422, "reason_required", "a bulk action needs a reason (1 to 2000 characters), kept with each change",
                       "write the reason and send the form again")
    result = await search_record(request, {"q": p["q"], "since": p["since"], "limit": str(BULK_MAX)})
    keys = _keys(result, p["entity"])
    if form.get("confirm") != str(len(keys)):
        back = f"{CONSOLE_PATH}/search?{urlencode({k: v for k, v in p.items() if k != 'entity'})}"
        return render(request, "search_bulk.html", {"p": p, "label": label, "reason": reason, "keys": keys,
                                                    "back": back, "changed": form.get("confirm") not in (None, "")})
    actor = permit(request, "labels.write")
    changed = 0
    for key in keys:
        record, _state = await change_label(request, p["entity"], key, label, present=True, actor=caller(request).actor,
                                            reason=reason, expires_in=None)
        changed += record is not None
    await audited(request, actor, "label.bulk", f"search:{p['q'][:200]}",
                  {"label": label, "entity": p["entity"], "reason": reason, "touched": len(keys), "changed": changed,
                   "since": p["since"], "at": time.time()})
    done = quote(f"labelled {changed} of {len(keys)} {p['entity']} entities {label}", safe="")
    query = urlencode({k: v for k, v in p.items() if k != "entity"})
    return RedirectResponse(f"{CONSOLE_PATH}/search?{query}&done={done}", status_code=303)

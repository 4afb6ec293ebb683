"""The Dashboard: verdicts per hour over the last day (the record, through the API's `search_record`)
and queue health (the review system's own numbers)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from vigil.service.errors import ApiError
from vigil.service.search import search_record

from .review import deadline_state, visible_queues
from .web import epoch, in_thread, page, render

VERDICTS = ("allow", "flag", "review", "block")


@page("read")
async def dashboard(request: Request) -> Response:
    series: list[dict[str, Any]] = []
    hours: set[float] = set()
    counts: dict[str, dict[float, int]] = {}
    problem = None
    for verdict in VERDICTS:
        try:
            body = await search_record(request, {"q": f"verdict is {verdict}", "since": "1d", "by": "hour"})
        except ApiError as error:  # no record, or a search too broad for the limits
            problem = error.message
            break
        counts[verdict] = {epoch(b["bucket"]): int(b["count"]) for b in body.get("buckets", [])}
        hours |= set(counts[verdict])
    x = sorted(hours)
    series = [{"label": v, "values": [counts.get(v, {}).get(h, 0) for h in x]} for v in VERDICTS if v in counts]
    queues = []
    review = getattr(request.app.state, "review", None)
    if review is not None:
        for name in visible_queues(request, review):
            numbers = await in_thread(review.metrics, name)
            queues.append({**numbers, "state": deadline_state(numbers)})
    return render(request, "dashboard.html", {"chart": {"x": x, "series": series} if x else None,
                                              "totals": {v: sum(counts.get(v, {}).values()) for v in VERDICTS},
                                              "queues": queues, "problem": problem})

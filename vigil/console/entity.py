"""The Entity page: an entity's timeline of events and decisions from the record, its labels with their
full history, manual add and remove with a reason, its counters now, and the entities seen with it
(shared devices, IPs, e-mails, URLs), each a link. Read with the API's `read_timeline`; labels changed
with the API's `change_label` and audited as the API audits them."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from vigil.service.errors import ApiError
from vigil.service.labels import change_label
from vigil.service.people import audited
from vigil.service.record import read_timeline

from .web import CONSOLE_PATH, action, page, render


def entity_path(entity_type: str, key: str) -> str:
    return f"{CONSOLE_PATH}/entities/{quote(entity_type, safe='')}/{quote(key, safe='')}"


@page("read")
async def lookup(request: Request) -> Response:
    """A form for TYPE and KEY, or straight to the entity when both are given."""
    etype, key = request.query_params.get("type", "").strip(), request.query_params.get("key", "").strip()
    if etype and key:
        return RedirectResponse(entity_path(etype, key), status_code=303)
    return render(request, "entity_lookup.html", {"type": etype or "user"})


@page("read")
async def entity(request: Request) -> Response:
    etype, key = str(request.path_params["entity_type"]), str(request.path_params["key"])
    timeline = await read_timeline(request, etype, key, limit=50, after=request.query_params.get("after"))
    return render(request, "entity.html", {"t": timeline, "flash": request.query_params.get("done", "")})


@action("labels.write")
async def change(request: Request) -> Response:
    """Add or remove a manual label; a reason is required for both."""
    from vigil.service.access import caller

    etype, key = str(request.path_params["entity_type"]), str(request.path_params["key"])
    form = request.state.form
    label, reason, what = form.get("label", "").strip(), form.get("reason", "").strip(), form.get("change", "")
    if what not in ("add", "remove"):
        raise ApiError(422, "bad_change", "choose add or remove")
    if not label or len(label) > 200:
        raise ApiError(422, "invalid_label", "give the label, 1 to 200 characters")
    if not reason or len(reason) > 2000:
        raise ApiError(422, "reason_required", "say why (1 to 2000 characters): the reason is kept with the change",
                       "write the reason and send the form again")
    actor = caller(request)
    record, _state = await change_label(request, etype, key, label, present=what == "add", actor=actor.actor,
                                        reason=reason, expires_in=None)
    if record is not None:
        await audited(request, actor, f"label.{what}", f"{etype}:{key}", {"label": label, "reason": reason,
                                                                          "expires_in": None})
    done = quote(f"{'added' if what == 'add' else 'removed'} {label}" if record is not None else "nothing changed", safe="")
    return RedirectResponse(f"{entity_path(etype, key)}?done={done}", status_code=303)

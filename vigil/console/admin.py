"""The Administration pages: people with their roles (per queue: `reviewer:spam`), enabling and disabling
them, their API tokens (a new one's secret shown once), and the audit log with filters. Each change goes
through the people store's own functions (vigil.people), audited by the admin who made it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from vigil.people.accounts import PeopleError
from vigil.people.roles import ACTIONS, ROLES, parse_grants
from vigil.service.auth import SCOPES, create_token, parse_scopes
from vigil.service.errors import ApiError
from vigil.service.state import service

from .web import CONSOLE_PATH, action, in_thread, page, principal_of, render

AUDIT_PAGE = 100


async def _people(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await in_thread(fn, *args, **kwargs)
    except PeopleError as error:
        raise ApiError(error.status, error.code, str(error)) from None
    except ValueError as error:  # an unknown role or scope
        raise ApiError(422, "invalid_request", str(error),
                       f"roles: {', '.join(ROLES)} (ROLE or ROLE:QUEUE); scopes: {', '.join(SCOPES)}") from None


async def _page(request: Request, **extra: Any) -> Response:
    svc = service(request)
    people = await in_thread(svc.people.list_people)
    tokens = await in_thread(svc.token_store.list_tokens)
    by_person: dict[str, list[Any]] = {}
    for t in tokens:
        if t.person is not None and not t.revoked:
            by_person.setdefault(t.person, []).append(t)
    return render(request, "admin/people.html", {"people": people, "tokens": by_person, "roles": ROLES,
                                                 "actions": ACTIONS, "scopes": SCOPES, "secret": None, **extra})


@page("users.manage")
async def people_page(request: Request) -> Response:
    return await _page(request)


def _back() -> Response:
    return RedirectResponse(f"{CONSOLE_PATH}/admin", status_code=303)


def _grants(text: str) -> Any:
    return parse_grants([text]) if text.strip() else ()


@action("users.manage")
async def create_person(request: Request) -> Response:
    svc, form = service(request), request.state.form
    password = form.get("password") or None
    await _people(lambda: svc.people.create(form.get("name", ""), _grants(form.get("roles", "")),
                                            actor=principal_of(request), password=password))
    return _back()


@action("users.manage")
async def change_person(request: Request) -> Response:
    """op = roles (with `roles`), disable or enable."""
    svc, form = service(request), request.state.form
    name, op, actor = form.get("name", ""), form.get("op", ""), principal_of(request)
    if op == "roles":
        await _people(lambda: svc.people.set_roles(name, _grants(form.get("roles", "")), actor=actor))
    elif op in ("disable", "enable"):
        await _people(lambda: svc.people.set_disabled(name, op == "disable", actor=actor))
    else:
        raise ApiError(400, "bad_op", f"unknown change {op!r}")
    svc.principals.forget()  # this process sees it at once; others within token_cache_seconds
    return _back()


@action("users.manage")
async def new_token(request: Request) -> Response:
    """A token for a person; its secret is on the answer's page only."""
    svc, form = service(request), request.state.form
    name, person, actor = form.get("token", ""), form.get("name", ""), principal_of(request)

    def make() -> tuple[Any, str]:
        svc.people.require(person)
        token, secret = create_token(svc.token_store, name, parse_scopes(form.get("scopes", "read").split(",")),
                                     person=person)
        svc.audit.append(actor, "token.create", f"token:{token.id}",
                         {"name": token.name, "person": person, "scopes": list(token.scopes)})
        return token, secret.get_secret_value()

    if not name.strip():
        raise ApiError(422, "invalid_request", "name the token (e.g. the machine that uses it)")
    token, secret = await _people(make)
    return await _page(request, secret={"token": token, "secret": secret, "person": person})


@page("audit.read")
async def audit_page(request: Request) -> Response:
    q = request.query_params
    filters = {k: q.get(k) or None for k in ("actor", "action", "target")}
    try:
        before = int(q["before"]) if q.get("before") else None
    except ValueError:
        raise ApiError(400, "bad_request", "`before` is an entry's number") from None
    log = service(request).audit
    entries = await in_thread(log.entries, before=before, limit=AUDIT_PAGE, newest_first=True, **filters)
    older = entries[-1].seq if len(entries) == AUDIT_PAGE else None
    return render(request, "admin/audit.html", {"entries": entries, "filters": filters, "older": older})

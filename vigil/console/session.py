"""Logging in and out of the console, with the API's own session functions (vigil.service.people):
the same password check, limits on failed logins, session store and cookie."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from vigil.people.roles import can
from vigil.service.errors import ApiError
from vigil.service.people import clear_session_cookie, close_session, open_session, set_session_cookie
from vigil.service.state import service

from .web import CONSOLE_PATH, action, check_csrf, page, read_form, render, sign_in


def _next(target: str | None) -> str:
    """Where to go after logging in: a console path only (never another site: an open redirect)."""
    if target and target.startswith(CONSOLE_PATH + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return CONSOLE_PATH + "/"


async def login_form(request: Request) -> Response:
    if not service(request).settings.auth or await sign_in(request) is not None:
        return RedirectResponse(_next(request.query_params.get("next")), status_code=303)
    return render(request, "login.html", {"next": _next(request.query_params.get("next")), "error": None, "name": ""})


async def login(request: Request) -> Response:
    try:
        form = await read_form(request)
        check_csrf(request, form)
        name, password = form.get("name", "").strip(), form.get("password", "")
        if not name or not password:
            raise ApiError(422, "login_incomplete", "give your name and your password")
        _person, secret, _expires = await open_session(request, name[:100], password)
    except ApiError as error:
        context = {"next": _next(request.query_params.get("next")), "error": error, "name": ""}
        return render(request, "login.html", context, status=error.status, headers=error.headers)
    response = RedirectResponse(_next(request.query_params.get("next")), status_code=303)
    set_session_cookie(request, response, secret)
    return response


@action(None)
async def logout(request: Request) -> Response:
    await close_session(request)
    response = RedirectResponse(f"{CONSOLE_PATH}/login", status_code=303)
    clear_session_cookie(response)
    return response


@page(None)
async def home(request: Request) -> Response:
    """The first page: the review queues for those who review, else search."""
    from .web import principal_of

    principal = principal_of(request)
    first = "/review" if principal is not None and can(principal, "review.view") else "/search"
    return RedirectResponse(CONSOLE_PATH + first, status_code=303)

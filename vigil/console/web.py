"""The pieces every page uses: the templates (Jinja2, autoescaped: event text is written by attackers),
the caller (from the session cookie, as the API's middleware resolves it), `page` and `action` (the
permission check on the server for every page and every action, the CSRF check for every action), and
errors rendered as pages with what went wrong and how to fix it."""

from __future__ import annotations

import functools
import math
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import jinja2
import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from vigil.people.roles import Principal, can
from vigil.review.core import ReviewError
from vigil.service.access import ANONYMOUS, PRINCIPAL_KEY, SESSION_COOKIE, permit
from vigil.service.auth import SCOPE_KEY
from vigil.service.errors import ApiError
from vigil.service.limits import read_body
from vigil.service.state import service
from vigil.stores.base import ApiToken

from .nav import NAV
from .security import CSRF_FIELD, CSRF_HEADER, csrf_ok, csrf_token, same_origin

CONSOLE_PATH = "/console"
MAX_FORM_BYTES = 256 << 10  # a form's body at most (a rules file is the largest thing a form sends)
MAX_FIELDS = 200

Endpoint = Callable[[Request], Awaitable[Response]]


def when(value: Any) -> str:
    """An epoch time as people read it: `2026-01-01 12:00:03 UTC`."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: Any) -> str:
    """`95` → `1 min 35 s`; `90000` → `1 d 1 h`."""
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "—"
    s = int(abs(seconds))
    parts = [(s // 86400, "d"), (s % 86400 // 3600, "h"), (s % 3600 // 60, "min"), (s % 60, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return ("-" if seconds < 0 else "") + (" ".join(shown) or "0 s")


def epoch(bucket: Any) -> float:
    """A search bucket (`2026-12-02T20:00:00Z`, or seconds) as epoch seconds, for a chart's x axis."""
    if isinstance(bucket, (int, float)):
        return float(bucket)
    return datetime.fromisoformat(str(bucket)).timestamp()


def ago(value: Any, now: float | None = None) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    delta = (time.time() if now is None else now) - float(value)
    return f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"


def readable(value: Any) -> str:
    """A value from an event as text: strings as they are, numbers plainly, the rest as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return orjson.dumps(value, default=str).decode()


def templates() -> jinja2.Environment:
    """The console's Jinja2 environment: every value escaped unless a template says otherwise (none
    does for event data), undefined names an error rather than an empty string."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("vigil.console", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(when=when, duration=duration, ago=ago, readable=readable,
                       urlpart=lambda v: urllib.parse.quote(str(v), safe=""))
    return env


def render(request: Request, template: str, context: Mapping[str, Any] | None = None, *,
           status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    env: jinja2.Environment = request.scope["vigil.console"]
    principal = principal_of(request)
    base = {"request": request, "me": principal, "csrf": csrf_token(request), "root": CONSOLE_PATH,
            "nav": [n for n in NAV if n.visible(principal)], "can": lambda action, queue=None: _can(principal, action, queue),
            "path": request.url.path, "partial": request.headers.get("hx-request") == "true"}
    html = env.get_template(template).render({**base, **(context or {})})
    return HTMLResponse(html, status_code=status, headers=dict(headers or {}))


def _can(principal: Principal | None, action: str, queue: Any = None) -> bool:
    return principal is not None and can(principal, action, queue)


def principal_of(request: Request) -> Principal | None:
    principal: Principal | None = request.scope.get(PRINCIPAL_KEY)
    return principal


async def sign_in(request: Request) -> Principal | None:
    """The caller from the session cookie (anonymous when the service runs without authentication),
    put into the request's scope as the API's middleware puts it, so that the API's own checks
    (`permit`, `require`) and functions work unchanged. None: not logged in."""
    svc = service(request)
    if not svc.settings.auth:
        principal: Principal | None = ANONYMOUS
    else:
        secret = request.cookies.get(SESSION_COOKIE, "")
        principal = await svc.principals.aof_session(secret) if secret else None
    if principal is None:
        return None
    request.scope[PRINCIPAL_KEY] = principal
    # A person reads the record of every source: their roles say what they may do (a token's own source
    # is a machine's boundary, not a person's).
    request.scope[SCOPE_KEY] = ApiToken("session", principal.name, "", principal.scopes(), 0.0, read_sources=("*",),
                                        person=principal.name if principal.kind == "person" else None)
    return principal


def error_page(request: Request, status: int, message: str, hint: str = "", code: str = "") -> HTMLResponse:
    return render(request, "error.html", {"status": status, "message": message, "hint": hint, "code": code},
                  status=status)


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = f"{CONSOLE_PATH}/login?next={urllib.parse.quote(target, safe='')}"
    if request.headers.get("hx-request") == "true":  # a partial update: htmx moves the whole page
        return Response(status_code=401, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def page(permission: str | None = "read") -> Callable[[Endpoint], Endpoint]:
    """A page (GET) that needs a logged-in caller with `permission` (None: any logged-in caller). Errors
    the API would answer with (ApiError, ReviewError) become error pages with the same status."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def run(request: Request) -> Response:
            if await sign_in(request) is None:
                return _login_redirect(request)
            try:
                if permission is not None:
                    permit(request, permission)
                return await endpoint(request)
            except ApiError as error:
                return error_page(request, error.status, error.message, error.hint, error.code)
            except ReviewError as error:
                return error_page(request, error.status, error.message, error.hint, error.code)

        run.console_page = True  # type: ignore[attr-defined]
        return run

    return wrap


def action(permission: str | None) -> Callable[[Endpoint], Endpoint]:
    """An action (POST): as `page`, and the form must carry the caller's CSRF token and come from this
    origin (403 otherwise, nothing done). The parsed form is in `request.state.form`."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def run(request: Request) -> Response:
            if await sign_in(request) is None:
                return _login_redirect(request)
            try:
                request.state.form = await read_form(request)
                check_csrf(request, request.state.form)
                if permission is not None:
                    permit(request, permission)
                return await endpoint(request)
            except ApiError as error:
                return error_page(request, error.status, error.message, error.hint, error.code)
            except ReviewError as error:
                return error_page(request, error.status, error.message, error.hint, error.code)

        run.console_action = True  # type: ignore[attr-defined]
        return run

    return wrap


def check_csrf(request: Request, form: Mapping[str, str]) -> None:
    given = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    if not same_origin(request) or not csrf_ok(request, given):
        raise ApiError(403, "csrf", "this form is out of date or came from another site, so nothing was done",
                       "reload the page and try again")


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form, bounded in bytes and fields; a field given twice keeps its last value."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    raw = await read_body(request, MAX_FORM_BYTES)
    if raw and kind != "application/x-www-form-urlencoded":
        raise ApiError(415, "unsupported_form", f"a console form is sent urlencoded, not as {kind or 'nothing'}")
    try:
        pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS,
                                       strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as error:
        raise ApiError(400, "bad_form", f"the form cannot be read: {error}", "send it from the console's page") from None
    return dict(pairs)


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Store and record reads off the event loop, as the API's routes do."""
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

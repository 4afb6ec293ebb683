"""Routes: console sessions (POST/DELETE /v1/session), who am I (GET /v1/me), people and their tokens
(/v1/users, admin), and the audit log (GET /v1/audit, admin). Every change is audited by the person
who made it; password hashing runs off the event loop."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vigil.people.accounts import MAX_PASSWORD, PeopleError, Person
from vigil.people.roles import parse_grants
from vigil.service.access import SESSION_COOKIE, caller, permit
from vigil.service.auth import create_token, parse_scopes
from vigil.service.errors import ApiError, JSONResponse
from vigil.service.limits import read_body
from vigil.service.openapi import model_ref
from vigil.service.state import service

SESSION_PATH = "/v1/session"
MAX_BODY = 64 << 10


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class NewPerson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    roles: list[str] = Field(default_factory=list, description="ROLE or ROLE:QUEUE")
    password: str | None = Field(default=None, max_length=MAX_PASSWORD)


class PersonChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: list[str] | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, max_length=MAX_PASSWORD)


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(default_factory=lambda: ["read"], description="what it sends as; the person's "
                              "roles decide what it may do")


async def _model(request: Request, model: type[BaseModel]) -> Any:
    raw = await read_body(request, MAX_BODY)
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, "invalid_request", f"{where}: {first['msg']}", "see GET /openapi.json") from None


async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
    except PeopleError as error:
        raise ApiError(error.status, error.code, str(error)) from None
    except ValueError as error:  # an unknown role or scope
        raise ApiError(422, "invalid_request", str(error)) from None


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "-"


async def login(request: Request) -> Response:
    """Log in with a name and password: a session cookie (HttpOnly, SameSite=Strict, Secure over https)."""
    body: Login = await _model(request, Login)
    person, secret, expires = await open_session(request, body.name, body.password)
    response = JSONResponse({"person": person.to_json(), "expires_at": expires})
    set_session_cookie(request, response, secret)
    return response


async def open_session(request: Request, name: str, password: str) -> tuple[Person, str, float]:
    """Check a name and password and open a session: (the person, the session's secret, its expiry).
    Failed logins are limited per client address and per name (429); a wrong name or password is a 401
    that does not say which. The API's login and the console's login form both call this."""
    svc = service(request)
    limiter = svc.auth_failures
    keys = (_client(request), f"login:{name}")  # per address, and per name against many addresses
    if limiter is not None and any(limiter.left(k) < 1.0 for k in keys):
        wait = max((1.0 - limiter.left(k)) / limiter.rate for k in keys)
        raise ApiError(429, "auth_rate_limited", "too many failed logins", f"retry in {wait:.0f} s",
                       headers={"Retry-After": str(max(1, round(wait)))})
    person: Person | None = await anyio.to_thread.run_sync(svc.people.authenticate, name, password[:MAX_PASSWORD])
    if person is None:
        if limiter is not None:
            for k in keys:
                limiter.take(k)
        svc.metrics.rejected.labels("login_failed").inc()
        raise ApiError(401, "login_failed", "the name or the password is wrong, or the person is disabled")
    secret, expires = await anyio.to_thread.run_sync(svc.people.open_session, person, svc.settings.session_seconds)
    return person, secret, expires


def set_session_cookie(request: Request, response: Response, secret: str) -> None:
    """The session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site sends it),
    Secure over https or when `session_cookie_secure` says always."""
    svc = service(request)
    secure = svc.settings.session_cookie_secure == "always" or request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, secret, max_age=int(svc.settings.session_seconds), path="/", httponly=True,
                        samesite="strict", secure=secure)


async def close_session(request: Request) -> bool:
    """Forget the caller's session, if any; whether there was one. Clear its cookie with `clear_session_cookie`."""
    svc = service(request)
    secret = request.cookies.get(SESSION_COOKIE, "")
    person = await anyio.to_thread.run_sync(svc.people.close_session, secret) if secret else None
    return person is not None


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


async def logout(request: Request) -> Response:
    response = JSONResponse({"logged_out": await close_session(request)})
    clear_session_cookie(response)
    return response


async def me(request: Request) -> Response:
    principal = caller(request)
    return JSONResponse({"actor": principal.actor, "kind": principal.kind, "person": principal.person,
                         "roles": [str(g) for g in principal.grants], "scopes": list(principal.scopes())})


async def list_users(request: Request) -> Response:
    permit(request, "users.manage")
    people = await _run(service(request).people.list_people)
    return JSONResponse({"users": [p.to_json() for p in people]})


async def create_user(request: Request) -> Response:
    actor = permit(request, "users.manage")
    body: NewPerson = await _model(request, NewPerson)
    svc = service(request)
    person = await _run(lambda: svc.people.create(body.name, parse_grants(body.roles), actor=actor,
                                                  password=body.password))
    return JSONResponse({"user": person.to_json()}, status_code=201)


async def change_user(request: Request) -> Response:
    actor = permit(request, "users.manage")
    body: PersonChange = await _model(request, PersonChange)
    svc, name = service(request), request.path_params["name"]

    def change() -> Person:
        person = svc.people.require(name)
        if body.roles is not None:
            person = svc.people.set_roles(name, parse_grants(body.roles), actor=actor)
        if body.password is not None:
            person = svc.people.set_password(name, body.password, actor=actor)
        if body.disabled is not None and body.disabled != person.disabled:
            person = svc.people.set_disabled(name, body.disabled, actor=actor)
        return person

    person = await _run(change)
    svc.principals.forget()  # this process sees the change at once; others within token_cache_seconds
    return JSONResponse({"user": person.to_json()})


async def create_user_token(request: Request) -> Response:
    """A token for a person; the secret is in this answer only."""
    actor = permit(request, "users.manage")
    body: NewToken = await _model(request, NewToken)
    svc, name = service(request), request.path_params["name"]

    def make() -> tuple[Any, str]:
        svc.people.require(name)
        token, secret = create_token(svc.token_store, body.name, parse_scopes(body.scopes), person=name)
        svc.audit.append(actor, "token.create", f"token:{token.id}",
                         {"name": token.name, "person": name, "scopes": list(token.scopes)})
        return token, secret.get_secret_value()

    token, secret = await _run(make)
    return JSONResponse({"token": {"id": token.id, "name": token.name, "person": name, "scopes": list(token.scopes)},
                         "secret": secret}, status_code=201)


async def audit_entries(request: Request) -> Response:
    """The audit log, oldest first from `after` (or newest first with order=desc), filtered by actor,
    action (a prefix ending in "." selects a family, e.g. "review.") and target."""
    permit(request, "audit.read")
    q = request.query_params
    try:
        after, limit = int(q.get("after", "0")), int(q.get("limit", "100"))
        before = int(q["before"]) if "before" in q else None
    except ValueError:
        raise ApiError(400, "bad_request", "after, before and limit are whole numbers") from None
    log = service(request).audit
    entries = await _run(log.entries, after=after, before=before, actor=q.get("actor"), action=q.get("action"),
                         target=q.get("target"), limit=limit, newest_first=q.get("order") == "desc")
    body: dict[str, Any] = {"entries": [e.to_json() for e in entries]}
    if entries:
        body["next"] = entries[-1].seq
    return JSONResponse(body)


async def audit_verify(request: Request) -> Response:
    permit(request, "audit.read")
    result = await _run(service(request).audit.verify)
    return JSONResponse({"ok": result.ok, "checked": result.checked, "head": {"seq": result.head_seq,
                         "hash": result.head_hash}, "broken": result.broken, "problem": result.problem},
                        status_code=200 if result.ok else 409)


routes = [
    Route(SESSION_PATH, login, methods=["POST"]),
    Route(SESSION_PATH, logout, methods=["DELETE"]),
    Route("/v1/me", me, methods=["GET"]),
    Route("/v1/users", list_users, methods=["GET"]),
    Route("/v1/users", create_user, methods=["POST"]),
    Route("/v1/users/{name}", change_user, methods=["PATCH"]),
    Route("/v1/users/{name}/tokens", create_user_token, methods=["POST"]),
    Route("/v1/audit", audit_entries, methods=["GET"]),
    Route("/v1/audit/verify", audit_verify, methods=["GET"]),
]


async def audited(request: Request, actor: Any, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    """Append an entry to the service's audit log, off the event loop (an append waits for the store)."""
    log = service(request).audit
    await anyio.to_thread.run_sync(lambda: log.append(actor, action, target, detail))


# ---- the OpenAPI part of these routes, from their models ----
class PersonOut(BaseModel):
    name: str
    roles: list[str]
    disabled: bool
    created_at: float
    updated_at: float
    has_password: bool


class SessionOut(BaseModel):
    person: PersonOut
    expires_at: float


class LogoutOut(BaseModel):
    logged_out: bool


class MeOut(BaseModel):
    actor: str = Field(description="the name every record of the caller's actions gives")
    kind: str = Field(description="person, or token (a token that belongs to nobody)")
    person: str | None
    roles: list[str]
    scopes: list[str]


class UserOut(BaseModel):
    user: PersonOut


class UsersOut(BaseModel):
    users: list[PersonOut]


class TokenInfo(BaseModel):
    id: str
    name: str
    person: str
    scopes: list[str]


class TokenOut(BaseModel):
    token: TokenInfo
    secret: str = Field(description="shown once: only its hash is stored")


class AuditEntryOut(BaseModel):
    seq: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    prev: str = Field(description="the SHA-256 of the entry before")
    hash: str = Field(description="the SHA-256 of this entry's canonical JSON without `hash`")


class AuditPage(BaseModel):
    entries: list[AuditEntryOut]
    next: int | None = Field(default=None, description="pass as `after` for the next page")


class Head(BaseModel):
    seq: int
    hash: str


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    head: Head
    broken: int | None
    problem: str


_DOCS: list[tuple[str, str, str, str | None, type[BaseModel] | None, type[BaseModel]]] = [
    ("POST", SESSION_PATH, "Log in: a session cookie (HttpOnly, SameSite=Strict)", None, Login, SessionOut),
    ("DELETE", SESSION_PATH, "Log out (the session cookie)", None, None, LogoutOut),
    ("GET", "/v1/me", "Who the caller is: person, roles, scopes", "any", None, MeOut),
    ("GET", "/v1/users", "People and their roles", "users.manage", None, UsersOut),
    ("POST", "/v1/users", "Create a person", "users.manage", NewPerson, UserOut),
    ("PATCH", "/v1/users/{name}", "Change a person's roles, password or disabled state", "users.manage",
     PersonChange, UserOut),
    ("POST", "/v1/users/{name}/tokens", "An API token that belongs to the person", "users.manage", NewToken, TokenOut),
    ("GET", "/v1/audit", "Audit log entries (?after, before, actor, action, target, limit, order=desc)",
     "audit.read", None, AuditPage),
    ("GET", "/v1/audit/verify", "Check the audit log's chain (409 naming the first broken entry)", "audit.read",
     None, VerifyOut),
]


def openapi_paths() -> tuple[dict[str, Any], dict[str, Any]]:
    """These routes' part of the OpenAPI document: (paths, component schemas)."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        return model_ref(model, schemas)

    for method, path, summary, action, request_model, response in _DOCS:
        op: dict[str, Any] = {"summary": summary, "responses": {
            "201" if response in (UserOut, TokenOut) and method == "POST" else "200": {
                "description": summary, "content": {"application/json": {"schema": ref(response)}}}}}
        if action is not None:
            op["security"] = [{"token": []}]
            op["description"] = ("Any caller (a token or a session)." if action == "any"
                                 else f"Needs a role with the `{action}` permission (admin).")
        if "{name}" in path:
            op["parameters"] = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
        if request_model is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(request_model)}}}
        paths.setdefault(path, {})[method.lower()] = op
    return paths, schemas

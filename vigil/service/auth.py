"""API tokens: a random secret shown once, stored only as its SHA-256, with scopes.

A token looks like `vgl_<id>_<secret>`; the id is public (lists, logs), the secret is 32 random bytes.
Scopes: `ingest` (send events, read their decisions), `read` (labels, rules, decisions, the record) and
`admin` (manual labels, rules uploads and rollbacks), which implies the other two. Dead letters have no
HTTP route: their raw bodies are read with `vigil dead-letters` by whoever can open the store.

Event ids are per source, and a token's source is `http:NAME`. A token reads the decisions of its own
source's events, and of the tokens it was granted (`read_sources`, by name; "*" for every one); an
admin token reads every source's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable

import anyio.to_thread
from pydantic import SecretStr
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from vigil.service.access import PRINCIPAL_KEY, SESSION_COOKIE, Principals
from vigil.service.errors import ApiError, error_response
from vigil.service.limits import TokenBuckets
from vigil.stores.base import ApiToken, TokenStore

SCOPES = ("ingest", "read", "review", "admin")  # review: claim and decide review items
TOKEN_PREFIX = "vgl_"
SCOPE_KEY = "vigil.token"  # where the middleware leaves the caller's ApiToken in the ASGI scope


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(text: str | Iterable[str]) -> tuple[str, ...]:
    """`"ingest,read"` → ("ingest", "read"); raises ValueError naming an unknown scope."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in items if s not in SCOPES]
    if unknown or not items:
        problem = f"unknown scope {unknown[0]!r}" if unknown else "no scopes given"
        raise ValueError(f"{problem}; choose from {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in items)


def _check_name(name: str, what: str) -> str:
    if not name or len(name) > 100:
        raise ValueError(f"give the {what} a name of 1 to 100 characters")
    return name


def create_token(store: TokenStore, name: str, scopes: Iterable[str], now: float | None = None, *,
                 read_sources: Iterable[str] = (), person: str | None = None) -> tuple[ApiToken, SecretStr]:
    """Create and store a token; the secret is returned once and never stored. `read_sources`: the
    names of the tokens whose events' decisions it may read beside its own ("*": all). `person`: the
    person it belongs to (vigil.people), whose roles it acts with; its scopes then only say what it
    sends as (ingest)."""
    _check_name(name, "token")
    grants = tuple(dict.fromkeys(_check_name(s.strip(), "read source") for s in read_sources))
    token_id = secrets.token_hex(4)
    secret = SecretStr(f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}")
    record = ApiToken(token_id, name, hash_secret(secret.get_secret_value()), parse_scopes(scopes),
                      time.time() if now is None else now, read_sources=grants, person=person)
    store.add_token(record)
    return record, secret


def has_scope(token: ApiToken, scope: str) -> bool:
    return scope in token.scopes or "admin" in token.scopes


def token_source(token: ApiToken) -> str:
    """The source of the events a token sends (ids are unique per source)."""
    return f"http:{token.name}"


def may_read_source(token: ApiToken, source: str) -> bool:
    """Whether `token` may read the decisions of events from `source`: its own, those it was granted,
    every one for an admin token."""
    if "admin" in token.scopes or source == token_source(token) or "*" in token.read_sources:
        return True
    return any(source == f"http:{name}" for name in token.read_sources)


def require(request: Request, scope: str, *alternatives: str) -> ApiToken:
    """The caller's token, if it carries `scope` or one of `alternatives` (admin carries every scope);
    403 otherwise."""
    token: ApiToken | None = request.scope.get(SCOPE_KEY)
    if token is None:  # only when the app runs without authentication (tests, --no-auth on loopback)
        return ApiToken("-", "anonymous", "", SCOPES, 0.0)
    if not any(has_scope(token, s) for s in (scope, *alternatives)):
        wanted = " or ".join(repr(s) for s in (scope, *alternatives))
        raise ApiError(403, "forbidden", f"token {token.name!r} lacks the {wanted} scope",
                       f"create a token with `vigil token create NAME --scopes {scope}`")
    return token


class TokenCache:
    """Tokens by secret hash, re-read from the store after `ttl` seconds so that a revocation made by
    another process takes effect within seconds; unknown secrets are never cached."""

    def __init__(self, store: TokenStore, ttl: float = 5.0) -> None:
        self.store = store
        self.ttl = ttl
        self._cache: dict[str, tuple[ApiToken, float]] = {}

    def cached(self, secret: str) -> ApiToken | None:
        """The token for `secret` if the cache holds it and it is fresh, without asking the store."""
        hit = self._cache.get(hash_secret(secret))
        return hit[0] if hit is not None and time.monotonic() - hit[1] < self.ttl else None

    async def alookup(self, secret: str) -> ApiToken | None:
        """`lookup` for the event loop: the store is asked in a worker thread (a store read can wait on
        its writer, e.g. a counter flush)."""
        token = self.cached(secret)
        return token if token is not None else await anyio.to_thread.run_sync(self.lookup, secret)

    def lookup(self, secret: str) -> ApiToken | None:
        digest = hash_secret(secret)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[1] < self.ttl:
            return hit[0]
        token = self.store.find_token(digest)
        if token is None:
            self._cache.pop(digest, None)
            return None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (token, now)
        return token

    def forget(self) -> None:
        self._cache.clear()


class AuthMiddleware:
    """Pure ASGI: requests under `/v1/`, and `/metrics` unless `open_paths` names it, need
    `Authorization: Bearer <token>` (401 when missing, unknown or revoked); `/readyz` takes a token when
    one is sent (it shows details only then). Then the token's rate limit applies (429); the event routes
    charge a batch's further events themselves (`charge`). Failed authentications are limited per client
    address (`failures`): once its bucket is empty, a client's requests get 429 before any token is
    looked up. Routes check scopes with `require`. /healthz and the OpenAPI document stay open.

    With `principals` (vigil.service.access), the caller's principal goes into the scope too: a token of
    a person acts with that person's current roles (401 once the person is disabled), and a console
    session cookie (`vigil_session`, from POST /v1/session) stands for its person where no token is sent."""

    def __init__(self, app: ASGIApp, tokens: TokenCache | None, buckets: TokenBuckets | None,
                 on_reject: Callable[[str], None] | None = None, *, failures: TokenBuckets | None = None,
                 protected: tuple[str, ...] = ("/v1/", "/metrics"), optional: tuple[str, ...] = ("/readyz",),
                 open_paths: tuple[str, ...] = (), principals: Principals | None = None) -> None:
        self.app = app
        self.principals = principals
        self.tokens = tokens
        self.buckets = buckets
        self.failures = failures
        self.on_reject = on_reject or (lambda code: None)
        self.protected = protected
        self.optional = optional
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or self.tokens is None or path in self.open_paths:
            await self.app(scope, receive, send)
            return
        required = path.startswith(self.protected)
        if not required and not path.startswith(self.optional):
            await self.app(scope, receive, send)
            return
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        session = self._session_cookie(scope) if not header and self.principals is not None else None
        if not header and not session and not required:
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else "-"
        if self.failures is not None and self.failures.left(client) < 1.0:
            wait = (1.0 - self.failures.left(client)) / self.failures.rate
            await self._refuse(429, "auth_rate_limited", "too many failed authentications from this address",
                               f"retry in {wait:.0f} s with a valid token", scope, receive, send,
                               {"Retry-After": str(max(1, round(wait)))})
            return
        if session and self.principals is not None:
            principal = await self.principals.aof_session(session)
            if principal is None:
                self._failed(client)
                await self._refuse(401, "unauthorized", "the console session is unknown or has expired",
                                   "log in again: POST /v1/session", scope, receive, send, {})
                return
            scope[SCOPE_KEY] = ApiToken("session", principal.name, "", principal.scopes(), 0.0, person=principal.name)
            scope[PRINCIPAL_KEY] = principal
            await self.app(scope, receive, send)
            return
        if not header:
            self._failed(client)
            await self._refuse(401, "unauthorized", "no API token given",
                               "send `Authorization: Bearer <token>`; create one with `vigil token create`",
                               scope, receive, send, {"WWW-Authenticate": "Bearer"})
            return
        kind, _, secret = header.decode("latin-1").partition(" ")
        token = await self.tokens.alookup(secret.strip()) if kind.lower() == "bearer" else None
        if token is None or token.revoked:
            self._failed(client)
            await self._refuse(401, "unauthorized", "unknown or revoked API token",
                               "check the token; `vigil token list` shows the ones that exist",
                               scope, receive, send, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return
        if self.principals is not None:
            principal = await self.principals.aof_token(token)
            if principal is None:
                self._failed(client)
                await self._refuse(401, "unauthorized", f"token {token.name!r} belongs to a disabled or removed person",
                                   "an admin enables the person with `vigil user enable NAME`", scope, receive, send,
                                   {"WWW-Authenticate": 'Bearer error="invalid_token"'})
                return
            if token.person is not None:  # the person's roles decide, as scopes for the routes that check those
                token = dataclasses.replace(token, scopes=principal.scopes())
            scope[PRINCIPAL_KEY] = principal
        if self.buckets is not None:
            wait = self.buckets.take(token.id)
            if wait > 0:
                await self._refuse(429, "rate_limited", f"token {token.name!r} is over its rate limit",
                                   f"retry in {wait:.2f} s, or raise --rate-limit", scope, receive, send,
                                   {"Retry-After": str(max(1, round(wait)))})
                return
        scope[SCOPE_KEY] = token
        await self.app(scope, receive, send)

    @staticmethod
    def _session_cookie(scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == b"cookie":
                return cookie_parser(value.decode("latin-1")).get(SESSION_COOKIE, "")
        return ""

    def _failed(self, client: str) -> None:
        if self.failures is not None:
            self.failures.take(client)

    async def _refuse(self, status: int, code: str, message: str, hint: str, scope: Scope, receive: Receive,
                      send: Send, headers: dict[str, str]) -> None:
        self.on_reject(code)
        await error_response(status, code, message, hint, headers=headers)(scope, receive, send)


def charge(request: Request, buckets: TokenBuckets | None, events: int) -> None:
    """Charge the caller's rate limit for the events of a batch beyond the one its request paid for
    (the limit counts events, not requests); 429 when they are more than the bucket holds now."""
    token: ApiToken | None = request.scope.get(SCOPE_KEY)
    if buckets is None or token is None or events <= 1:
        return
    wait = buckets.take(token.id, events - 1)
    if wait == float("inf"):
        raise ApiError(413, "batch_over_rate_burst",
                       f"a batch of {events} events is more than token {token.name!r} may send at once "
                       f"({buckets.burst:.0f})", "split the batch, or raise --rate-burst")
    if wait > 0:
        raise ApiError(429, "rate_limited", f"token {token.name!r} is over its rate limit for {events} events",
                       f"retry in {wait:.2f} s, or send smaller batches", headers={"Retry-After": str(max(1, round(wait)))})

"""Who is calling, and whether they may: the principal of a request (a person through their token or
console session, or a token that belongs to nobody) and `permit`, the routes' permission check.

The authentication middleware (vigil.service.auth) leaves the principal in the ASGI scope; a token that
belongs to a person acts with the person's current roles (re-read after `ttl` seconds, so that a change
of roles or a disabled person takes effect within seconds in every process).
"""

from __future__ import annotations

import time

import anyio.to_thread
from starlette.requests import Request

from vigil.people.accounts import People, Person
from vigil.people.roles import Grant, Principal, Queue, can, token_principal
from vigil.service.errors import ApiError
from vigil.stores.base import ApiToken

PRINCIPAL_KEY = "vigil.principal"
SESSION_COOKIE = "vigil_session"
# Without authentication (tests, --no-auth on loopback) the caller may do everything but child safety.
ANONYMOUS = Principal("anonymous", (Grant("admin"),), kind="token")


class Principals:
    """Principals for tokens and session cookies, from the people store, cached for `ttl` seconds."""

    def __init__(self, people: People, ttl: float = 5.0) -> None:
        self.people = people
        self.ttl = ttl
        self._people: dict[str, tuple[Person | None, float]] = {}

    def _person(self, name: str) -> Person | None:
        now = time.monotonic()
        hit = self._people.get(name)
        if hit is not None and now - hit[1] < self.ttl:
            return hit[0]
        person = self.people.get(name)
        if len(self._people) > 10_000:
            self._people.clear()
        self._people[name] = (person, now)
        return person

    def of_token(self, token: ApiToken) -> Principal | None:
        """The token's principal: its person's (None when that person is gone or disabled), else its scopes'."""
        if token.person is None:
            return token_principal(token.name, token.scopes, token.id)
        person = self._person(token.person)
        if person is None or person.disabled:
            return None
        return person.principal(token.id)

    async def aof_token(self, token: ApiToken) -> Principal | None:
        if token.person is None:
            return self.of_token(token)
        hit = self._people.get(token.person)
        if hit is not None and time.monotonic() - hit[1] < self.ttl:
            return self.of_token(token)
        return await anyio.to_thread.run_sync(self.of_token, token)

    async def aof_session(self, secret: str) -> Principal | None:
        """The person of a live console session (always read from the store: a logout is at once)."""
        person = await anyio.to_thread.run_sync(self.people.session, secret)
        return person.principal() if person is not None else None

    def forget(self) -> None:
        self._people.clear()


def caller(request: Request) -> Principal:
    """The request's principal (anonymous when the service runs without authentication)."""
    principal: Principal | None = request.scope.get(PRINCIPAL_KEY)
    return principal if principal is not None else ANONYMOUS


def permit(request: Request, action: str, queue: Queue | None = None) -> Principal:
    """The caller, if they may do `action` (in `queue`); 403 naming what is missing otherwise. In a
    child-safety queue a refusal says nothing about the queue (404 is the caller's to give)."""
    principal = caller(request)
    if not can(principal, action, queue):
        where = f" in queue {queue.name!r}" if queue is not None and not queue.child_safety else ""
        roles = ", ".join(principal.roles()) or "none"
        raise ApiError(403, "forbidden", f"{principal.actor} may not {action}{where} (roles: {roles})",
                       "an admin grants roles with `vigil user roles NAME --role ROLE[:QUEUE]`")
    return principal

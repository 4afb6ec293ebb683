"""What keeps the console's pages safe in a browser: the response headers (a Content-Security-Policy
without inline scripts or eval, no framing, no sniffing, no caching of pages) and CSRF tokens.

A CSRF token is an HMAC of the browser's session secret (or, before a login and when the service runs
without authentication, of a random `vigil_csrf` cookie): a page from another site can neither read the
HttpOnly cookie nor compute the token, and nothing is stored on the server. Every form carries it as a
hidden `csrf` field; htmx sends it as the X-CSRF-Token header (`hx-headers` on the body).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.service.access import SESSION_COOKIE

CSRF_COOKIE = "vigil_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_SCOPE_KEY = "vigil.console.csrf_seed"  # a fresh seed to set as the cookie on this response

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PAGE_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeaders:
    """Pure ASGI: every console response gets PAGE_HEADERS; pages (not the static files) also
    `Cache-Control: no-store`, since they show what only their reader may see. A response that asks for
    a CSRF seed cookie (`CSRF_SCOPE_KEY`) gets it set."""

    def __init__(self, app: ASGIApp, static_prefix: str) -> None:
        self.app = app
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith(self.static_prefix)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dict(PAGE_HEADERS)]
                headers += PAGE_HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                seed = scope.get(CSRF_SCOPE_KEY)
                if seed:
                    secure = "; Secure" if scope.get("scheme") == "https" else ""
                    headers.append((b"set-cookie", f"{CSRF_COOKIE}={seed}; Path=/; HttpOnly; "
                                    f"SameSite=Strict{secure}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


def _seed(request: Request) -> str:
    """What the caller's CSRF token is made from: the session secret, else the seed cookie (made now,
    and set on the response, when the browser has none)."""
    seed = request.cookies.get(SESSION_COOKIE) or request.cookies.get(CSRF_COOKIE) or request.scope.get(CSRF_SCOPE_KEY)
    if not seed:
        seed = secrets.token_urlsafe(32)
        request.scope[CSRF_SCOPE_KEY] = seed
    return str(seed)


def csrf_token(request: Request) -> str:
    """The token the caller's forms carry."""
    return hmac.new(_seed(request).encode(), b"vigil-console-csrf", hashlib.sha256).hexdigest()


def csrf_ok(request: Request, given: str | None) -> bool:
    """Whether `given` is the caller's token. A browser without a session or seed cookie has none."""
    seed = request.cookies.get(SESSION_COOKIE) or request.cookies.get(CSRF_COOKIE)
    if not seed or not given:
        return False
    wanted = hmac.new(seed.encode(), b"vigil-console-csrf", hashlib.sha256).hexdigest()
    return hmac.compare_digest(wanted, given)


def same_origin(request: Request) -> bool:
    """A browser's Origin (or Referer) header, when sent, names this host: a second check beside the token."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin != "null"
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1].split("/", 1)[0] == host

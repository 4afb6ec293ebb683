"""Requests a browser could be tricked into sending: DNS rebinding and cross-site requests.

A page on another site can make a visitor's browser send requests to the service (CSRF), and a name
of the attacker's that resolves to 127.0.0.1 makes that page same-origin with it (DNS rebinding). With
`--no-auth` such a request needs nothing else; with tokens it is still a way in for anything that does
not need one. So, with or without authentication, a request is answered only when:

- its `Host` is one of the names the service is served under (`allowed_hosts`: for a loopback address
  `localhost`, `127.0.0.1` and `::1`; for a wildcard address any name, unless names are given);
- it is not cross-origin: an `Origin` header, where sent, is the request's own scheme and host, and
  `Sec-Fetch-Site`, where sent, is `same-origin` or `none`;
- a body, where there is one, has a content type a form or a plain `fetch` cannot send without a CORS
  preflight (which the service never grants): JSON, or the media and CSV types of the routes that take
  them. `text/plain`, form encodings and a body without a type are refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from vigil.service.errors import error_response

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")
# What a cross-site form or no-preflight fetch can send (the CORS "simple" content types).
SIMPLE_CONTENT_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def served_names(host: str, allowed: Iterable[str] = ()) -> frozenset[str] | None:
    """The host names requests may name, or None for any (a wildcard address with none given).

    >>> sorted(served_names("127.0.0.1"))
    ['127.0.0.1', '::1', 'localhost']
    >>> served_names("0.0.0.0") is None, sorted(served_names("0.0.0.0", ["vigil.internal"]))
    (True, ['vigil.internal'])
    """
    names = {name.strip().lower().strip("[]") for name in allowed if name.strip()}
    if "*" in names:
        return None
    if _loopback(host):
        names.update(LOOPBACK_NAMES)
        names.add(host.lower())
    elif host in WILDCARD_ADDRESSES:
        if not names:
            return None
    else:
        names.add(host.lower().strip("[]"))
    return frozenset(names)


def hostname(authority: str) -> str:
    """`Host` or origin authority without the port: `localhost:8470` → `localhost`, `[::1]:80` → `::1`."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    return authority.rpartition(":")[0] if authority.count(":") == 1 else authority


class RequestGuard:
    """Pure ASGI: refuses a foreign `Host` (400), a cross-origin request (403) and a body of a type a
    browser sends cross-site without asking (415), before any route or token is looked at. Under
    `form_paths` (the console, whose forms carry CSRF tokens) urlencoded forms are let through."""

    def __init__(self, app: ASGIApp, names: frozenset[str] | None, form_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.names = names
        self.form_paths = form_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name: value.decode("latin-1") for name, value in scope["headers"]}
        response = None
        host = headers.get(b"host", "")
        if self.names is not None and hostname(host) not in self.names:
            response = error_response(400, "unknown_host", f"this service is not served under the name {host!r}",
                                      "use the address the service listens on, or name this host with "
                                      "--allowed-host")
        elif not _same_origin(headers, scope.get("scheme", "http"), host):
            response = error_response(403, "cross_origin", "cross-origin requests are refused",
                                      "call the API from a server or the command line, not from another site's page")
        elif scope["method"] in BODY_METHODS and _has_body(headers):
            content_type = headers.get(b"content-type", "").partition(";")[0].strip().lower()
            form = content_type == "application/x-www-form-urlencoded" and scope["path"].startswith(self.form_paths)
            if (not content_type or content_type in SIMPLE_CONTENT_TYPES) and not form:
                response = error_response(415, "unsupported_media_type",
                                          f"a body of type {content_type or '(none)'!r} is refused",
                                          "send Content-Type: application/json (the media routes also take "
                                          "application/octet-stream, image/* and video/*; bank entries text/csv)")
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _same_origin(headers: dict[bytes, str], scheme: str, host: str) -> bool:
    site = headers.get(b"sec-fetch-site")
    if site is not None and site.strip().lower() not in ("same-origin", "none"):
        return False
    origin = headers.get(b"origin")
    if origin is None:
        return True  # not sent by a browser (or a same-origin GET): nothing cross-site about it
    parts = urlsplit(origin.strip())
    return parts.scheme == scheme and parts.netloc.lower() == host.strip().lower()


def _has_body(headers: dict[bytes, str]) -> bool:
    return headers.get(b"content-length", "0").strip() not in ("0", "") or b"transfer-encoding" in headers


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

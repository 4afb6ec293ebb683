"""Load media bytes from an event value: raw bytes, base64 (or a data: URL), a local file, or a URL.

Everything that reaches outside the event is off by default: local files are read only under
configured directories, and URLs are fetched only when enabled, from allow-listed hosts, within a size
limit, one total deadline and a set of content types. Redirects are not followed (they could leave the
allowlist). An allow-listed name is resolved once and every address it gives is checked: one that is not
public (loopback, private, link-local such as a cloud's 169.254.169.254 metadata service, multicast) is
refused unless it lies in `MediaPolicy.allowed_networks`, and the connection goes to the checked address,
so a second DNS answer cannot swap it (rebinding).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpcore

_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.ASCII)
_BASE64_CHARS = re.compile(r"[A-Za-z0-9+/=_\-\s]+", re.ASCII)


class MediaError(ValueError):
    """The value could not be turned into media bytes; the message says why and what to change."""


@dataclass(frozen=True, slots=True)
class MediaPolicy:
    """Where media may come from and how big it may be."""

    max_bytes: int = 20 * 1024 * 1024
    # Local files are read only inside these directories (none: file paths are refused).
    file_roots: tuple[Path, ...] = ()
    allow_urls: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_schemes: frozenset[str] = frozenset({"https"})
    allowed_content_types: tuple[str, ...] = ("image/", "video/")
    # One deadline for the whole fetch (connect, headers and body), not a time-out per read: a server
    # that drips a byte at a time is cut off when it runs out.
    timeout_seconds: float = 5.0
    # Addresses that are not public (loopback, private, link-local, …) are refused unless they lie in one
    # of these networks, e.g. `ipaddress.ip_network("10.20.0.0/16")` for an internal media store.
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


def _check_size(size: int, policy: MediaPolicy, what: str) -> None:
    if size > policy.max_bytes:
        raise MediaError(f"{what} is {size} bytes, over the {policy.max_bytes}-byte limit")


def _is_url(value: str) -> bool:
    return bool(re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://", value))


def load_media(value: bytes | str, policy: MediaPolicy) -> bytes:
    """Return the media bytes an event value stands for.

    Strings are read as, in order: a URL (`scheme://…`), a data: URL, a path under `policy.file_roots`
    (when any are configured and the string names an existing file), else base64.

    >>> load_media("aGVsbG8=", MediaPolicy())
    b'hello'
    """
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        _check_size(len(data), policy, "media")
        return data
    if not isinstance(value, str):
        raise MediaError(f"media must be bytes or a string, not {type(value).__name__}")
    text = value.strip()
    if match := _DATA_URL.match(text):
        return _decode_base64(text[match.end() :], policy)
    if _is_url(text):
        return fetch_url(text, policy)
    if policy.file_roots and len(text) < 4096 and "\n" not in text:
        path = Path(text)
        if path.is_file():
            return read_file(path, policy)
    return _decode_base64(text, policy)


def _decode_base64(text: str, policy: MediaPolicy) -> bytes:
    # Check the size before decoding, so an oversized value costs no memory.
    _check_size(len(text) * 3 // 4, policy, "base64 media")
    if not text or not _BASE64_CHARS.fullmatch(text):
        raise MediaError(
            "media value is neither base64 nor a data: URL"
            + ("" if policy.file_roots else " (local file paths are disabled: set MediaPolicy.file_roots)")
        )
    compact = re.sub(r"\s+", "", text)
    try:
        if "-" in compact or "_" in compact:
            return base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError(f"invalid base64 media: {exc}") from exc


def read_file(path: Path, policy: MediaPolicy) -> bytes:
    """Read a local file, if it lies under one of `policy.file_roots` and is within the size limit."""
    resolved = path.resolve()
    roots = [root.resolve() for root in policy.file_roots]
    if not any(resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots) or "none configured"
        raise MediaError(f"{path} is outside the allowed media directories ({allowed})")
    size = resolved.stat().st_size
    _check_size(size, policy, str(path))
    with resolved.open("rb") as handle:
        data = handle.read(policy.max_bytes + 1)
    _check_size(len(data), policy, str(path))  # the file may have grown since stat()
    return data


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_HTTP_ERRORS = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
                httpcore.UnsupportedProtocol, httpcore.ConnectionNotAvailable, OSError)


def fetch_url(url: str, policy: MediaPolicy) -> bytes:
    """Fetch media over HTTP(S) under the policy: allowed scheme and host, public (or allowed) resolved
    addresses only, no redirects, size-capped streaming read, content type checked, all within one
    total deadline of `policy.timeout_seconds`."""
    if not policy.allow_urls:
        raise MediaError("fetching media from URLs is disabled (MediaPolicy.allow_urls=False)")
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in policy.allowed_schemes:
        allowed = ", ".join(sorted(policy.allowed_schemes))
        raise MediaError(f"URL scheme {scheme!r} is not allowed (allowed: {allowed})")
    if host not in policy.allowed_hosts:
        raise MediaError(f"host {host!r} is not in the media host allowlist")
    deadline = time.monotonic() + policy.timeout_seconds
    network = _GuardedNetwork(policy, deadline)
    timeouts = {"connect": policy.timeout_seconds, "read": policy.timeout_seconds,
                "write": policy.timeout_seconds, "pool": policy.timeout_seconds}
    try:
        with httpcore.ConnectionPool(network_backend=network, max_connections=1, retries=0) as pool, \
                pool.stream("GET", url, headers=[("Accept", "image/*, video/*"), ("User-Agent", "vigil")],
                            extensions={"timeout": timeouts}) as response:
            return _read_response(url, response, policy)
    except _HTTP_ERRORS as exc:
        if time.monotonic() >= deadline:
            raise MediaError(f"GET {url} did not finish within {policy.timeout_seconds:g} s "
                             "(the total time limit, MediaPolicy.timeout_seconds)") from exc
        raise MediaError(f"GET {url} failed: {exc or type(exc).__name__}") from exc


def _read_response(url: str, response: httpcore.Response, policy: MediaPolicy) -> bytes:
    if response.status != 200:
        raise MediaError(f"GET {url} returned HTTP {response.status}")
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in response.headers}
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type.startswith(policy.allowed_content_types):
        raise MediaError(f"GET {url} returned content type {content_type or 'none'!r}, not media")
    declared = headers.get("content-length", "")
    if declared.isdigit():
        _check_size(int(declared), policy, f"GET {url}")
    chunks: list[bytes] = []
    received = 0
    for chunk in response.iter_stream():
        received += len(chunk)
        _check_size(received, policy, f"GET {url}")
        chunks.append(chunk)
    return b"".join(chunks)


def check_address(host: str, address: Address, policy: MediaPolicy) -> None:
    """Refuse an address that is not public, unless it lies in one of `policy.allowed_networks`.

    >>> check_address("metadata", ipaddress.ip_address("169.254.169.254"), MediaPolicy())
    Traceback (most recent call last):
    ...
    vigil.hashing.media.MediaError: host 'metadata' resolves to 169.254.169.254, a link-local address: media is fetched only from public addresses (add its network to MediaPolicy.allowed_networks to allow it)
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_global and not address.is_multicast:
        return
    if any(address.version == net.version and address in net for net in policy.allowed_networks):
        return
    kind = ("loopback" if address.is_loopback else "link-local" if address.is_link_local
            else "multicast" if address.is_multicast else "private" if address.is_private else "non-public")
    raise MediaError(f"host {host!r} resolves to {address}, a {kind} address: media is fetched only from "
                     "public addresses (add its network to MediaPolicy.allowed_networks to allow it)")


def _resolve(host: str, port: int) -> list[Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise MediaError(f"cannot resolve host {host!r}: {exc}") from exc
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


class _GuardedNetwork(httpcore.NetworkBackend):
    """httpcore's sockets, with the policy's address check at connect and every socket operation cut
    short at the fetch's deadline. TLS still verifies the certificate against the URL's host name."""

    def __init__(self, policy: MediaPolicy, deadline: float) -> None:
        self._policy = policy
        self._deadline = deadline
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        addresses = _resolve(host, port)
        for address in addresses:  # every answer: a name with one private address is refused outright
            check_address(host, address, self._policy)
        last: Exception = httpcore.ConnectError(f"{host!r} has no addresses")
        for address in addresses:
            try:
                stream = self._sockets.connect_tcp(str(address), port, _remaining(self._deadline, timeout),
                                                   local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise last

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(self._deadline, timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(self._deadline, timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _remaining(self._deadline, timeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _remaining(deadline: float, timeout: float | None) -> float:
    """The time an operation may take: its own time-out, but never past the deadline (a time-out of 0
    would make the socket non-blocking, so an expired deadline is a time-out at once)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the total time limit ran out")
    return left if timeout is None else min(timeout, left)

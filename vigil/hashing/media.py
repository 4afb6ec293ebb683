"""Load media bytes from an event value: raw bytes, base64 (or a data: URL), a local file, or a URL.

Everything that reaches outside the event is off by default: local files are read only under
configured directories, and URLs are fetched only when enabled, from allow-listed hosts, within a size
limit, a timeout and a set of content types. Redirects are not followed (they could leave the allowlist).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

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
    timeout_seconds: float = 5.0


def _check_size(size: int, policy: MediaPolicy, what: str) -> None:
    if size > policy.max_bytes:
        raise MediaError(f"{what} is {size} bytes, over the {policy.max_bytes}-byte limit")


def _is_url(value: str) -> bool:
    return bool(re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://", value))


def load_media(value: bytes | str, policy: MediaPolicy, *, client: httpx.Client | None = None) -> bytes:
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
        return fetch_url(text, policy, client=client)
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


def fetch_url(url: str, policy: MediaPolicy, *, client: httpx.Client | None = None) -> bytes:
    """Fetch media over HTTP(S) under the policy: allowed scheme and host, no redirects, size-capped
    streaming read, content type checked, and one timeout for connect and each read."""
    if not policy.allow_urls:
        raise MediaError("fetching media from URLs is disabled (MediaPolicy.allow_urls=False)")
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in policy.allowed_schemes:
        allowed = ", ".join(sorted(policy.allowed_schemes))
        raise MediaError(f"URL scheme {scheme!r} is not allowed (allowed: {allowed})")
    if host not in policy.allowed_hosts:
        raise MediaError(f"host {host!r} is not in the media host allowlist")
    owned = client is None
    http = client or httpx.Client(timeout=policy.timeout_seconds, follow_redirects=False)
    try:
        with http.stream("GET", url, timeout=policy.timeout_seconds, follow_redirects=False) as response:
            if response.status_code != 200:
                raise MediaError(f"GET {url} returned HTTP {response.status_code}")
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if not content_type.startswith(policy.allowed_content_types):
                raise MediaError(f"GET {url} returned content type {content_type or 'none'!r}, not media")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit():
                _check_size(int(declared), policy, f"GET {url}")
            chunks: list[bytes] = []
            received = 0
            for chunk in response.iter_bytes():
                received += len(chunk)
                _check_size(received, policy, f"GET {url}")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise MediaError(f"GET {url} failed: {exc}") from exc
    finally:
        if owned:
            http.close()

"""What never reaches the log as sent: fields dropped or kept as a keyed hash, media as size and hash."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from vigil.record.settings import RecordSettings

HASH_PREFIX = "hmac:"
_BASE64 = re.compile(rb"[A-Za-z0-9+/=_\-\r\n]+")
_DATA_URL = re.compile(r"data:[\w.+-]+/[\w.+-]+(;[\w=.+-]+)*;base64,", re.ASCII)


class Redactor:
    """Applies the settings' redaction to an event's JSON object, copying only what it changes.

    >>> from pydantic import SecretStr
    >>> r = Redactor(RecordSettings(redact={"user.email": "hash", "password": "drop"}, hash_key=SecretStr("k")))
    >>> out = r.event({"user": {"email": "a@b.c", "id": "u1"}, "password": "x"})
    >>> sorted(out), out["user"]["id"], out["user"]["email"].startswith("hmac:")
    (['user'], 'u1', True)
    """

    def __init__(self, settings: RecordSettings) -> None:
        self._key = settings.hash_key.get_secret_value().encode() if settings.hash_key is not None else b""
        self._rules: dict[tuple[str, ...], str] = {tuple(p.split(".")): how for p, how in settings.redact.items()}
        for path in settings.media_fields:
            self._rules.setdefault(tuple(path.split(".")), "media")
        self._min_media = settings.media_min_bytes
        self.keyed = bool(self._key)  # whether hashes can be made (a hash key is set)

    def hash(self, value: Any) -> str:
        """The keyed hash stored in place of `value` (the same value always gives the same hash, so
        searches and entity timelines can still find it)."""
        text = value if isinstance(value, str) else str(value)
        return HASH_PREFIX + hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:32]

    def event(self, data: Mapping[str, Any]) -> Any:
        """`data` redacted (a copy where anything changed)."""
        return self.encoded(data)[0]

    def encoded(self, data: Mapping[str, Any], dumps: Any = None) -> tuple[Any, bytes | None]:
        """`data` redacted, and its JSON when `dumps` is given. An event whose whole JSON is shorter than
        `media_min_bytes` holds no media string, so it is not walked (most events, at a JSON encoding's
        cost); only the configured paths are visited."""
        out: Any = data
        if self._rules:
            out = dict(data)
            for path, how in self._rules.items():
                _apply(out, path, how, self)
        if dumps is not None:
            body: bytes = dumps(out)
            if len(body) < self._min_media:
                return out, body
        out = self._media(out)
        return out, dumps(out) if dumps is not None else None

    def _media(self, value: Any) -> Any:
        """Every large base64 or data: URL string as its size and hash, wherever it is."""
        if isinstance(value, str):
            return media_summary(value) if len(value) >= self._min_media and _looks_like_media(value) else value
        if isinstance(value, dict):
            changed = None
            for key, item in value.items():
                if isinstance(item, (str, dict, list)):
                    new = self._media(item)
                    if new is not item:
                        changed = changed if changed is not None else dict(value)
                        changed[key] = new
            return changed if changed is not None else value
        if isinstance(value, list):
            new_items = [self._media(item) for item in value]
            return new_items if any(a is not b for a, b in zip(new_items, value)) else value
        return value


def _apply(data: dict[str, Any], path: tuple[str, ...], how: str, redactor: Redactor) -> None:
    """Redact `path` inside `data` (a copy the caller owns), copying the containers on the way; a list
    on the way redacts the path in each of its objects."""
    head, rest = path[0], path[1:]
    if head not in data:
        return
    value = data[head]
    if not rest:
        if how == "drop":
            del data[head]
        elif how == "hash":
            data[head] = [redactor.hash(v) for v in value] if isinstance(value, list) else (
                value if value is None else redactor.hash(value))
        else:
            data[head] = media_summary(value) if isinstance(value, (str, bytes)) else value
        return
    if isinstance(value, dict):
        data[head] = inner = dict(value)
        _apply(inner, rest, how, redactor)
    elif isinstance(value, list):
        items = []
        for item in value:
            if isinstance(item, dict):
                item = dict(item)
                _apply(item, rest, how, redactor)
            items.append(item)
        data[head] = items


def _looks_like_media(text: str) -> bool:
    if text.startswith("data:"):
        return _DATA_URL.match(text) is not None
    return _BASE64.fullmatch(text.encode("ascii", "replace")) is not None


def media_summary(value: str | bytes) -> dict[str, Any]:
    """What the log keeps of a media value: the decoded size and SHA-256 (of the text itself when it
    does not decode).

    >>> media_summary("aGVsbG8=")
    {'media': True, 'bytes': 5, 'sha256': '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'}
    """
    data: bytes
    if isinstance(value, bytes):
        data = value
    else:
        match = _DATA_URL.match(value)
        body = value[match.end():] if match else value
        try:
            data = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_" if "-" in body or "_" in body
                                    else None)
        except (binascii.Error, ValueError):
            data = value.encode("utf-8", "surrogatepass")
    return {"media": True, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

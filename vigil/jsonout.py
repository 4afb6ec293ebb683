"""JSON out that cannot fail. A decision is rendered after its effects were applied (labels written,
counters moved), so an answer that cannot be encoded would report a failure for work that was done:
whatever orjson refuses (nesting past its limit, a lone surrogate, an integer over 64 bits, an object it
does not know) is shown in a readable, bounded form instead.

>>> dumps({"ok": 1})
b'{"ok":1}'
>>> dumps({"big": 2**70, "odd": "\\ud800", "set": {1}})
b'{"big":"1180591620717411303424","odd":"\\\\ud800","set":"{1}"}'
"""

from __future__ import annotations

import dataclasses
import reprlib
from typing import Any

import orjson

# Deeper values are cut off below this many levels (orjson itself stops at 254).
MAX_RENDER_DEPTH = 200
TOO_DEEP = "… (nested too deep to show)"


def dumps(content: Any) -> bytes:
    """`orjson.dumps(content)`, or, where orjson refuses part of it, the same with that part made plain."""
    try:
        return orjson.dumps(content, default=_fallback)
    except orjson.JSONEncodeError:
        return orjson.dumps(plain(content, MAX_RENDER_DEPTH), default=_fallback)


def plain(value: Any, depth: int) -> Any:
    """`value` as JSON-safe data: containers kept to `depth` levels, strings made valid UTF-8, integers
    beyond 64 bits and unknown objects as text."""
    if isinstance(value, str):
        return value if _utf8(value) else value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, (dict, list, tuple)) or dataclasses.is_dataclass(value) and not isinstance(value, type):
        if depth <= 0:
            return TOO_DEEP
        if isinstance(value, dict):
            return {str(plain(k, 1)): plain(v, depth - 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item, depth - 1) for item in value]
        return {f.name: plain(getattr(value, f.name), depth - 1) for f in dataclasses.fields(value)}
    return _fallback(value)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fallback(value: Any) -> str:
    """What orjson does not know (sets, custom objects): a short repr (reprlib's, which is bounded and
    survives a broken __repr__)."""
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 4, 200, 200
    return short.repr(value)

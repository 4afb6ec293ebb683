"""Parsing a policy model's answer into a verdict, strictly.

Policy-as-prompt models (gpt-oss-safeguard and friends) are told by the policy how to answer:
a bare ``0``/``1``, or a JSON object such as
``{"violation": 1, "policy_category": "H2", "rationale": "..."}``, sometimes in a code fence or after
a short preamble. Anything else is an :class:`AnswerParseError`: an unparseable answer is an
error, never a guess.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_BARE = re.compile(r"^\s*[\"'`]?\s*([01])\s*[\"'`]?\s*[.]?\s*$")
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)
_VERDICT_KEYS = ("violation", "violating", "label", "verdict", "flagged", "answer")
_CATEGORY_KEYS = ("policy_category", "category")
_RATIONALE_KEYS = ("rationale", "reason", "reasoning", "explanation")
_TRUE = frozenset({"1", "true", "yes", "violating", "violation", "violates", "unsafe", "flagged"})
_FALSE = frozenset({"0", "false", "no", "safe", "non-violating", "not_violating", "valid", "ok"})


class AnswerParseError(ValueError):
    """The model's answer fits none of the accepted forms."""


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    """A verdict read off a model's answer."""

    violating: bool
    category: str | None = None
    rationale: str = ""
    confidence: float | None = None


def parse_answer(text: str) -> ParsedAnswer:
    """Read a verdict from ``text``: a bare 0/1 or a JSON object with a verdict key.

    >>> parse_answer("1").violating
    True
    >>> parse_answer('{"violation": 0, "rationale": "a recipe"}').rationale
    'a recipe'
    """
    bare = _BARE.match(text)
    if bare:
        return ParsedAnswer(violating=bare.group(1) == "1")
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    obj = _last_json_object(body)
    if obj is None:
        raise AnswerParseError(f"expected 0, 1 or a JSON object, got {_preview(text)}")
    return _from_object(obj, text)


def _from_object(obj: dict[str, Any], original: str) -> ParsedAnswer:
    key = next((k for k in _VERDICT_KEYS if k in obj), None)
    if key is None:
        raise AnswerParseError(
            f"JSON answer has no verdict key ({', '.join(_VERDICT_KEYS)}): {_preview(original)}"
        )
    violating = _truth(obj[key])
    if violating is None:
        raise AnswerParseError(f"cannot read {key}={obj[key]!r} as a verdict")
    category = next((obj[k] for k in _CATEGORY_KEYS if isinstance(obj.get(k), str) and obj[k]), None)
    rationale = next((obj[k] for k in _RATIONALE_KEYS if isinstance(obj.get(k), str)), "")
    confidence = obj.get("confidence")
    return ParsedAnswer(
        violating=violating,
        category=category,
        rationale=rationale,
        # Only numeric confidences become scores; "high"/"low" words stay out of the maths.
        confidence=float(confidence)
        if isinstance(confidence, int | float) and not isinstance(confidence, bool)
        else None,
    )


def _truth(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return None


def _last_json_object(text: str) -> dict[str, Any] | None:
    # Models sometimes write a sentence before the JSON; take the last complete object.
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    index = text.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            index = text.find("{", index + 1)
            continue
        if isinstance(value, dict):
            found = value
        index = text.find("{", end)
    return found


def _preview(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")

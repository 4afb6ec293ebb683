"""Each accepted answer form parses; everything else is an error."""

from __future__ import annotations

import pytest

from vigil.classifiers.answers import AnswerParseError, ParsedAnswer, parse_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", ParsedAnswer(True)),
        ("0", ParsedAnswer(False)),
        (" 1.\n", ParsedAnswer(True)),
        ('"0"', ParsedAnswer(False)),
        ('{"violation": 1}', ParsedAnswer(True)),
        ('{"violation": false, "rationale": "ok"}', ParsedAnswer(False, rationale="ok")),
        (
            '{"violation": 1, "policy_category": "H2.f", "confidence": "high", "rationale": "slur"}',
            ParsedAnswer(True, category="H2.f", rationale="slur"),
        ),
        ('{"label": "safe", "confidence": 0.8}', ParsedAnswer(False, confidence=0.8)),
        ('```json\n{"violating": "yes", "category": "spam"}\n```', ParsedAnswer(True, category="spam")),
        (
            'Let me think. The answer:\n{"violation": 0, "reason": "a joke"}',
            ParsedAnswer(False, rationale="a joke"),
        ),
    ],
)
def test_accepted_forms(text: str, expected: ParsedAnswer) -> None:
    assert parse_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yes",
        "10",
        "The content is violating.",
        '{"rating": 3}',
        '{"violation": 2}',
        "[1]",
        '{"violation": "maybe"}',
    ],
)
def test_everything_else_is_an_error(text: str) -> None:
    with pytest.raises(AnswerParseError):
        parse_answer(text)

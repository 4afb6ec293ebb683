"""List phrases in normalised text, through capped letter runs (issue 10.2) and overlapping words (10.4)."""

from __future__ import annotations

import random

import pytest

from vigil.signals.phrases import PhraseMatcher
from vigil.signals.text import normalize


@pytest.mark.parametrize(
    ("text", "words", "phrases"),
    [
        ("frrrreeee", ["free"], ["free"]),
        ("freeeee nitroooo", ["free", "free nitro", "nitro"], ["free", "free nitro", "nitro"]),
        ("fre", [], []),  # a letter is never added
        ("butt", [], ["but"]),  # a real double letter is not an exaggerated single one, for a word
        ("good", [], []),
        ("goooood", ["god"], ["god"]),  # an exaggeration stands for any number
        ("ssex", [], ["sex"]),  # inside a word, a phrase may start part-way through a run
        ("carefree nitro", ["nitro"], ["free", "free nitro", "nitro"]),
    ],
)
def test_matching_through_runs(text: str, words: list[str], phrases: list[str]) -> None:
    entries = [normalize(p) for p in ["free", "free nitro", "nitro", "but", "god", "sex"]]
    assert sorted(set(PhraseMatcher(entries, whole_words=True).find(normalize(text)))) == sorted(words)
    assert sorted(set(PhraseMatcher(entries, whole_words=False).find(normalize(text)))) == sorted(phrases)


def test_the_loose_pass_agrees_with_the_plain_one_where_both_apply() -> None:
    # Texts without a capped run take the plain pass; the loose pass must find exactly the same there.
    rng = random.Random(5)
    entries = ["ab", "aab", "ba a", "b", "abba", "a b"]
    for whole_words in (True, False):
        matcher = PhraseMatcher(entries, whole_words)
        assert matcher._loose is not None and matcher._exact is not None
        for _ in range(3000):
            text = "".join(rng.choice("ab ") for _ in range(rng.randint(0, 12)))
            if "aaa" in text or "bbb" in text:
                continue
            plain = sorted(set(matcher._find_exact(matcher._exact, text)))
            assert sorted(set(matcher._find_loose(matcher._loose, text))) == plain, (text, whole_words)


def test_an_empty_list_finds_nothing() -> None:
    assert PhraseMatcher([], whole_words=True).find("anything") == []

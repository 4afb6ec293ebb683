"""Finding list phrases in normalised text: one Aho-Corasick pass, through exaggerated letter runs.

`normalize` caps a run of one letter at three ("frrrreeee" → "frrreee"), so a run of three in a text
means "three or more". A phrase matches where the text has it letter for letter, except that a run of
three in the text stands for any number of that letter: "free" is found in "frrreee", while "but" is not
found in the whole word "butt" and "god" not in "good" (real double letters are kept and compared).
Texts without such a run, nearly all of them, take the plain pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import ahocorasick_rs

_RUN = re.compile(r"([^\W\d_])\1+")
_CAPPED_RUN = re.compile(r"([^\W\d_])\1\1")


def _skeleton(text: str) -> tuple[str, dict[int, int]]:
    """The text with each run of a letter made one letter, and the length of each longer run by its
    position in the skeleton."""
    runs: dict[int, int] = {}
    removed = 0
    for match in _RUN.finditer(text):
        length = match.end() - match.start()
        runs[match.start() - removed] = length
        removed += length - 1
    return _RUN.sub(r"\1", text), runs


class PhraseMatcher:
    """Normalised phrases, found in normalised text; with `whole_words`, only as whole words."""

    def __init__(self, phrases: Iterable[str], whole_words: bool) -> None:
        self.phrases = sorted(set(phrases) - {""})
        self.whole_words = whole_words
        kind = ahocorasick_rs.MatchKind.Standard
        self._exact = ahocorasick_rs.AhoCorasick(self.phrases, matchkind=kind) if self.phrases else None
        by_skeleton: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
        for phrase in self.phrases:
            skeleton, runs = _skeleton(phrase)
            lengths = tuple(runs.get(i, 1) for i in range(len(skeleton)))
            by_skeleton.setdefault(skeleton, []).append((phrase, lengths))
        self._skeletons = list(by_skeleton)
        self._variants = [by_skeleton[s] for s in self._skeletons]
        self._loose = ahocorasick_rs.AhoCorasick(self._skeletons, matchkind=kind) if self._skeletons else None

    def find(self, text: str) -> list[str]:
        """The phrases found in a normalised text (a phrase may appear more than once)."""
        if self._exact is None or self._loose is None:
            return []
        if _CAPPED_RUN.search(text) is None:
            return self._find_exact(self._exact, text)
        return self._find_loose(self._loose, text)

    def _cut_inside_words(self, text: str, start: int, end: int) -> bool:
        return self.whole_words and (
            (start > 0 and text[start - 1].isalnum()) or (end < len(text) and text[end].isalnum()))

    def _find_exact(self, automaton: ahocorasick_rs.AhoCorasick, text: str) -> list[str]:
        # Overlapping matches: a whole word can hide under a longer candidate that is not one ("nitro"
        # in "carefree nitro", where "free nitro" starts inside a word), and every phrase is reported.
        return [self.phrases[index]
                for index, start, end in automaton.find_matches_as_indexes(text, overlapping=True)
                if not self._cut_inside_words(text, start, end)]

    def _find_loose(self, automaton: ahocorasick_rs.AhoCorasick, text: str) -> list[str]:
        skeleton, runs = _skeleton(text)
        found = []
        for index, start, end in automaton.find_matches_as_indexes(skeleton, overlapping=True):
            if self._cut_inside_words(skeleton, start, end):
                continue
            for phrase, lengths in self._variants[index]:
                if self._runs_fit(lengths, runs, start):
                    found.append(phrase)
        return found

    def _runs_fit(self, lengths: tuple[int, ...], runs: dict[int, int], start: int) -> bool:
        last = len(lengths) - 1
        for i, wanted in enumerate(lengths):
            have = runs.get(start + i, 1)
            if have == wanted or have >= 3:
                continue
            # Inside a word, a phrase may begin or end part-way through a longer run ("sex" in "ssex").
            if not self.whole_words and i in (0, last) and have > wanted:
                continue
            return False
        return True

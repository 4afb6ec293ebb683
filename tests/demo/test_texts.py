"""Tests for vigil.demo.texts: the committed sample and the obfuscation helpers."""

from __future__ import annotations

import doctest
import random

from vigil.demo import texts
from vigil.demo.texts import ZERO_WIDTH_SPACE, homoglyphs, load_sample, obfuscate, random_domain, zero_width


def test_sample_loads_with_both_labels() -> None:
    sample = load_sample()
    labels = [s.label for s in sample]
    assert 350 <= labels.count("spam") <= 450
    assert 350 <= labels.count("ham") <= 450
    assert len({s.text for s in sample}) == len(sample)
    for s in sample:
        assert 20 <= len(s.text) <= 280 and s.text.isprintable()
        assert s.source.startswith(("spamassassin/spam-", "spamassassin/easy-ham-", "spamassassin/hard-ham-"))


def test_homoglyphs_look_alike_but_differ() -> None:
    fake = homoglyphs("paypal account")
    assert fake != "paypal account" and len(fake) == len("paypal account")
    assert not fake.isascii()


def test_zero_width_keeps_the_visible_text() -> None:
    text = zero_width("click here for free followers", random.Random(1))
    assert ZERO_WIDTH_SPACE in text
    assert text.replace(ZERO_WIDTH_SPACE, "") == "click here for free followers"


def test_obfuscate_always_changes_keywords() -> None:
    rng = random.Random(2)
    assert all(obfuscate("free crypto giveaway", rng) != "free crypto giveaway" for _ in range(50))


def test_random_domain_uses_a_throwaway_tld() -> None:
    rng = random.Random(3)
    assert all(random_domain(rng).rsplit(".", 1)[1] in texts.THROWAWAY_TLDS for _ in range(50))


def test_doctests() -> None:
    result = doctest.testmod(texts)
    assert result.attempted > 0 and result.failed == 0

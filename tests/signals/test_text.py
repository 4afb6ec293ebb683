"""Text normalisation and extraction: what `normalized`, `urls`, `domains` and `domain` see."""

from __future__ import annotations

import pytest

from vigil.signals.text import extract_domains, extract_urls, fold_confusables, normalize, registered_domain


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello  World", "hello world"),
        ("pаypаl", "paypal"),  # Cyrillic а
        ("gοοgle", "google"),  # Greek omicron
        ("ｆｒｅｅ", "free"),  # fullwidth
        ("f0ll0w3rs", "followers"),
        ("$4v3 €", "save e"),
        ("fr\u200bee\u200d \u00adgift\ufeff", "free gift"),
        ("STRASSE ß", "strasse ss"),
        ("  tabs\tand\nnewlines  ", "tabs and newlines"),
        ("", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_normalize_is_idempotent() -> None:
    text = "Buy ＣＨＥＡＰ f0ll0wers\u200b now from pаypаl!!"
    assert normalize(normalize(text)) == normalize(text)


def test_fold_confusables_keeps_ascii() -> None:
    assert fold_confusables("plain ASCII 123") == "plain ASCII 123"


def test_extract_urls() -> None:
    text = "see https://bit.ly/x?a=1, (http://a.example/b) or www.example.com. and ftp://no"
    assert extract_urls(text) == ["https://bit.ly/x?a=1", "http://a.example/b", "www.example.com"]
    assert extract_urls("no links here") == []


def test_extract_domains() -> None:
    text = "Go to https://shop.evil.example.com/x, cheap-followers.biz! mail me@corp.co.uk or 1.2.3.4 HTTP://A.B.ORG"
    assert extract_domains(text) == ["example.com", "cheap-followers.biz", "corp.co.uk", "b.org"]
    assert extract_domains("nothing.") == []
    assert extract_domains("evil.com evil.com") == ["evil.com"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://a.b.example.co.uk/path", "example.co.uk"),
        ("Example.COM", "example.com"),
        ("localhost", None),
        ("foo.notatld", None),
        ("co.uk", None),  # a public suffix itself
        ("a.b.c.example.com.au", "example.com.au"),
    ],
)
def test_registered_domain(value: str, expected: str | None) -> None:
    assert registered_domain(value) == expected


def test_very_long_tokens_are_skipped() -> None:
    long = "a" * 5000 + ".com"
    assert extract_domains(long) == []
    assert extract_urls("http://" + long) == []

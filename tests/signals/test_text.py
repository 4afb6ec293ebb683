"""Text normalisation and extraction: what `normalized`, `urls`, `domains` and `domain` see."""

from __future__ import annotations

import pytest

from vigil.signals.text import (
    MAX_TEXT_CHARS,
    extract_domains,
    extract_hosts,
    extract_urls,
    fold_confusables,
    normalize,
    registered_domain,
    url_host,
    without_links,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello  World", "hello world"),
        ("pаypаl", "paypal"),  # Cyrillic а
        ("gοοgle", "google"),  # Greek omicron
        ("ｆｒｅｅ", "free"),  # fullwidth
        ("f0ll0w3rs", "followers"),
        ("ca$h fr€e p@ypal", "cash free paypal"),  # symbols fold only between letters or digits
        ("fr\u200bee\u200d \u00adgift\ufeff", "free gift"),
        ("STRASSE ß", "strasse ss"),
        ("  tabs\tand\nnewlines  ", "tabs and newlines"),
        ("", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


# Issue 10.1: digits survive where they are numbers, amounts, phone numbers, wallets and URLs; leetspeak
# folds only inside words that mix letters and digits.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("send me 100 btc", "send me 100 btc"),
        ("transfer 500 USDT", "transfer 500 usdt"),
        ("within 48 hours", "within 48 hours"),
        ("only $24.99!", "only $24.99!"),
        ("1,000,000 or 5,000 usdt, 1,5 and 10,0000", "1000000 or 5000 usdt, 1,5 and 10,0000"),
        ("+1 555 123 4567", "+1 555 123 4567"),
        ("call 555-1234 at 10:30am", "call 555-1234 at 10:30am"),
        ("go to wincheap60.top now", "go to wincheap60.top now"),
        ("see https://x.test/a1b3?id=40", "see https://x.test/a1b3?id=40"),
        ("mail w1n@pr1ze.example.com", "mail w1n@pr1ze.example.com"),
        ("pay bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh", "pay bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"),
        ("to 0x742d35Cc6634C0532925a3b844Bc454e4438f44e", "to 0x742d35cc6634c0532925a3b844bc454e4438f44e"),
        ("100btc in 2nd place", "100btc in 2nd place"),  # a number with its unit is not leetspeak
        ("fr33 n1tr0 s3nd", "free nitro send"),
        ("FR33-N1TR0", "free nitro"),
    ],
)
def test_normalize_keeps_numbers_and_folds_leetspeak_in_words(text: str, expected: str) -> None:
    assert normalize(text) == expected


# Issue 10.2: what evaders do.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Frée Nîtro", "free nitro"),  # accents
        ("f\u0336r\u0336e\u0336e\u0336", "free"),  # strike-through marks
        ("Z\u0351\u0358a\u0334l\u0315go", "zalgo"),  # stacked marks
        ("d o u b l e", "double"),  # spaced-out letters
        ("f.r.e.e m.o.n.e.y", "free money"),
        ("f r e e  m o n e y", "free money"),  # two spaces keep the words apart
        ("free-nitro free_nitro free/nitro", "free nitro free nitro free nitro"),
        ("fr\u200bee\u2060 ni\u202etro\U000e0041", "free nitro"),  # zero-width, bidi and tag characters
        ("a b or c", "a b or c"),  # two single letters stay apart
        ("e.g. u.s.a.", "e g. usa."),
    ],
)
def test_normalize_undoes_evasions(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_normalize_reads_a_bounded_prefix() -> None:
    assert normalize("ab " * MAX_TEXT_CHARS + "scam") == " ".join(["ab"] * (MAX_TEXT_CHARS // 3)) + " a"


def test_without_links_drops_urls_mentions_tags_domains_and_addresses() -> None:
    text = "Hi @bob! WIN at HTTPS://x.test/a, win.example.com or me@corp.co.uk #promo (www.b.test)"
    assert without_links(text) == "Hi ! WIN at , or ()"
    assert without_links("no links, e.g. here.") == "no links, e.g. here."


def test_normalize_is_idempotent() -> None:
    text = "Buy ＣＨＥＡＰ f0ll0wers\u200b now from pаypаl!!"
    assert normalize(normalize(text)) == normalize(text)


def test_fold_confusables_keeps_ascii() -> None:
    assert fold_confusables("plain ASCII 123") == "plain ASCII 123"


def test_extract_urls() -> None:
    text = "see https://bit.ly/x?a=1, (http://a.example/b) or www.example.com. and ftp://no"
    assert extract_urls(text) == ["https://bit.ly/x?a=1", "http://a.example/b", "www.example.com"]
    assert extract_urls("no links here") == []
    assert extract_urls("awww.cute and https:// alone") == []


def test_extract_urls_ignores_case() -> None:  # issue 10.3
    assert extract_urls("HTTP://WWW.X.TEST") == ["HTTP://WWW.X.TEST"]
    assert extract_urls("Https://example.com") == ["Https://example.com"]
    assert extract_urls("visit WWW.EXAMPLE.COM!") == ["WWW.EXAMPLE.COM"]


def test_url_hosts() -> None:  # issue 10.5
    assert url_host("HTTPS://user@Shop.Example.com:8443/x") == "shop.example.com"
    assert url_host("www.münchen.de/a") == "www.xn--mnchen-3ya.de"
    assert url_host("http://[::1]:80/") == "::1"
    assert url_host("https:///nothing") is None
    text = "see https://a.example.com/1, a.example.com, bare.example.org and HTTP://A.EXAMPLE.COM/2"
    assert extract_hosts(text) == ["a.example.com"]


def test_extract_domains() -> None:
    text = "Go to https://shop.evil.example.com/x, cheap-followers.biz! mail me@corp.co.uk or 1.2.3.4 HTTP://A.B.ORG"
    assert extract_domains(text) == ["example.com", "cheap-followers.biz", "corp.co.uk", "b.org"]
    assert extract_domains("nothing.") == []
    assert extract_domains("evil.com evil.com") == ["evil.com"]


def test_extract_domains_applies_the_default_rule_to_links_only() -> None:  # issue 10.5
    text = "buy at https://shop.evil-pills.example/x or mail sales@pills.invalid or see readme.txt, i.e.that"
    assert extract_domains(text) == ["evil-pills.example", "pills.invalid"]
    assert extract_domains("evil-pills.example") == []  # a bare name needs a known suffix


def test_extraction_work_is_bounded() -> None:  # issue 11.14
    assert extract_domains("a.b " * MAX_TEXT_CHARS) == []
    many = " ".join(f"https://h{i}.com" for i in range(5000))
    assert len(extract_urls(many)) == 1000 and len(extract_domains(many)) == 1000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://a.b.example.co.uk/path", "example.co.uk"),
        ("Example.COM", "example.com"),
        ("localhost", None),
        ("foo.notatld", "foo.notatld"),  # the list's default rule: an unknown TLD is a public suffix
        ("shop.evil-pills.example", "evil-pills.example"),
        ("1.2.3.4", None),
        ("https://[::1]/x", None),
        ("münchen.de", "xn--mnchen-3ya.de"),
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

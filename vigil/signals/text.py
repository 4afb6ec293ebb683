"""Text normalisation and extraction shared by the rules language and the hashers.

`normalize` is what the rules language calls `normalized(...)`: the same function feeds the
near-duplicate text fingerprint, so "what a rule sees" and "what a hash bank sees" never drift apart.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from importlib import resources

import tldextract

# Leetspeak digits and symbols that stand in for letters in obfuscated spam ("f0ll0wers", "fr€e").
_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "8": "b",
        "@": "a",
        "$": "s",
        "€": "e",
    }
)

# Zero-width and formatting characters that split words invisibly ("fr\u200bee").
_INVISIBLE = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u200e\u200f"), None
)


@functools.cache
def _confusable_table() -> dict[int, str]:
    """Map each character that Unicode lists as confusable with a Latin letter or digit to that letter.

    Built once from the data file shipped with `confusable-homoglyphs` (Unicode's confusables.txt).
    """
    raw = resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    data: dict[str, list[dict[str, str]]] = json.loads(raw)
    table: dict[int, str] = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        for glyph in glyphs:
            target = glyph["c"]
            if len(target) == 1 and target.isascii() and target.isalnum():
                table[ord(char)] = target.lower()
                break
    return table


def fold_confusables(text: str) -> str:
    """Replace homoglyphs (Cyrillic 'а', Greek 'ο', fullwidth letters…) with their Latin look-alike."""
    return text.translate(_confusable_table())


def normalize(text: str) -> str:
    """Canonical form of a text for matching: NFKC, case-folded, homoglyphs and leetspeak folded,
    invisible characters removed, runs of white space collapsed.

    >>> normalize("Buy ＣＨＥＡＰ f0ll0wers\u200b now!!")
    'buy cheap followers now!!'
    >>> normalize("pаypаl")  # Cyrillic 'а'
    'paypal'
    """
    # Fold look-alikes before and after case folding: capitals such as Greek "Υ" look like "Y", while
    # their lower-case forms ("υ") look like other letters ("u").
    table = _fold_table()
    text = unicodedata.normalize("NFKC", text).translate(table).casefold().translate(table)
    return " ".join(text.split())


@functools.cache
def _fold_table() -> dict[int, str | None]:
    """Invisible characters removed, homoglyphs and leetspeak folded: one `str.translate` pass."""
    table: dict[int, str | None] = {}
    for code, target in _confusable_table().items():
        table[code] = target.translate(_LEET)
    for code, target in _LEET.items():
        table[code] = target
    table.update(_INVISIBLE)
    return table


# Internal patterns run on one white-space-separated token at a time, at most 2,048 characters, so
# the standard library's engine stays fast and bounded here; rule authors' patterns always use RE2.
_MAX_TOKEN = 2048
_URL = re.compile(r"(?i)(?:https?://|www\.)[^\s<>\"'`]+")
_DOMAIN = re.compile(r"(?i)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}")
_TRAILING_PUNCT = ".,;:!?)]}\"'"
_LEADING_PUNCT = "([{<\"'"


def extract_urls(text: str) -> list[str]:
    """URLs in a text, in order of appearance, trailing punctuation removed.

    >>> extract_urls("see https://bit.ly/x?a=1, or www.example.com.")
    ['https://bit.ly/x?a=1', 'www.example.com']
    """
    if "http" not in text and "www." not in text:
        return []
    found = []
    for token in text.split():
        if len(token) <= _MAX_TOKEN:
            match = _URL.search(token)
            if match:
                found.append(match.group(0).rstrip(_TRAILING_PUNCT))
    return found


@functools.cache
def _tld_extractor() -> tldextract.TLDExtract:
    # The public suffix list snapshot shipped in the package: never fetched over the network.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@functools.lru_cache(maxsize=65536)  # the same few thousand hosts come up again and again
def registered_domain(host_or_url: str) -> str | None:
    """The registrable domain ("example.co.uk") of a host or URL, or None when it has no public suffix.

    >>> registered_domain("https://a.b.example.co.uk/path")
    'example.co.uk'
    """
    parts = _tld_extractor()(host_or_url.lower())
    if not parts.suffix or not parts.domain:
        return None
    return f"{parts.domain}.{parts.suffix}"


def extract_domains(text: str) -> list[str]:
    """Registrable domains named in a text, from URLs and bare domain names, deduplicated in order.

    >>> extract_domains("Go to https://shop.evil.example.com/x or cheap-followers.biz!")
    ['example.com', 'cheap-followers.biz']
    """
    seen: dict[str, None] = {}
    if "." not in text:
        return []
    for token in text.split():
        if "." not in token or len(token) > _MAX_TOKEN:
            continue
        token = token.strip(_LEADING_PUNCT).rstrip(_TRAILING_PUNCT)
        if "://" in token:
            token = token.split("://", 1)[1]
        host = token.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
        if _DOMAIN.fullmatch(host):
            domain = registered_domain(host)
            if domain:
                seen.setdefault(domain, None)
    return list(seen)

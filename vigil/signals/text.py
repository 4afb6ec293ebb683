"""Text normalisation and extraction shared by the rules language and the hashers.

`normalize` is what the rules language calls `normalized(...)`: the same function feeds the
near-duplicate text fingerprint, so "what a rule sees" and "what a hash bank sees" never drift apart.

Every function here reads at most `MAX_TEXT_CHARS` characters of its input and skips white-space-separated
tokens longer than `MAX_TOKEN` when looking for URLs and domains, so one event's cost is bounded whatever
its size (issue 11.14). The limits are fixed rather than configured: a rules test must decide an event as
production does.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from importlib import resources
from urllib.parse import urlsplit

import idna
import tldextract

# What each text function reads of its input: characters past this are not seen.
MAX_TEXT_CHARS = 100_000
# Tokens longer than this are never URLs or domain names (a DNS name has at most 253 characters).
MAX_TOKEN = 2048
# At most this many URLs, hosts or domains come back from one text (the first ones).
MAX_ITEMS = 1000

# Leetspeak digits and symbols that stand in for letters in obfuscated spam ("f0ll0wers", "fr€e").
# Applied only inside a word that mixes letters with digits or these symbols (see `_fold_leet`).
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

# Invisible characters that survive NFKC and are not format characters (category Cf, all dropped):
# Hangul fillers and the blank Braille pattern, used to pad or split words.
_EXTRA_INVISIBLE = "\u115f\u1160\u3164\uffa0\u2800"


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


@functools.cache
def _strip_table() -> dict[int, None]:
    """Combining marks (accents, Zalgo stacks) and invisible characters, each mapped to nothing."""
    table: dict[int, None] = dict.fromkeys(map(ord, _EXTRA_INVISIBLE))
    for code in range(0x110000):
        if unicodedata.category(chr(code)) in ("Mn", "Me", "Cf"):
            table[code] = None
    return table


def fold_confusables(text: str) -> str:
    """Replace homoglyphs (Cyrillic 'а', Greek 'ο', fullwidth letters…) with their Latin look-alike."""
    return text.translate(_confusable_table())


def _fold_characters(text: str) -> str:
    """Compatibility forms, marks, invisible characters, homoglyphs and case, character by character."""
    if text.isascii():
        return text.lower()  # the same as casefold() for ASCII
    text = unicodedata.normalize("NFKD", text).translate(_strip_table())
    # Recompose what NFKD split that is not a mark (Hangul syllables); fold look-alikes before and
    # after case folding: capitals such as Greek "Υ" look like "Y", their lower-case forms like others.
    table = _confusable_table()
    return unicodedata.normalize("NFC", text).translate(table).casefold().translate(table)


# A word: letters and digits, with "@", "$" or "€" between two of them ("p@ypal", "ca$h"). The lookahead
# starts a match only at a word whose first non-letter is a digit or such a symbol, scanning it once.
_LEET_WORD = re.compile(r"(?<![^\W_])(?=[^\W\d_]*[\d@$€])[^\W_](?:[^\W_]|[@$€](?=[^\W_]))*")
_LETTER = re.compile(r"[^\W\d_]")
_NUMBER_WITH_UNIT = re.compile(r"\d+[^\W\d_]+")  # "100btc", "48h", "2nd": a number, not leetspeak
_MAX_LEET_WORD = 24  # longer mixed words are wallets, hashes and ids, never leetspeak
# Punctuation, symbols or "_" between two letters, or a letter and a digit ("f.r.e.e", "free-nitro");
# between two digits they stay ("24.99", "555-1234"). Marked with \0 first, spaces at the end.
_INNER_SEPARATOR = re.compile(r"(?<=[^\W\d_])(?:[^\w\s]|_)+(?=[^\W_])|(?<=\d)(?:[^\w\s]|_)+(?=[^\W\d_])")
# A comma grouping thousands ("5,000" reads "5000", as amounts are compared).
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# Three or more single letters, each separated by one space or one inner separator ("d o u b l e").
_SPACED_LETTERS = re.compile(r"(?<![\w\0])[^\W\d_](?:( |\0)[^\W\d_])(?:\1[^\W\d_])+(?![\w\0])")
# A run of four or more of one letter ("frrrreeee"): capped at three, which list matching reads as
# "any number" (vigil/signals/phrases.py).
_LONG_RUN = re.compile(r"([^\W\d_])\1{3,}")
# Tokens that may be links: those with "@", "#" or a "." before a letter or digit (scanned once from
# their start; a sentence's final "." makes no candidate).
_LINK_CANDIDATE = re.compile(r"(?<!\S)(?=[^\s@#.]*(?:[@#]|\.\w))\S+")
_MENTION = re.compile(r"[@#][^\W_][\w.-]*")
_WALLET = re.compile(r"(?<!\S)(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]{25,}(?!\S)")


def _fold_leet(match: re.Match[str]) -> str:
    word = match.group(0)
    if len(word) > _MAX_LEET_WORD or not _LETTER.search(word) or _NUMBER_WITH_UNIT.fullmatch(word):
        return word
    return word.translate(_LEET)


def _join_letters(match: re.Match[str]) -> str:
    return match.group(0).replace(match.group(1), "")


def _fold_words(segment: str) -> str:
    """Leetspeak, separators inside words and spaced-out letters, in text that holds no link."""
    segment = _LEET_WORD.sub(_fold_leet, segment)
    segment = _THOUSANDS.sub("", segment)
    segment = _INNER_SEPARATOR.sub("\0", segment)
    segment = _SPACED_LETTERS.sub(_join_letters, segment)
    segment = _LONG_RUN.sub(r"\1\1\1", segment)
    return segment.replace("\0", " ")


_TRAILING_PUNCT = ".,;:!?)]}\"'"
_LEADING_PUNCT = "([{<\"'"


def _link_spans(text: str) -> list[tuple[int, int]]:
    """Where the URLs, e-mail addresses, domain names, @mentions and #tags of a (folded) text are."""
    spans = []
    decided: dict[str, bool] = {}  # a text repeating one token decides it once
    for match in _LINK_CANDIDATE.finditer(text):
        token = match.group(0)
        core = token.lstrip(_LEADING_PUNCT)
        start = match.start() + len(token) - len(core)
        core = core.rstrip(_TRAILING_PUNCT)
        link = decided.get(core)
        if link is None:
            link = decided[core] = bool(core) and is_link(core)
        if link:
            spans.append((start, start + len(core)))
    return spans


def is_link(token: str) -> bool:
    """Whether one token is a URL, an e-mail address, a domain name (with a known public suffix),
    an @mention or a #tag. The token is compared case-insensitively.

    >>> [is_link(t) for t in ["https://x.test/a", "www.example.com", "me@corp.co.uk", "bit.ly/x", "@bob", "f.r.e.e"]]
    [True, True, True, True, True, False]
    """
    if len(token) > MAX_TOKEN:
        return False
    token = token.lower()
    if token[0] in "@#":
        return _MENTION.fullmatch(token) is not None
    if _URL.match(token):
        return True
    local, at, host = token.rpartition("@")
    if at:
        return bool(local) and _is_domain_name(host)
    host = token.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0]
    return "." in host and _is_domain_name(host)


def _is_domain_name(host: str) -> bool:
    """A host name in prose counts as a domain only with a suffix on the public suffix list."""
    canonical = canonical_host(host)
    return canonical is not None and _registrable(canonical, default_rule=False) is not None


def _split_links(text: str) -> tuple[list[str], list[str]]:
    """The text around its links (one more piece than links), and the links."""
    pieces, links, position = [], [], 0
    for start, end in _link_spans(text):
        pieces.append(text[position:start])
        links.append(text[start:end])
        position = end
    pieces.append(text[position:])
    return pieces, links


def normalize(text: str) -> str:
    """Canonical form of a text for matching (the rules language's `normalized`).

    Character by character: NFKC compatibility forms, combining marks removed, invisible characters
    removed, homoglyphs folded to Latin, case folded. Word by word, outside URLs, e-mail addresses,
    domain names, @mentions, #tags and wallet-like strings (kept as they are): leetspeak folded inside
    words that mix letters and digits, thousands separators dropped, punctuation inside words made a
    space, spaced-out single letters joined, runs of one letter capped at three. White space collapsed. Reads at most `MAX_TEXT_CHARS` characters.

    >>> normalize("Buy ＣＨＥＡＰ f0ll0wers\u200b now!!")
    'buy cheap followers now!!'
    >>> normalize("pаypаl")  # Cyrillic 'а'
    'paypal'
    >>> normalize("send me 100 BTC at wincheap60.top, $24.99 or $1,000")
    'send me 100 btc at wincheap60.top, $24.99 or $1000'
    >>> normalize("Frée n1tr0: f.r.e.e g i f t")
    'free nitro: free gift'
    >>> normalize("FRRRREEEEE stuff")
    'frrreee stuff'
    """
    text = _fold_characters(text[:MAX_TEXT_CHARS])
    if not _LINK_CANDIDATE.search(text) and not _WALLET.search(text):
        return " ".join(_fold_words(text).split())
    pieces, links = _split_links(text)
    wallets = {m.group(0) for piece in pieces for m in _WALLET.finditer(piece)}
    out = [_fold_words(pieces[0]) if not wallets else _fold_keeping(pieces[0], wallets)]
    for link, piece in zip(links, pieces[1:]):
        out.append(link)
        out.append(_fold_words(piece) if not wallets else _fold_keeping(piece, wallets))
    return " ".join("".join(out).split())


def _fold_keeping(piece: str, wallets: set[str]) -> str:
    """`_fold_words` on the text around the wallet-like strings of a piece, which stay as they are."""
    return " ".join(word if word in wallets else _fold_words(word) for word in piece.split(" "))


def without_links(text: str) -> str:
    """The text without its URLs, e-mail addresses, domain names, @mentions and #tags, white space
    collapsed: what copy-paste campaigns share when each copy links somewhere else.

    >>> without_links("Hi @bob, WIN at https://x.test/a or win.example.com #promo!")
    'Hi , WIN at or !'
    """
    text = text[:MAX_TEXT_CHARS]
    pieces, _ = _split_links(text)
    return " ".join("".join(pieces).split())


# Internal patterns run on one white-space-separated token at a time, at most MAX_TOKEN characters, so
# the standard library's engine stays fast and bounded here; rule authors' patterns always use RE2.
_URL = re.compile(r"(?i)(?<![\w.+-])(?:https?://|www\.)[^\s<>\"'`]+")
_DOMAIN = re.compile(r"(?i)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,24}|xn--[a-z0-9-]{1,59})")


def extract_urls(text: str) -> list[str]:
    """URLs in a text, in order of appearance, trailing punctuation removed: a token holding `http://`,
    `https://` or `www.` in any case, at most `MAX_ITEMS` of them.

    >>> extract_urls("see Https://bit.ly/x?a=1, or WWW.example.com. (not awww.nice)")
    ['Https://bit.ly/x?a=1', 'WWW.example.com']
    """
    text = text[:MAX_TEXT_CHARS]
    lowered = text.lower()
    if "http" not in lowered and "www." not in lowered:
        return []
    found = []
    for token in text.split():
        if len(token) <= MAX_TOKEN:
            match = _URL.search(token)
            if match:
                url = match.group(0).rstrip(_TRAILING_PUNCT)
                if url.lower() not in ("http://", "https://", "www."):
                    found.append(url)
                    if len(found) == MAX_ITEMS:
                        break
    return found


@functools.lru_cache(maxsize=65536)  # the same few thousand hosts come up again and again
def canonical_host(host: str) -> str | None:
    """A host name in the form DNS uses: lower case, IDNA (UTS 46) A-labels, no trailing dot.

    >>> canonical_host("München.DE.")
    'xn--mnchen-3ya.de'
    """
    host = host.strip().rstrip(".")
    if not host or len(host) > 253:
        return None
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        return host.casefold()


def url_host(url: str) -> str | None:
    """The host of one URL (with or without a scheme), in `canonical_host` form; None when it has none.

    >>> url_host("HTTPS://user@Shop.Example.com:8443/x?y")
    'shop.example.com'
    >>> url_host("www.пример.рф/path")
    'www.xn--e1afmkfd.xn--p1ai'
    """
    url = url.strip()[:MAX_TOKEN]
    if "://" not in url:
        url = "//" + url
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return canonical_host(host) if host else None


def extract_hosts(text: str) -> list[str]:
    """The host of each URL in a text (`url_host` over `extract_urls`), deduplicated in order.

    >>> extract_hosts("https://a.example.com/1 and a.example.com and HTTP://A.EXAMPLE.COM/2")
    ['a.example.com']
    """
    seen: dict[str, None] = {}
    for url in extract_urls(text):
        host = url_host(url)
        if host:
            seen.setdefault(host, None)
    return list(seen)


@functools.cache
def _tld_extractor() -> tldextract.TLDExtract:
    # The public suffix list snapshot shipped in the package: never fetched over the network.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@functools.lru_cache(maxsize=65536)
def _registrable(host: str, default_rule: bool) -> str | None:
    """The registrable domain of a canonical host name, or None.

    With `default_rule`, a top-level domain missing from the list counts as a public suffix, as the
    list's own rule `*` says (so "evil.example" is registrable).
    """
    if ":" in host or not _DOMAIN.fullmatch(host):
        return None  # IPv6 and IPv4 addresses, single labels, invalid names
    parts = _tld_extractor()(host)
    if parts.suffix:
        return f"{parts.domain}.{parts.suffix}" if parts.domain else None
    if not default_rule:
        return None
    return ".".join(host.rsplit(".", 2)[-2:])


def registered_domain(host_or_url: str) -> str | None:
    """The registrable domain ("example.co.uk") of a host or URL, by the public suffix list and its
    default rule for a top-level domain the list does not know; None for an IP address, a single
    label or a public suffix itself.

    >>> registered_domain("https://a.b.example.co.uk/path")
    'example.co.uk'
    >>> registered_domain("shop.evil-pills.example")
    'evil-pills.example'
    """
    host = url_host(host_or_url) if "/" in host_or_url else canonical_host(host_or_url.split(":", 1)[0])
    return None if host is None else _registrable(host, default_rule=True)


def extract_domains(text: str) -> list[str]:
    """Registrable domains named in a text, deduplicated in order: of the host of each URL and e-mail
    address (any top-level domain), and of each bare host name whose suffix is on the public suffix list
    ("file.txt" and "end.Next" are not domains). At most `MAX_ITEMS`.

    >>> extract_domains("Go to https://shop.evil.example.com/x or cheap-followers.biz! http://pills.example")
    ['example.com', 'cheap-followers.biz', 'pills.example']
    """
    text = text[:MAX_TEXT_CHARS]
    if "." not in text:
        return []
    seen: dict[str, None] = {}
    tokens: set[str] = set()
    for token in text.split():
        if "." not in token or len(token) > MAX_TOKEN or token in tokens:
            continue
        tokens.add(token)  # a text repeating one token costs one look-up
        domain = _token_domain(token.strip(_LEADING_PUNCT).rstrip(_TRAILING_PUNCT))
        if domain:
            seen.setdefault(domain, None)
            if len(seen) == MAX_ITEMS:
                break
    return list(seen)


def _token_domain(token: str) -> str | None:
    url = _URL.search(token)
    if url or "://" in token:
        host = url_host(url.group(0) if url else token)
        return None if host is None else _registrable(host, default_rule=True)
    local, at, address = token.rpartition("@")
    if at:
        host = canonical_host(address)
        return None if host is None or not local else _registrable(host, default_rule=True)
    host = canonical_host(token.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0])
    return None if host is None else _registrable(host, default_rule=False)

"""The few helpers compiled rules call. Each treats None as "unknown" and passes it through."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import re2

from vigil.signals import text as text_signals
from vigil.signals.phrases import PhraseMatcher


class FieldTypeError(Exception):
    """An event field holds a value of the wrong type for the rules: the event is dead-lettered."""

    def __init__(self, path: str, expected: str, value: Any) -> None:
        super().__init__(f"field `event.{path}` should be a {expected}, got {type(value).__name__} {value!r:.60}")
        self.path = path
        self.expected = expected


class Unset:
    """Marks a feature not computed yet in this event (None already means "unknown")."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()


def get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = data
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def as_number(value: Any, path: str) -> float | int | None:
    if value is None or (type(value) in (int, float)):
        return value  # type: ignore[no-any-return]
    raise FieldTypeError(path, "number", value)


def as_string(value: Any, path: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise FieldTypeError(path, "string", value)


def as_bool(value: Any, path: str) -> bool | None:
    if value is None or type(value) is bool:
        return value
    raise FieldTypeError(path, "bool", value)


def as_list(value: Any, path: str) -> list[Any] | None:
    if value is None or type(value) is list:
        return value
    raise FieldTypeError(path, "list", value)


def as_string_or_list(value: Any, path: str) -> str | list[Any] | None:
    if value is None or type(value) in (str, list):
        return value  # type: ignore[no-any-return]
    raise FieldTypeError(path, "string or list", value)


def as_string_or_number(value: Any, path: str) -> str | float | int | None:
    if value is None or type(value) in (str, int, float):
        return value  # type: ignore[no-any-return]
    raise FieldTypeError(path, "string or number", value)


# A composite entity's key is its parts, each with `\` and `|` escaped by a backslash, joined by `|`: distinct
# tuples never share a key (parts such as user agents are attacker-controlled), and parts without `|` or `\`
# keep the plain `a|b` form. The one place keys are made: counters, labels and every store use them as is.
_KEY_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|"})


def encode_key(parts: Iterable[str]) -> str:
    """The stored key of a composite entity's parts.

    >>> encode_key(["a|b", "c"]), encode_key(["a", "b|c"]), encode_key(["u1", "u2"])
    ('a\\\\|b|c', 'a|b\\\\|c', 'u1|u2')
    """
    return "|".join(part.translate(_KEY_ESCAPES) for part in parts)


def entity_key(*parts: Any) -> str | None:
    """An entity's key: its id, or for a composite entity the ids by `encode_key`. Unknown if any is missing."""
    out = []
    for part in parts:
        if part is None or part == "":
            return None
        if type(part) not in (str, int):
            raise FieldTypeError("(entity key)", "string or integer id", part)
        out.append(str(part))
    return out[0] if len(out) == 1 else encode_key(out)


def parse_time(value: Any) -> float | None:
    """Epoch seconds from an RFC 3339 string or an epoch number (seconds, or milliseconds if huge)."""
    if value is None:
        return None
    if type(value) in (int, float):
        return value / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)  # Python 3.11 reads RFC 3339, "Z" included
        except ValueError:
            try:  # RFC 3339 also allows lower-case "t" and "z"
                parsed = dt.datetime.fromisoformat(value.upper())
            except ValueError:
                raise FieldTypeError("(timestamp)", "RFC 3339 time", value) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    raise FieldTypeError("(timestamp)", "RFC 3339 time or epoch seconds", value)


def age(value: Any, now: float) -> float | None:
    then = parse_time(value)
    return None if then is None else now - then


def length(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, (str, list, dict)):
        return len(value)
    raise FieldTypeError("(length)", "text or list", value)


def normalized(value: str | None) -> str | None:
    return None if value is None else text_signals.normalize(value)


def lower(value: str | None) -> str | None:
    return None if value is None else value.casefold()


def urls(value: str | None) -> list[str] | None:
    return None if value is None else text_signals.extract_urls(value)


def domains(value: str | None) -> list[str] | None:
    return None if value is None else text_signals.extract_domains(value)


def domain(value: str | None) -> str | None:
    if value is None:
        return None
    return text_signals.registered_domain(value.rsplit("@", 1)[-1])


def host(value: str | None) -> str | None:
    return None if value is None else text_signals.url_host(value)


def hosts(value: str | None) -> list[str] | None:
    return None if value is None else text_signals.extract_hosts(value)


def without_links(value: str | None) -> str | None:
    return None if value is None else text_signals.without_links(value)


def contains_normalized(left: str | None, right: str | None) -> bool | None:
    """`normalized(x) contains y` for a `y` only known per event: matched as a one-phrase list."""
    if left is None or right is None:
        return None
    return TermList("", "phrases", [right]).contains_any_normalized(left)


def contains(left: Any, right: Any, left_path: str, right_path: str) -> bool | None:
    """`contains`: in a string, a substring; in a list, an item equal to the value. Both follow case as
    `starts with` does (casefold). A number equals a number of the same value (1 and 1.0), never a string
    or true/false; items of other kinds (objects, lists, null) equal nothing.

    >>> contains("Hello World", "world", "t", "(contains)"), contains(["member", "Mod"], "mod", "r", "(contains)")
    (True, True)
    >>> contains(["modern"], "mod", "r", "(contains)"), contains([1, "2"], 2, "r", "(contains)")
    (False, False)
    """
    if left is None or right is None:
        return None
    if type(left) is str:
        if type(right) is not str:
            raise FieldTypeError(right_path, "string, as a string contains only a string", right)
        return right.casefold() in left.casefold()
    if type(left) is list:
        if type(right) is str:
            wanted = right.casefold()
            return any(type(item) is str and item.casefold() == wanted for item in left)
        if type(right) in (int, float):
            return any(type(item) in (int, float) and item == right for item in left)
        raise FieldTypeError(right_path, "string or number", right)
    raise FieldTypeError(left_path, "string or list", left)


def text_op(op: str, left: str | None, right: str | None) -> bool | None:
    """contains / starts with / ends with, case-insensitively."""
    if left is None or right is None:
        return None
    a, b = left.casefold(), right.casefold()
    if op == "contains":
        return b in a
    if op == "starts_with":
        return a.startswith(b)
    return a.endswith(b)


def arith(op: str, left: float | None, right: float | None) -> float | None:
    if left is None or right is None:
        return None
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    return None if right == 0 else left / right


def quiet_re2_options() -> Any:
    """RE2 options that do not log: RE2 writes an invalid pattern's error (and absl's "All log messages
    before absl::InitializeLog()" warning) straight to stderr, above the checker's own diagnostic."""
    options = re2.Options()
    options.log_errors = False
    return options


class Regex:
    """A rule's regular expression: RE2, so matching is linear in the text whatever the pattern.

    `search` answers only "is there a match", calling RE2 directly: the `re2` module's general API
    computes match spans in Python, which costs four times as much and which rules never need.
    """

    def __init__(self, pattern: str, flags: str) -> None:
        self.pattern, self.flags = pattern, flags
        options = quiet_re2_options()
        options.case_sensitive = "i" not in flags
        options.dot_nl = "s" in flags
        # `m`: ^ and $ at line breaks, as RE2's own (?m) flag. (RE2's posix_syntax would do it too, but
        # also drops \d, \w and \b, so /\d+/m passed the checker and failed when activated.)
        self.compiled = re2.compile(f"(?m){pattern}" if "m" in flags else pattern, options)
        regexp = getattr(self.compiled, "_regexp", None)
        anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
        self._match = regexp.Match if regexp is not None and anchor is not None else None
        self._anchor = anchor

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its source (RE2 objects do not pickle): a rules set compiled in another process."""
        return Regex, (self.pattern, self.flags)

    def search(self, text: str) -> bool:
        if self._match is None:  # a future re2 without the internals: the public API still works
            return self.compiled.search(text) is not None
        data = text.encode("utf-8", "surrogatepass")
        return bool(self._match(self._anchor, data, 0, len(data))[0][0] != -1)


def compile_regex(pattern: str, flags: str) -> Regex:
    return Regex(pattern, flags)


def _term_list(name: str, kind: str, members: frozenset[str], patterns: list[str]) -> TermList:
    """A TermList from its parts, without normalising every item again (unpickling)."""
    made = TermList.__new__(TermList)
    made.name, made.kind, made.members, made.patterns = name, kind, members, patterns
    made._matcher = PhraseMatcher(patterns, whole_words=kind == "words")
    return made


def _member_form(kind: str, item: str) -> str:
    if kind == "domains":
        return text_signals.canonical_host(item) or item.casefold()
    return item.casefold()


class TermList:
    """A named list: exact membership (domains also match their sub-domains) and fast multi-pattern
    search (Aho-Corasick) over normalized text for `contains any of`."""

    def __init__(self, name: str, kind: str, items: Iterable[str]) -> None:
        self.name = name
        self.kind = kind
        raw = [i.strip() for i in items if i.strip() and not i.strip().startswith("#")]
        # Domains compare in the form hosts take (IDNA A-labels), so "münchen.de" matches either spelling.
        self.members = frozenset(_member_form(kind, i) for i in raw)
        self.patterns = sorted({text_signals.normalize(i) for i in raw} - {""})
        self._matcher = PhraseMatcher(self.patterns, whole_words=kind == "words")

    def __len__(self) -> int:
        return len(self.members)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as what it was built from (the automaton does not pickle)."""
        return _term_list, (self.name, self.kind, self.members, self.patterns)

    def member(self, value: Any) -> bool | None:
        """`value in list`: for a list value, whether any item is a member."""
        if value is None:
            return None
        if isinstance(value, list):
            return any(self.member(v) for v in value if v is not None)
        text = _member_form(self.kind, str(value))
        if text in self.members:
            return True
        if self.kind == "domains":
            parts = text.split(".")
            # Parent domains, down to the public suffix: a list of TLDs ("xyz") works as well.
            return any(".".join(parts[i:]) in self.members for i in range(1, len(parts)))
        return False

    def find(self, value: str) -> list[str]:
        """Phrases of the list found in the normalized text (whole words only for a `words` list)."""
        return self._find_in(text_signals.normalize(value))

    def contains_any_normalized(self, value: str | None) -> bool | None:
        """`contains_any` for the result of `normalized(...)` in the rule: a text, or unknown."""
        return None if value is None else bool(self._find_in(value))

    def _find_in(self, text: str) -> list[str]:
        return self._matcher.find(text)

    def contains_any(self, value: Any) -> bool | None:
        if value is None:
            return None
        if isinstance(value, list):
            return any(self.contains_any(v) for v in value if v is not None)
        return bool(self.find(str(value)))

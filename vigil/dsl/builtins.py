"""The functions rules can call: one registry read by the checker, the compiler, the engine and the docs.

Each function is registered once, with its argument and result types, the callable that runs it, whether
it is slow (its rules wait for the second stage, like policy answers) and a one-line summary for the
docs. Vigil's own built-ins register through the same hook as plugins (`register_functions`, see
vigil/plugins.py), so adding one is one `functions.add(...)` below.

    >>> functions = builtin_functions()
    >>> functions["lower"].params, functions["lower"].result
    (('string',), 'string')
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vigil.dsl import runtime

if TYPE_CHECKING:
    from vigil.signals.providers import Signals

log = logging.getLogger("vigil.functions")

NUMBER, STRING, BOOL, LIST, ANY = "number", "string", "bool", "list", "any"
TYPES = (NUMBER, STRING, BOOL, LIST, ANY)
BUILTIN_SOURCE = "vigil"  # the `source` of Vigil's own functions; a plugin's is its entry point's name
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # the grammar's NAME
# What a slow function answered, by (event, arguments): the second stage evaluates a slow rule while
# probing for policy answers and again to decide, and must not ask a database twice for one event.
SLOW_MEMO_SIZE = 4096


class FunctionError(ValueError):
    """A function that cannot be registered: a bad name or type, or a name already taken."""


@dataclass(frozen=True, slots=True)
class Function:
    """A function callable from rules.

    `call` runs it; or `bind`, given the engine's Signals, makes the callable once per engine (for a
    function that asks a classifier, a model or a connection the engine holds). With `known_args` the
    compiled code calls it only when every argument is known and otherwise the result is unknown, so the
    callable never sees None. `time`: the event's time is passed after the arguments. `slow`: rules that
    call it run in the second stage, after the first decision, and it is called once per event and
    arguments there.
    """

    name: str
    params: tuple[str, ...]
    result: str
    doc: str
    call: Callable[..., Any] | None = None
    bind: Callable[[Signals], Callable[..., Any]] | None = None
    slow: bool = False
    time: bool = False
    known_args: bool = True
    source: str = BUILTIN_SOURCE

    @property
    def signature(self) -> str:
        """How the docs and the checker's messages show it: `name(string, number) → bool`."""
        return f"{self.name}({', '.join(self.params)}) → {self.result}"

    def make_callable(self, signals: Signals) -> Callable[..., Any]:
        """The callable the compiled rules call, for an engine with these signals."""
        made = self.bind(signals) if self.bind is not None else self.call
        if made is None:  # add() refuses this; kept for a Function built by hand
            raise FunctionError(f"function `{self.name}` has neither `call` nor `bind`")
        if self.source != BUILTIN_SOURCE:
            made = _Guarded(self, made)
        if self.slow:
            made = _Memo(made)
        return made


class Functions(Mapping[str, Function]):
    """The functions of one rules set, by name: built-ins and those plugins added. Built by the front
    door (vigil.plugins.load_functions), given to the loader, and carried by the checked program."""

    def __init__(self) -> None:
        self._by_name: dict[str, Function] = {}
        self._source = BUILTIN_SOURCE  # who is registering now (vigil.plugins.register_plugin sets it)

    def __getitem__(self, name: str) -> Function:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __repr__(self) -> str:
        return f"Functions({', '.join(self._by_name)})"

    @contextlib.contextmanager
    def registering(self, source: str) -> Iterator[None]:
        """Within the block, functions added are `source`'s (a plugin's entry-point name)."""
        previous, self._source = self._source, source
        try:
            yield
        finally:
            self._source = previous

    def add(self, name: str, params: tuple[str, ...] | list[str], result: str, doc: str, *,
            call: Callable[..., Any] | None = None, bind: Callable[[Signals], Callable[..., Any]] | None = None,
            slow: bool = False, time: bool = False, known_args: bool = True,
            source: str | None = None) -> Function:
        """Register a function; raises FunctionError if the name is taken or invalid, or a type unknown.
        `source` names who registers it (the plugin being loaded, unless given)."""
        source = self._source if source is None else source
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise FunctionError(f"function name {name!r} is not a name rules can call (letters, digits, _)")
        if name in _keywords():
            raise FunctionError(f"function name `{name}` is a keyword of the rules language")
        existing = self._by_name.get(name)
        if existing is not None:
            by = "Vigil's built-ins" if existing.source == BUILTIN_SOURCE else f"plugin `{existing.source}`"
            raise FunctionError(f"function `{name}` is already registered by {by}")
        params = tuple(params)
        for type_name in (*params, result):
            if type_name not in TYPES:
                raise FunctionError(f"function `{name}`: unknown type {type_name!r} (use one of {', '.join(TYPES)})")
        if (call is None) == (bind is None):
            raise FunctionError(f"function `{name}`: give exactly one of `call` (the function) or `bind`")
        for given in (call, bind):
            if given is not None and not callable(given):
                raise FunctionError(f"function `{name}`: {given!r} is not callable")
        if not isinstance(doc, str) or not doc.strip():
            raise FunctionError(f"function `{name}`: give a one-line `doc` (the docs list it)")
        function = Function(name, params, result, doc, call, bind, slow, time, known_args, source)
        self._by_name[name] = function
        return function


@functools.cache
def _keywords() -> frozenset[str]:
    """The grammar's keywords that look like names (`count`, `event`, `not`, ...): a function by such a
    name could never be called."""
    from vigil.dsl.parse import _parser

    words = set()
    for terminal in _parser().terminals:
        if terminal.pattern.type == "str" and _NAME.fullmatch(terminal.pattern.value):
            words.add(terminal.pattern.value)
    return frozenset(words)


_RESULT_TYPES: dict[str, Callable[[Any], bool]] = {
    NUMBER: lambda v: type(v) in (int, float),
    STRING: lambda v: type(v) is str,
    BOOL: lambda v: type(v) is bool,
    LIST: lambda v: type(v) is list,
    ANY: lambda v: True,
}


class _Guarded:
    """A plugin's function as the rules call it: a failure or an answer of the wrong type is unknown (and
    logged once), as for every other signal, so a plugin's bug costs one signal, never the event."""

    __slots__ = ("_call", "_function", "_is_result", "_warned")

    def __init__(self, function: Function, call: Callable[..., Any]) -> None:
        self._function = function
        self._call = call
        self._is_result = _RESULT_TYPES[function.result]
        self._warned: set[str] = set()

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("function `%s` of plugin `%s` %s", self._function.name, self._function.source, message)

    def __call__(self, *args: Any) -> Any:
        try:
            value = self._call(*args)
        except Exception as error:  # noqa: BLE001 - a plugin's failure answers "unknown"
            self._warn_once(type(error).__name__, f"failed: {type(error).__name__}: {error}")
            return None
        if value is None or self._is_result(value):
            return value
        self._warn_once("type", f"answered {type(value).__name__} {value!r:.60}, not a {self._function.result}")
        return None


class _Memo:
    """A slow function called once per event and arguments (the compiled code passes the event's key)."""

    __slots__ = ("_answers", "_call")

    def __init__(self, call: Callable[..., Any]) -> None:
        self._call = call
        self._answers: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def __call__(self, event_key: str, *args: Any) -> Any:
        key = (event_key, *args)
        try:
            if key in self._answers:
                self._answers.move_to_end(key)
                return self._answers[key]
        except TypeError:  # an unhashable argument (a list): asked every time
            return self._call(*args)
        value = self._call(*args)
        self._answers[key] = value
        if len(self._answers) > SLOW_MEMO_SIZE:
            self._answers.popitem(last=False)
        return value


# ---- Vigil's own functions, registered through the same hook as a plugin's ----

def _language(signals: Signals) -> Callable[[str], str | None]:
    return functools.partial(signals.classifier_label, "language")


def _profanity(signals: Signals) -> Callable[[str], float | None]:
    return functools.partial(signals.classifier_score, "profanity")


def _nsfw(signals: Signals) -> Callable[[Any], float | None]:
    return signals.nsfw


def register_functions(functions: Functions) -> None:
    """The built-in functions. The runtime helpers take None themselves (`known_args=False`)."""
    add = functools.partial(functions.add, known_args=False)
    add("normalized", (STRING,), STRING, "the text's canonical form for matching (docs/language.md, Text)",
        call=runtime.normalized)
    add("without_links", (STRING,), STRING, "the text without URLs, e-mail addresses, domains, @mentions, #tags",
        call=runtime.without_links)
    add("lower", (STRING,), STRING, "lower case", call=runtime.lower)
    add("length", (ANY,), NUMBER, "characters in a string, or items in a list", call=runtime.length)
    add("urls", (STRING,), LIST, "URLs in a text", call=runtime.urls)
    add("domains", (STRING,), LIST, "registrable domains of URLs and host names in a text", call=runtime.domains)
    add("domain", (STRING,), STRING, "registrable domain of one URL, host or e-mail address", call=runtime.domain)
    add("host", (STRING,), STRING, "host name of one URL, lower case, IDNA", call=runtime.host)
    add("hosts", (STRING,), LIST, "host names of the URLs in a text", call=runtime.hosts)
    add("age", (ANY,), NUMBER, "seconds from a timestamp (RFC 3339 or epoch) to the event's time",
        call=runtime.age, time=True)
    # Signals: bound to the engine's classifiers and media decoder; unknown in, unknown out.
    functions.add("language", (STRING,), STRING,
                  "ISO 639-1 code of the text's language (the `language` classifier)", bind=_language)
    functions.add("profanity", (STRING,), NUMBER,
                  "offensive-language probability 0–1 (the `profanity` classifier)", bind=_profanity)
    functions.add("nsfw", (ANY,), NUMBER,
                  "probability 0–1 that an image (base64, or a file under --media-root) is NSFW", bind=_nsfw)


def builtin_functions() -> Functions:
    """A registry of Vigil's own functions only (no plugins): a fresh one each call, never shared."""
    functions = Functions()
    register_functions(functions)
    return functions

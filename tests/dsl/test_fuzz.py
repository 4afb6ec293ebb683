"""The parser and loader under random input: clean errors only, never an exception."""

from __future__ import annotations

import re

from conftest import T0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.diagnostics import DiagnosticError, Severity
from vigil.dsl import ast
from vigil.dsl.loader import load_ruleset
from vigil.dsl.parse import parse
from vigil.effects import DeadLetter
from vigil.engine import Engine

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

VALID = """
entity user = event.user
entity pair = (event.user, event.target)
list "spam" of words = ["cheap", "free iphone"]
list "bad" of domains = ["evil.com"]
define posts = count of "post" by user in the last 10 minutes
define text = normalized(event.text)
define targets = count distinct event.target for user where (event.n > 1) today
rule "spam" severity high
  when event is "post" and (text contains any of list "spam" or domains(event.text) in list "bad") and posts > 3
  then block, label user "spammer" for 7 days, output "q"
rule "burst" mode rollout 50% by user when posts crosses 5 and not (event.n is missing) then review
rule "pairs" mode shadow when count of "msg" by pair in the last 1 hour >= 2 or targets > 3 then flag
rule "known" when user has label "spammer" and event.text matches /fr[e3]+/i then unlabel user "x"
rule "math" when sum of event.n for user in the last 1 day * 2 - 1 > 10 and length(urls(event.text)) == 0
  then allow
test "t" given 3 "post" from user "u" within 1 minute with text = "cheap", n = 2 expect block, label user "spammer"
"""

TOKEN = re.compile(r'"(?:\\.|[^"\\\n])*"|/(?:\\.|[^/\\\n])+/[ims]*|\d+(?:\.\d+)?|\w+|[^\s\w]')
TOKENS = TOKEN.findall(VALID)
VOCABULARY = sorted(set(TOKENS)) + ["9" * 400, "(", ")", "[", "]", ",", "=", "==", "%", "/", '"', "#", "\\", "\n", "ƒ"]

EVENTS = [
    {"type": "post", "id": "1", "time": T0, "user": "u", "text": "cheap FREE iphone at evil.com", "n": 2},
    {"type": "msg", "id": "2", "time": T0 + 1, "user": "u", "target": "v"},
    {"type": "post", "id": "3", "time": T0 + 2},
    {"type": "other", "id": "4", "time": T0 + 3, "user": "u", "n": 1.5, "text": ""},
]


def check_parse(text: str) -> None:
    module, diagnostics = parse(text, "f.vigil")
    # One error per item that does not parse, each standing in the module as an Unparsed item.
    assert sum(isinstance(item, ast.Unparsed) for item in module.items) == len(diagnostics)
    for d in diagnostics:
        assert d.severity is Severity.ERROR and d.message
        assert d.span.file == "f.vigil"
        assert d.span.line >= 1 and d.span.column >= 1
        d.render(text)


def check_load(text: str) -> None:
    """load_ruleset raises only DiagnosticError; what loads also decides events without internal errors."""
    try:
        rules = load_ruleset("f.vigil", files={"f.vigil": text})
    except DiagnosticError as error:
        assert error.errors
        error.render()
        return
    engine = Engine(rules)
    try:
        for event in EVENTS:
            result = engine.process(event)
            if isinstance(result, DeadLetter):
                assert not result.reason.startswith("internal error"), (result.reason, text)
    finally:
        engine.close()


def test_the_seed_rules_are_valid() -> None:
    check_parse(VALID)
    load_ruleset("f.vigil", files={"f.vigil": VALID})


@FUZZ
@given(st.text(max_size=300))
def test_parse_arbitrary_text(text: str) -> None:
    check_parse(text)


@FUZZ
@given(st.lists(st.sampled_from(VOCABULARY), max_size=60))
def test_parse_token_soup(tokens: list[str]) -> None:
    text = " ".join(tokens)
    check_parse(text)
    check_load(text)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    tokens = list(TOKENS)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "swap", "replace"]))
        i = draw(st.integers(0, len(tokens) - 1))
        if kind == "delete" and len(tokens) > 1:
            del tokens[i]
        elif kind == "insert":
            tokens.insert(i, draw(st.sampled_from(VOCABULARY)))
        elif kind == "swap":
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            tokens[i] = draw(st.sampled_from(VOCABULARY))
    return " ".join(tokens)


@FUZZ
@given(mutated())
def test_mutated_rules_give_clean_errors(text: str) -> None:
    check_parse(text)
    check_load(text)


@FUZZ
@given(st.integers(0, len(VALID)), st.text(max_size=5))
def test_text_spliced_into_valid_rules(at: int, extra: str) -> None:
    text = VALID[:at] + extra + VALID[at:]
    check_parse(text)
    check_load(text)


@FUZZ
@given(st.dictionaries(st.sampled_from(["a.vigil", "b.vigil", "dir/c.vigil"]),
                       st.sampled_from(['use "b.vigil"', 'use "a.vigil"', 'use "dir/c.vigil"', 'use "../a.vigil"',
                                        'use "missing.vigil"', "define x = 1", 'rule "r" when x > 0 then block',
                                        'rule "r" when event.n > 0 then flag', 'list "l" from "l.txt"']),
                       min_size=1))
def test_files_using_each_other(files: dict[str, str]) -> None:
    try:
        load_ruleset(sorted(files), files=files)
    except DiagnosticError as error:
        assert error.errors


# Deep nesting (issue 11.8): every way to nest, to any depth, gives a diagnostic or a rules set that runs.
_WRAPPERS = ["not ({})", "lower({})", "({} + 1)", "(1 * {})", "({} == 1 and event.n > 0)",
             "({} or event.n > 0)", "length(urls({}))", "(({}))"]


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.sampled_from(_WRAPPERS), min_size=1, max_size=400), st.integers(0, 40))
def test_deep_nesting_never_crashes(wrappers: list[str], chain: int) -> None:
    expr = "event.n"
    for wrapper in wrappers:
        expr = wrapper.format(expr)
    definitions = "define d0 = event.n\n" + "".join(f"define d{i} = d{i - 1} + 1\n" for i in range(1, chain + 1))
    check_load(f'{definitions}rule "deep" when {expr} == d{chain} then flag\n'
               f'rule "flat" when {" and ".join(["event.n > 0"] * 300)} then review')

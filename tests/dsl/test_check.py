"""The checker's messages: one test per kind of error, with positions, hints, and all errors at once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import HEADER, errors_of, event, ruleset

from vigil.diagnostics import Diagnostic, DiagnosticError, Severity
from vigil.dsl.loader import load_ruleset
from vigil.engine import Engine


def only_error(text: str, files: dict[str, str] | None = None) -> Diagnostic:
    errors = [d for d in errors_of(text, files) if d.severity is Severity.ERROR]
    assert len(errors) == 1, [str(d) for d in errors]
    return errors[0]


def test_syntax_error_with_hint() -> None:
    error = only_error('rule "r"\n  when event.n = 3 then block')
    assert str(error.span) == "r.vigil:2:16"
    assert error.code == "syntax"
    assert error.message.startswith("unexpected `=`; expected")
    assert error.hint is not None and "use == to compare" in error.hint


def test_syntax_error_at_end_of_file() -> None:
    error = only_error('rule "r" when event.n > 3\n\n')
    assert error.message == "unexpected end of the file; expected `then`"
    assert str(error.span) == "r.vigil:1:26"
    assert error.hint is not None and "then review" in error.hint


def test_every_syntax_error_of_a_file_is_reported_with_the_checker_errors() -> None:
    # One syntax error hid every other error of the file (issue 10.19): each item is parsed on its own.
    text = (HEADER + 'define posts = count of "post" by user in the last 1 hour\n'  # lines 1-5
            'rule "one"\n'                                   # 6
            '  when event is "post" and posts > 3\n'         # 7
            '  then block,\n'                                # 8: a trailing comma
            '\n'
            'rule "two" when event.n = 3 then review\n'      # 10: `=` for `==` (and the comma of 8 found here)
            'rule "three"\n'                                 # 11
            '  when event.t > "x"\n'                         # 12: a type error
            '  then flag\n'
            'rule "four" when posts > 1 then label user "x" for secs seconds\n'  # 14
            'test "t"\n  given "post" from user "u"\n  expect allow,\n    rule "one"\n')
    found = [(str(d.span), d.code, d.message) for d in errors_of(text)]
    assert [where for where, _, _ in found] == ["r.vigil:10:1", "r.vigil:10:25", "r.vigil:14:52", "r.vigil:12:18"]
    assert [code for _, code, _ in found] == ["syntax", "syntax", "syntax", "type"]
    assert found[0][2] == "the `,` at the end of line 8 asks for another action, so this `rule` is read as one"
    assert found[1][2].startswith("unexpected `=`") and found[3][2] == "`>` needs a number, got a string"


def test_uses_of_an_item_with_a_syntax_error_are_not_reported_again() -> None:
    # What a broken item declares is known by name: its uses are not "unknown", nor its uses "never used".
    diagnostics = errors_of('entity acct = lower(event.x)\n'
                            'define n = count of "post" by acct where event is "like" in the last 1 hour\n'
                            'list "bad" = ["a",]\n'
                            'define unused_here = event.n\n'
                            'schema "post" { n: number t: }\n'
                            'rule "broken" when then block\n'
                            'rule "r" when n > 1 and acct has label "x" and event.t in list "bad" '
                            'and unused_here > 1 and event.undeclared > 1 then label acct "y"\n'
                            'test "t" given "post" expect rule "broken"\n')
    assert [(d.span.line, d.code) for d in diagnostics] == [(1, "syntax"), (2, "syntax"), (3, "syntax"),
                                                           (5, "syntax"), (6, "syntax")]


def test_unknown_name_did_you_mean() -> None:
    error = only_error('define spam_score = event.n\nrule "r" when spam_scor > 3 then block')
    assert error.message == "unknown name `spam_scor`"
    assert error.hint == "did you mean `spam_score`?"
    assert str(error.span) == "r.vigil:2:15"
    assert error.code == "name"


def test_entity_used_as_a_value() -> None:
    error = only_error(HEADER + 'rule "r" when user > 3 then block')
    assert error.message == "`user` is an entity, not a value"


def test_unknown_entity() -> None:
    error = only_error(HEADER + 'rule "r" when usr has label "x" then block')
    assert error.message == "unknown entity `usr`"
    assert error.hint == "did you mean `user`?"
    assert str(error.span) == "r.vigil:5:15"


@pytest.mark.parametrize(
    "text",
    [
        'rule "r" when count of "post" by account in the last 1 hour > 3 then block',
        'rule "r" when event.n > 3 then label account "x"',
        'rule "r" when event.n > 3 then unlabel account "x"',
        'rule "r" mode rollout 10% by account when event.n > 3 then block',
    ],
)
def test_unknown_entity_everywhere_entities_appear(text: str) -> None:
    error = only_error(text)
    assert error.message == "unknown entity `account`"
    assert error.hint == "declare it: `entity account = event.…`"


def test_unknown_list() -> None:
    diagnostics = errors_of('list "bad" = ["x"]\nrule "r" when event.t contains any of list "bda" then block')
    error = diagnostics[0]
    assert error.message == 'unknown list "bda"'
    assert error.hint == "did you mean `bad`?"
    assert str(error.span) == "r.vigil:2:39"


def test_unknown_function() -> None:
    error = only_error('rule "r" when normalised(event.t) contains "x" then block')
    assert error.message == "unknown function `normalised`"
    assert error.hint == "did you mean `normalized`?"


def test_unknown_function_without_close_match_lists_them() -> None:
    error = only_error('rule "r" when frobnicate(event.t) == "x" then block')
    assert error.hint is not None and error.hint.startswith("functions: age, domain, domains")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("length(event.a, event.b) > 1", "`length` takes 1 argument(s), got 2"),
        ("length() > 1", "`length` takes 1 argument(s), got 0"),
    ],
)
def test_wrong_arity(call: str, message: str) -> None:
    error = only_error(f'rule "r" when {call} then block')
    assert error.message == message
    assert error.code == "arity"


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ('event.t contains "x" and event.t > 3', "`event.t` is a string or list, used here as a number"),
        ('event.t starts with "x" and event.t > 3', "`event.t` is a string, used here as a number"),
        ('event.t > 3 and text == "x"', "`event.t` is a number, used here as a string"),  # define text = event.t
        ('event.t > 3 and text contains "x"', "`contains` looks inside a string or a list, not a number"),
        ('length(3) > "x"', "`>` needs a number, got a string"),
        ('3 == "x"', "comparing a number with a string is never true"),
        ("event.n + 1", "a rule's condition must be true or false, not a number"),
        ('normalized(3) == "x"', "`normalized` needs a string, got a number"),
        ('event.n > 1 and "yes"', "`and`/`or` needs a bool, got a string"),
        ("true in [1]", "`in` needs a text, a number or a list, got true/false"),
        ('length(event.t) contains any of ["a"]', "`contains any of` needs a text or a list, got a number"),
        ('sum of event.t for user in the last 1 hour > 1 and event.t starts with "x"',
         "`event.t` is a number, used here as a string"),
    ],
)
def test_type_mismatch(condition: str, message: str) -> None:
    define = "define text = event.t\n" if "text" in condition else ""
    error = only_error(HEADER + define + f'rule "r" when {condition} then block')
    assert error.message == message
    assert error.code == "type"


_NEVER_AN_ITEM = '`{}(...)` gives {}, and a list `contains` only an item equal to the string: "{}" is never one'


@pytest.mark.parametrize(
    ("condition", "message", "hint"),
    [
        ('sum of event.t for user in the last 1 hour > 1 and event.t contains "x"',
         "`contains` looks inside a string or a list, not a number", "compare a number with ==, < or >"),
        ('length(event.t) contains "1"', "`contains` looks inside a string or a list, not a number",
         "compare a number with ==, < or >"),
        ('true contains "x"', "`contains` looks inside a string or a list, not a bool", "test true/false"),
        ('lower(event.t) contains 5', "a string contains only a string, not a number",
         'write the number as a string, e.g. `contains "42"`'),
        ('event.t contains ["a", "b"]', "`contains` looks for one string or number, not a list",
         "to look for any of several, write `contains any of [...]`"),
        ('urls(event.t) contains ["a"]', "a list holds items equal to a string or a number, not a list",
         "`contains any of [...]`"),
        ('event.n > 1 and event.t starts with "a" and event.t contains event.n',
         "a string contains only a string, not a number", "42"),
        ('urls(event.t) contains "bit.ly"', _NEVER_AN_ITEM.format("urls", "whole URLs as written", "bit.ly"),
         '`urls(...) contains any of ["bit.ly"]`'),
        ('hosts(event.t) contains "https://bit.ly/x"', _NEVER_AN_ITEM.format("hosts", "host names", "https://bit.ly/x"),
         'write "bit.ly"'),
        ('domains(event.t) contains "münchen.de"',
         _NEVER_AN_ITEM.format("domains", "registrable domains", "münchen.de"), 'write "xn--mnchen-3ya.de"'),
        ('domains(event.t) contains "www.bit.ly"',
         _NEVER_AN_ITEM.format("domains", "registrable domains", "www.bit.ly"), 'write "bit.ly"'),
    ],
)
def test_contains_type_errors_the_checker_can_see(condition: str, message: str, hint: str) -> None:
    # Each passed `vigil check` and then dead-lettered or never matched an event (issue 10.11).
    error = only_error(HEADER + f'rule "r" when {condition} then block')
    assert (error.message, error.code) == (message, "type")
    assert error.hint is not None and hint in error.hint


@pytest.mark.parametrize(
    "condition",
    ['urls(event.t) contains "HTTPS://bit.ly/x"', 'urls(event.t) contains "www.x.test"',
     'hosts(event.t) contains "BIT.LY"', 'domains(event.t) contains "xn--mnchen-3ya.de"',
     'hosts(event.t) contains "www.bit.ly"', 'domains(event.t) contains "evil-pills.example"',
     'event.tags contains 3', '[1, 2] contains event.n', 'event.n > 1 and event.tags contains event.n'],
)
def test_contains_items_that_can_match_check(condition: str) -> None:
    ruleset(HEADER + f'rule "r" when {condition} then block')


def test_type_from_schema_conflicts_with_use() -> None:
    error = only_error('schema "post" { n: string }\nrule "r" when event.n > 3 then block')
    assert error.message == "`event.n` is a string, used here as a number"
    assert str(error.span) == "r.vigil:2:15"


def test_unknown_field_when_a_schema_is_declared() -> None:
    error = only_error('schema "post" { text: string  actor.id: string }\n'
                       'rule "r" when event.txt contains "x" then block')
    assert error.message == "unknown field `event.txt`: no schema declares it"
    assert error.hint == "did you mean `text`?"
    assert error.code == "field"
    assert str(error.span) == "r.vigil:2:15"


def test_builtin_fields_need_no_schema() -> None:
    rules = ruleset('schema "post" { text: string }\nrule "r" when event.type == "post" and event.id != "" then flag')
    assert rules.program.rules[0].name == "r"


def test_unknown_schema_field_type() -> None:
    error = only_error('schema "post" { text: strng }\nrule "r" when event.text contains "x" then block')
    assert error.message == "unknown field type `strng`"
    assert error.hint == "did you mean `string`?"


def test_unused_definition_is_a_warning() -> None:
    rules = ruleset('define foo = 1\nrule "r" when event.x > 1 then block')
    assert [(w.severity, w.message, str(w.span), w.code) for w in rules.warnings] == [
        (Severity.WARNING, "definition `foo` is never used", "r.vigil:1:1", "unused")
    ]


def test_unused_list_is_a_warning() -> None:
    rules = ruleset('list "x" = ["a"]\nrule "r" when event.x > 1 then block')
    assert [w.message for w in rules.warnings] == ['list "x" is never used']


def test_duplicate_rule_names() -> None:
    error = only_error('rule "a" when event.x > 1 then block\n\nrule "a" when event.x > 2 then flag')
    assert error.message == 'duplicate rule name "a" (first defined at r.vigil:1:1)'
    assert str(error.span) == "r.vigil:3:1"
    assert error.code == "duplicate"


def test_duplicate_rule_names_across_files() -> None:
    error = only_error('use "b.vigil"\nrule "a" when event.x > 1 then block',
                       {"b.vigil": 'rule "a" when event.x > 2 then flag'})
    assert "duplicate rule name" in error.message
    assert error.span.file in ("r.vigil", "b.vigil")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("define a = 1\ndefine a = 2\nrule \"r\" when a > 1 then block", "duplicate definition `a`"),
        ('list "l" = ["a"]\nlist "l" = ["b"]\nrule "r" when event.t in list "l" then block', "duplicate list `l`"),
        ("entity user = event.u\nentity user = event.v\nrule \"r\" when user has label \"x\" then block",
         "duplicate entity `user`"),
        ("entity user = event.u\ndefine user = 1\nrule \"r\" when user has label \"x\" then block",
         "`user` is already declared as an entity"),
    ],
)
def test_duplicate_declarations(text: str, message: str) -> None:
    assert only_error(text).message.startswith(message)


def test_import_cycle() -> None:
    with pytest.raises(DiagnosticError) as info:
        load_ruleset("a.vigil", files={"a.vigil": 'use "b.vigil"\nrule "r" when event.x > 1 then block',
                                       "b.vigil": '# shared\nuse "a.vigil"\n'})
    [error] = info.value.errors
    assert error.message == "files use each other in a cycle: a.vigil → b.vigil → a.vigil"
    assert str(error.span) == "b.vigil:2:1"
    assert error.code == "cycle"


def test_a_file_used_twice_is_loaded_once() -> None:
    rules = load_ruleset("a.vigil", files={
        "a.vigil": 'use "b.vigil"\nuse "c.vigil"\nrule "r" when x > 1 then block',
        "b.vigil": 'use "c.vigil"\n',
        "c.vigil": "define x = event.n\n",
    })
    assert list(rules.program.defines) == ["x"]


def test_missing_used_file() -> None:
    error = only_error('use "nope.vigil"\nrule "r" when event.x > 1 then block')
    assert error.message.startswith("cannot read rules file nope.vigil")
    assert str(error.span) == "r.vigil:1:1"


def test_definition_cycle() -> None:
    error = only_error('define a = b + 1\ndefine b = a + 1\nrule "r" when a > 1 then block')
    assert error.message == "definitions refer to each other in a cycle: a → b → a"
    assert error.code == "cycle"


def test_self_referencing_definition() -> None:
    error = only_error('define a = a + 1\nrule "r" when a > 1 then block')
    assert error.message == "definitions refer to each other in a cycle: a → a"


def test_invalid_regex() -> None:
    error = only_error('rule "r" when event.t matches /(?<=x)y/ then block')
    assert error.message == "invalid regular expression /(?<=x)y/: invalid perl operator: (?<="
    assert error.hint is not None and "RE2" in error.hint
    assert error.code == "regex"
    assert str(error.span) == "r.vigil:1:15"


def test_bad_severity() -> None:
    error = only_error('rule "r" severity huge when event.x > 1 then block')
    assert error.message == "unknown severity `huge`"
    assert error.hint == "use low, medium, high or critical"
    assert error.span.line == 1


def test_bad_severity_did_you_mean() -> None:
    assert only_error('rule "r" severity hgh when event.x > 1 then block').hint == "did you mean `high`?"


def test_crosses_on_a_non_counter() -> None:
    error = only_error('define n = event.n\nrule "r" when n crosses 3 then block')
    assert error.message == "`crosses` applies to a counter"
    assert str(error.span) == "r.vigil:2:15"


def test_crosses_through_a_definition_is_fine() -> None:
    rules = ruleset(HEADER + 'define posts = count of "post" by user in the last 1 hour\n'
                    'define p = posts\nrule "r" when p crosses 3 then block')
    assert rules.compiled.counters[0].kind == "count"


def test_unreadable_list_file() -> None:
    error = only_error('list "bad" from "lists/missing.txt"\nrule "r" when event.t contains any of list "bad" '
                       'then block')
    assert error.message.startswith('cannot read list "bad" from lists/missing.txt')
    assert error.hint == "the path is relative to the rules file"
    assert str(error.span) == "r.vigil:1:1"


def test_unreadable_list_file_on_disk(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / "r.vigil").write_text('list "bad" from "bad.txt"\nrule "r" when event.t in list "bad" then block')
    (root / "bad.txt").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(DiagnosticError) as info:
        load_ruleset([str(root)])
    [error] = info.value.errors
    assert error.message.startswith('cannot read list "bad"')
    assert error.span.file == str(root / "r.vigil")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('rule "r" mode rollout 0% by user when event.x > 1 then block',
         "a rollout percentage must be between 0 and 100"),
        ('rule "r" mode rollout 150% by user when event.x > 1 then block',
         "a rollout percentage must be between 0 and 100"),
        ('rule "r" when event.x > 1 then block, flag', "a rule can give at most one verdict"),
        ('rule "r" when count of "post" by user in the last 0 seconds > 1 then block',
         "a counter's window is at least 1 second"),
        ('rule "r" when count of "post" by user where (count of "x" by user today > 1) in the last 1 hour > 1 then block',
         "a counter's value or `where` filter cannot use another counter"),
    ],
)
def test_value_errors(text: str, message: str) -> None:
    assert only_error(HEADER + text).message == message


def test_test_errors() -> None:
    diagnostics = errors_of(HEADER + 'rule "r" when event.x > 1 then block\n'
                            'test "t" given "post" from pair "a" expect rule "R", label usr "x"\n'
                            'test "t" given 0 "post" expect block')
    messages = [d.message for d in diagnostics]
    assert messages == [
        'duplicate test name "t"',
        "entity `pair` has 2 key part(s), the test gives 1",
        'no rule named "R"',
        "unknown entity `usr`",
        "a test gives at least one event",
    ]


def test_all_errors_are_reported_at_once_across_files() -> None:
    diagnostics = errors_of(
        'use "b.vigil"\nrule "a" when foo > 1 then block\nrule "b" when normalised(event.t) == "x" then block',
        {"b.vigil": 'rule "c" when bar > 1 then block\nrule "d" when event.t matches /(/ then block\n'
                    'rule "e" severity huge when event.n > 1 then block'},
    )
    located = sorted((str(d.span), d.message.split(":")[0]) for d in diagnostics if d.severity is Severity.ERROR)
    assert located == [
        ("b.vigil:1:15", "unknown name `bar`"),
        ("b.vigil:2:15", "invalid regular expression /(/"),
        ("b.vigil:3:1", "unknown severity `huge`"),
        ("r.vigil:2:15", "unknown name `foo`"),
        ("r.vigil:3:15", "unknown function `normalised`"),
    ]


def test_syntax_errors_in_several_files_are_all_reported() -> None:
    with pytest.raises(DiagnosticError) as info:
        load_ruleset(["a.vigil", "b.vigil"], files={"a.vigil": 'rule "a" when event.x = 1 then block',
                                                    "b.vigil": 'rule "b" when event.x > 1 then'})
    diagnostics = info.value.diagnostics
    assert sorted(d.span.file for d in diagnostics) == ["a.vigil", "b.vigil"]
    assert all(d.code == "syntax" for d in diagnostics)


def test_render_shows_the_line_and_a_caret() -> None:
    with pytest.raises(DiagnosticError) as info:
        ruleset('rule "r"\n  when spam_scor > 3 then block')
    assert str(info.value).splitlines() == [
        "r.vigil:2:8: error: unknown name `spam_scor`",
        "      when spam_scor > 3 then block",
        " " * 11 + "^" * len("spam_scor"),
    ]


def test_error_rules_never_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.dsl import loader

    def fail(*args: object) -> None:
        raise AssertionError("compiled a rules set with errors")

    monkeypatch.setattr(loader, "compile_program", fail)
    with pytest.raises(DiagnosticError):
        load_ruleset("r.vigil", files={"r.vigil": 'rule "r" when foo > 1 then block'})


# ---- nesting: deep expressions are diagnostics, flat chains of any length work (issue 11.8, 11.1) ----

@pytest.mark.parametrize("condition", [
    "not " * 1000 + "event.a == 1",
    "lower(" * 250 + "event.a" + ")" * 250 + ' == "x"',
    "event.score" + " + 1" * 250 + " > 0",
    "(event.a == 1 and (event.b == 1 or " * 20 + "event.c == 1" + "))" * 20,
], ids=["not x1000", "250 nested calls", "250 additions", "alternating and/or"])
def test_deep_nesting_is_a_diagnostic(condition: str) -> None:
    error = only_error(f'rule "deep" when {condition} then flag')
    assert error.code == "nesting"
    assert error.message.startswith('rule "deep": its condition nests ')
    assert "(at most 32" in error.message
    assert str(error.span) in ("r.vigil:1:18", "r.vigil:1:19")  # the condition, inside its parentheses
    assert error.hint is not None and "flat at any length" in error.hint


def test_a_chain_of_definitions_counts_towards_nesting() -> None:
    chain = "\n".join(f"define d{i} = lower(d{i - 1})" for i in range(1, 40))
    error = only_error(f'define d0 = lower(event.a)\n{chain}\nrule "r" when d39 == "x" then flag')
    assert error.code == "nesting"
    assert error.message.startswith("definition `d16` nests 34 levels deep")
    assert str(error.span) == "r.vigil:17:1"


def test_nesting_at_the_limit_compiles_and_runs(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine('rule "r" when ' + "lower(" * 30 + "event.a" + ")" * 30 + ' == "x" then flag\n'
                         'rule "p" when ' + "(" * 300 + "event.b == 1" + ")" * 300 + " then review")
    assert engine.process(event(a="X")).verdict == "flag"
    assert engine.process(event(b=1)).verdict == "review"


def test_a_thousand_term_and_chain_compiles_and_runs(make_engine: Callable[..., Engine]) -> None:
    condition = " and ".join(f"event.a{i} == {i}" for i in range(1000))
    engine = make_engine(f'rule "generated" when {condition} then flag\n'
                         f'rule "or" when {condition.replace(" and ", " or ")} then review')
    fields = {f"a{i}": i for i in range(1000)}
    assert engine.process(event(**fields)).verdict == "review"
    fields["a999"] = 0
    decision = engine.process(event(**fields))
    assert [hit.rule for hit in decision.hits] == ["or"]


def test_python_refusing_the_generated_code_is_a_diagnostic(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backstop behind the nesting limit: were the checker to pass what Python's compiler refuses,
    loading fails with a diagnostic, never the activation."""
    monkeypatch.setattr("vigil.dsl.check.MAX_NESTING", 1000)
    error = only_error('rule "r" when ' + "lower(" * 80 + "event.a" + ")" * 80 + ' == "x" then flag')
    assert error.code == "nesting"
    assert error.message.startswith("the rules compile to Python that Python cannot compile (")
    assert str(error.span) == "r.vigil:1:1"


def test_regex_flags_are_checked_as_they_run(make_engine: Callable[..., Engine]) -> None:
    # /\d+/m passed the checker (compiled without its flags) and failed when activated (issue 11.8)
    engine = make_engine('rule "digits" when event.t matches /^\\d+$/m then flag\n'
                         'rule "word" when event.t matches /\\bpay\\b/mi then review')
    assert engine.process(event(t="hello\n123\nbye")).verdict == "flag"
    assert engine.process(event(t="hello 123")).verdict == "allow"
    assert engine.process(event(t="first\nPay now")).verdict == "review"


@pytest.mark.parametrize("text", [
    'rule "\\ud800" when event.n > 1 then flag',
    'rule "r" when event.n > 1 then label user "bad\\udfff"',
    'rule "r" when event.n > 1 then output "q\\ud800"',
])
def test_a_lone_surrogate_in_a_name_is_refused(text: str) -> None:
    # activated, then every matching event, GET /v1/rules and /metrics failed (issue 11.7)
    error = only_error(HEADER + text)
    assert error.code == "value"
    assert "holds a lone surrogate" in error.message and "\\\\ud" in error.message
    assert error.span.line == 5


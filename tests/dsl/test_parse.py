"""Parsing: rules text → syntax tree with spans, and syntax errors a person can act on."""

from __future__ import annotations

import pytest

from vigil.dsl import ast
from vigil.dsl.parse import parse
from vigil.dsl.unparse import unparse


def parse_ok(text: str) -> ast.Module:
    module, diagnostics = parse(text, "t.vigil")
    assert diagnostics == []
    return module


def condition(text: str) -> ast.Expr:
    rule = parse_ok(f'rule "r" when {text} then block').items[0]
    assert isinstance(rule, ast.Rule)
    return rule.condition


def test_every_declaration_kind() -> None:
    module = parse_ok("""
        # a comment
        use "common.vigil"
        entity user = event.actor.id
        entity pair = (event.a, event.b)
        define n = 1  # trailing comment
        list "p" from "p.txt"
        list "d" of domains from "d.txt"
        list "w" of words = ["a", "b"]
        schema "post" { text: string  actor.id: string }
        rule "r" when n > 0 then block
        test "t" given "post" expect block
    """)
    kinds = [type(item).__name__ for item in module.items]
    assert kinds == ["Use", "EntityDecl", "EntityDecl", "Define", "ListDecl", "ListDecl", "ListDecl", "Schema",
                     "Rule", "Test"]
    use, user, pair, _, p, d, w, schema, _, _ = module.items
    assert isinstance(use, ast.Use) and use.path == "common.vigil"
    assert isinstance(user, ast.EntityDecl) and [f.path for f in user.fields] == [("actor", "id")]
    assert isinstance(pair, ast.EntityDecl) and [f.path for f in pair.fields] == [("a",), ("b",)]
    assert isinstance(p, ast.ListDecl) and (p.kind, p.file, p.items) == ("phrases", "p.txt", ())
    assert isinstance(d, ast.ListDecl) and (d.kind, d.file) == ("domains", "d.txt")
    assert isinstance(w, ast.ListDecl) and (w.kind, w.file, w.items) == ("words", None, ("a", "b"))
    assert isinstance(schema, ast.Schema)
    assert [(f.path, f.type_name) for f in schema.fields] == [(("text",), "string"), (("actor", "id"), "string")]


def test_rule_metadata_and_actions() -> None:
    module = parse_ok('rule "r"\n  description "d" owner "o", severity high mode rollout 25% by user\n'
                      '  when event.n > 1\n  then review, label user "x" for 3 days, unlabel user "y", output "q"')
    rule = module.items[0]
    assert isinstance(rule, ast.Rule)
    assert (rule.description, rule.owner, rule.severity) == ("d", "o", "high")
    assert (rule.mode, rule.rollout_percent, rule.rollout_entity) == ("rollout", 25.0, "user")
    review, label, unlabel, output = rule.actions
    assert review == ast.VerdictAction("review")
    assert isinstance(label, ast.LabelAction) and label.expires_after is not None
    assert (label.entity, label.label, label.expires_after.seconds) == ("user", "x", 3 * 86400)
    assert unlabel == ast.UnlabelAction("user", "y")
    assert output == ast.OutputAction("q")


def test_shadow_mode() -> None:
    rule = parse_ok('rule "r" mode shadow when event.n > 1 then block').items[0]
    assert isinstance(rule, ast.Rule) and rule.mode == "shadow"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1 second", 1), ("30 seconds", 30), ("10 minutes", 600), ("1 hour", 3600), ("2 hours", 7200),
     ("1 day", 86400), ("7 days", 604800), ("1 week", 604800), ("1.5 hours", 5400)],
)
def test_durations(text: str, seconds: float) -> None:
    expr = condition(f"event.n > {text}")
    assert isinstance(expr, ast.Compare) and isinstance(expr.right, ast.Duration)
    assert expr.right.seconds == seconds


def test_string_escapes() -> None:
    expr = condition(r'event.s == "a \"quoted\" \\ word\n"')
    assert isinstance(expr, ast.Compare)
    assert expr.right == ast.String('a "quoted" \\ word\n')


def test_regex_literal_with_slash_and_flags() -> None:
    expr = condition(r"event.t matches /a\/b[0-9]+/is")
    assert expr == ast.Matches(ast.Field(("t",)), "a/b[0-9]+", "is")


def test_precedence_not_and_or() -> None:
    expr = condition("not event.a > 1 and event.b > 1 or event.c > 1")
    assert isinstance(expr, ast.Or) and len(expr.items) == 2
    left = expr.items[0]
    assert isinstance(left, ast.And) and isinstance(left.items[0], ast.Not)


def test_chains_of_and_are_flat() -> None:
    expr = condition("event.a > 1 and event.b > 1 and event.c > 1")
    assert isinstance(expr, ast.And) and len(expr.items) == 3


def test_arithmetic_precedence() -> None:
    expr = condition("event.a + event.b * 2 > 1")
    assert isinstance(expr, ast.Compare) and isinstance(expr.left, ast.Arith)
    assert expr.left.op == "+" and isinstance(expr.left.right, ast.Arith) and expr.left.right.op == "*"


@pytest.mark.parametrize(
    ("text", "kind", "types", "window"),
    [
        ('count of "post" by user in the last 10 minutes', "count", ("post",), 600.0),
        ('count of ["a", "b"] by user today', "count", ("a", "b"), None),
        ("count of events by user in the last 1 day", "count", (), 86400.0),
        ("count distinct event.x for user in the last 1 hour", "distinct", (), 3600.0),
        ("sum of event.x for user where (event.x > 1) in the last 1 hour", "sum", (), 3600.0),
        ('count of "login" by ip where failed in the last 1 hour', "count", ("login",), 3600.0),
    ],
)
def test_counters(text: str, kind: str, types: tuple[str, ...], window: float | None) -> None:
    expr = condition(f"{text} > 3")
    assert isinstance(expr, ast.Compare) and isinstance(expr.left, ast.Counter)
    counter = expr.left
    assert (counter.kind, counter.types, counter.window) == (kind, types, window)


def test_spans_point_at_the_source() -> None:
    module = parse_ok('\n\nrule "r"\n  when event.n > 3 and   event.t contains "x"\n  then block')
    rule = module.items[0]
    assert isinstance(rule, ast.Rule)
    assert str(rule.span) == "t.vigil:3:1"
    assert isinstance(rule.condition, ast.And)
    first, second = rule.condition.items
    assert (first.span.line, first.span.column, first.span.end_column) == (4, 8, 19)
    assert (second.span.line, second.span.column) == (4, 26)


def test_spans_do_not_affect_equality() -> None:
    a = condition("event.n > 3")
    b = condition("  event.n   >   3")
    assert a == b and a.span != b.span


@pytest.mark.parametrize(
    "text",
    [
        'event.n > 3 and (event.t contains "x" or not (event.u starts with "y"))',
        'normalized(event.t) contains any of list "spam"',
        'event.h not in list "d" and event.h in ["a", "b"]',
        "event.x is missing or event.y exists",
        'event is any of ["a", "b"] and user has label "x"',
        'count distinct event.x for user where (event.y > 1) in the last 10 minutes crosses 3',
        'sum of event.amount for user today >= 100',
        "event.t matches /^a+$/i",
        "length(event.t) * 2 - 1 >= 10",
        'event.t ends with "z"',
    ],
)
def test_unparse_round_trips(text: str) -> None:
    expr = condition(text)
    assert condition(unparse(expr)) == expr


# ---- syntax errors ----------------------------------------------------------------------------


def syntax_error(text: str) -> tuple[str, str, str | None]:
    module, diagnostics = parse(text, "t.vigil")
    assert [type(i) for i in module.items][-1:] == [ast.Unparsed]  # the item with the error
    [error] = diagnostics
    assert error.code == "syntax"
    return str(error.span), error.message, error.hint


# Common mistakes and the plain advice each gets: kept as examples so grammar changes cannot break them.
HINT_EXAMPLES = [
    ('rule "r" when event.n = 3 then block', "t.vigil:1:23", "use == to compare"),
    ('rule "r" when event.n > 3 block', "t.vigil:1:27", "a rule's condition ends with `then`"),
    ('rule "r" when event.n > 3', "t.vigil:1:26", "a rule needs `then` and at least one action"),
    ('rule "r"', "t.vigil:1:9", "a rule needs `when CONDITION then ACTIONS`"),
    ('rule "r" "high" when event.n > 3 then block', "t.vigil:1:10", "rule metadata is `severity high`"),
]


_KEY = "an entity's key is a field path (`event.actor.id`), or several in parentheses; "
# Mistakes that left a newcomer stuck with a message about tokens (issue 10.19): each gets a plain message.
NEWCOMER_EXAMPLES = [
    ('entity user = event.user\ndefine likes = count of "like" by user where event is "like" in the last 1 hour',
     "t.vigil:2:52", "a counter's `where` takes a definition's name or a condition in parentheses",
     'write `where (event is "like")`, or `define NAME = event is "like"` and `where NAME`'),
    ('entity user = event.user\ndefine big = sum of event.n for user where event.n > 5 today',
     "t.vigil:2:49", "a counter's `where` takes a definition's name or a condition in parentheses",
     "write `where (event.n > 5)`"),
    ("entity acct = lower(event.x)", "t.vigil:1:15",
     _KEY + "a function such as `lower(...)` cannot be a key",
     "key on the field itself, `entity acct = event.x`, and send the value"),
    ("entity pair = (event.a, lower(event.x))", "t.vigil:1:25",
     _KEY + "a function such as `lower(...)` cannot be a key", "`entity pair = (event.actor.id, event.target.id)`"),
    ('entity acct = "x"', "t.vigil:1:15", _KEY + "an expression cannot be a key", "key on the field itself"),
    ('rule "r" when event.links[0].url == "x" then block', "t.vigil:1:26",
     "`event.links[...]`: fields cannot be indexed", "test a list whole with `contains`"),
    ('rule "r" when urls(event.t)[0] == "x" then block', "t.vigil:1:28",
     "a function's result cannot be indexed with `[...]`", "send the item you need as a field of its own"),
    ('entity user = event.user\nrule "r" when event.n > 1 then label user "x" for secs seconds', "t.vigil:2:51",
     "a duration is a number and a unit, such as `30 seconds` or `7 days`; `secs` is not a number",
     "a definition or a field cannot be a duration"),
    ('entity user = event.user\nrule "r" when count of "p" by user in the last n minutes > 1 then block',
     "t.vigil:2:48", "a duration is a number and a unit, such as `30 seconds` or `7 days`; `n` is not a number",
     "write the number itself"),
]


@pytest.mark.parametrize(("text", "where", "message", "hint"), NEWCOMER_EXAMPLES)
def test_newcomer_mistakes_get_plain_messages(text: str, where: str, message: str, hint: str) -> None:
    span, got_message, got_hint = syntax_error(text)
    assert (span, got_message) == (where, message)
    assert got_hint is not None and hint in got_hint


def test_a_trailing_comma_after_the_last_action_gets_a_hint() -> None:
    _, message, hint = syntax_error('rule "r" when event.n > 3 then block,\n')
    assert message.startswith("unexpected end of the file; expected")
    assert hint == "a `,` after a rule's last action asks for another one: remove it"


@pytest.mark.parametrize(
    ("regex", "pattern"),
    [("/[a/b]/", "[a/b]"), ("/[^/]+$/", "[^/]+$"), ("/[]/]x/", "[]/]x"), ("/a\\/b[/]/i", "a/b[/]"),
     ("/[\\]/]/", "[\\]/]")],
)
def test_a_slash_in_a_character_class_does_not_end_the_regex(regex: str, pattern: str) -> None:
    # `/[a/b]/` ended at the second `/` (issue 10.19)
    expr = condition(f"event.t matches {regex} and event.n > 1")
    assert isinstance(expr, ast.And)
    matches = expr.items[0]
    assert isinstance(matches, ast.Matches) and matches.pattern == pattern


@pytest.mark.parametrize(("text", "where", "hint"), HINT_EXAMPLES)
def test_common_mistakes_get_hints(text: str, where: str, hint: str) -> None:
    span, _, got = syntax_error(text)
    assert span == where
    assert got is not None and got.startswith(hint)


def test_unexpected_character() -> None:
    span, message, _ = syntax_error('rule "r" when event.n > 3 then block ;')
    assert span == "t.vigil:1:38"
    assert message.startswith("unexpected `;`")


def test_expected_tokens_are_described() -> None:
    _, message, _ = syntax_error('rule "r" when event.n > 3 then')
    assert message.startswith("unexpected end of the file; expected")
    assert "a verdict (allow, flag, review, block)" in message
    assert "`label`" in message


def test_unterminated_string() -> None:
    span, message, _ = syntax_error('rule "r when event.n > 3 then block')
    assert span == "t.vigil:1:6"
    assert message.startswith('unexpected `"`')


def test_bad_escape_is_a_clean_error() -> None:
    module, diagnostics = parse(r'rule "r" when event.t == "\N{nope}" then block', "t.vigil")
    assert [type(i) for i in module.items] == [ast.Unparsed]
    assert diagnostics[0].message.startswith("invalid literal")
    assert str(diagnostics[0].span) == "t.vigil:1:26"


@pytest.mark.parametrize(
    "literal", ["9" * 400, "1" + "0" * 16, "9" * 400 + " seconds", "1" + "0" * 309 + ".5"],
)
def test_numbers_too_large_are_clean_errors(literal: str) -> None:
    # 1e400 would become infinity, which compiles to the undefined name `inf`
    module, diagnostics = parse(f'rule "r"\n  when event.n > {literal} then block', "t.vigil")
    assert [type(i) for i in module.items] == [ast.Unparsed]
    assert diagnostics[0].message.startswith("invalid literal: the number")
    assert "is too large" in diagnostics[0].message
    assert str(diagnostics[0].span) == "t.vigil:2:18"


def test_large_numbers_within_bounds_work() -> None:
    expr = condition("event.n > 1000000000000000")
    assert isinstance(expr, ast.Compare) and expr.right == ast.Number(1e15)


def test_empty_file_is_an_empty_module() -> None:
    assert parse_ok("  # nothing here\n").items == ()

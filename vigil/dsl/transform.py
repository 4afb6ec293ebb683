"""Parse tree → syntax tree (vigil.dsl.ast). Only shapes change here; meaning is checked in check.py."""

from __future__ import annotations

import ast as python_ast
import dataclasses
from typing import Any

from lark import Token, v_args
from lark.tree import Meta
from lark.visitors import Transformer_NonRecursive

from vigil.diagnostics import Span
from vigil.dsl import ast

UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}


def string_value(token: Token) -> str:
    """Decode a string literal: double quotes, backslash escapes as in JSON/Python."""
    value = python_ast.literal_eval(str(token))
    assert isinstance(value, str)  # the STRING terminal only matches string literals
    return value


# Numbers beyond this are refused: they would turn into infinity (and `inf` is no Python literal).
MAX_NUMBER = 1e15


def number_value(token: Token) -> float:
    value = float(token)
    if value > MAX_NUMBER:
        raise ValueError(f"the number {str(token)[:20]}… is too large (at most {MAX_NUMBER:.0e})")
    return value


def _gather_output_args(items: list[Any]) -> tuple[tuple[ast.Action, ...], tuple[ast.OutputArg, ...]]:
    """The grammar lists an output's arguments beside the actions; each belongs to the output it follows
    directly. One that follows no output (a verdict or a label came between) is returned as stray."""
    actions: list[ast.Action] = []
    stray: list[ast.OutputArg] = []
    for item in items:
        if not isinstance(item, ast.OutputArg):
            actions.append(item)
        elif actions and isinstance(actions[-1], ast.OutputAction):
            last = actions[-1]
            actions[-1] = ast.OutputAction(last.name, dataclasses.replace(
                last.span, end_line=item.span.end_line, end_column=item.span.end_column), (*last.args, item))
        else:
            stray.append(item)
    return tuple(actions), tuple(stray)


@v_args(meta=True)
class ToAst(Transformer_NonRecursive[Token, ast.Module]):
    # Non-recursive: an `and` chain of a thousand terms (what generated rules look like) or a deeply
    # nested expression must reach the checker, which reports what is too deep, not a RecursionError.
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def _span(self, meta: Meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.path, 0, 0)
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tok_span(self, token: Token) -> Span:
        return Span(self.path, token.line or 0, token.column or 0, token.end_line or 0, token.end_column or 0)

    # ---- module & declarations ----
    def start(self, meta: Meta, items: list[ast.Item]) -> ast.Module:
        return ast.Module(self.path, tuple(items))

    def use(self, meta: Meta, c: list[Token]) -> ast.Use:
        return ast.Use(string_value(c[0]), self._span(meta))

    def single_key(self, meta: Meta, c: list[ast.Field]) -> tuple[ast.Field, ...]:
        return (c[0],)

    def composite_key(self, meta: Meta, c: list[ast.Field]) -> tuple[ast.Field, ...]:
        return tuple(c)

    def entity_decl(self, meta: Meta, c: list[Any]) -> ast.EntityDecl:
        return ast.EntityDecl(str(c[0]), c[1], self._span(meta))

    def define(self, meta: Meta, c: list[Any]) -> ast.Define:
        return ast.Define(str(c[0]), c[1], self._span(meta))

    def list_kind(self, meta: Meta, c: list[Token]) -> str:
        return str(c[0])

    def list_file(self, meta: Meta, c: list[Any]) -> ast.ListDecl:
        name, rest = string_value(c[0]), c[1:]
        kind = rest.pop(0) if len(rest) == 2 else "phrases"
        return ast.ListDecl(name, kind, string_value(rest[0]), (), self._span(meta))

    def list_inline(self, meta: Meta, c: list[Any]) -> ast.ListDecl:
        name, rest = string_value(c[0]), c[1:]
        kind = rest.pop(0) if len(rest) == 2 else "phrases"
        items = tuple(str(i.value) for i in rest[0].items if isinstance(i, ast.String))
        return ast.ListDecl(name, kind, None, items, self._span(meta))

    def field_type(self, meta: Meta, c: list[Any]) -> ast.FieldType:
        return ast.FieldType(c[0], str(c[1]), self._span(meta))

    def schema_decl(self, meta: Meta, c: list[Any]) -> ast.Schema:
        return ast.Schema(string_value(c[0]), tuple(c[1:]), self._span(meta))

    # ---- rules ----
    def description(self, meta: Meta, c: list[Token]) -> tuple[str, Any]:
        return ("description", string_value(c[0]))

    def owner(self, meta: Meta, c: list[Token]) -> tuple[str, Any]:
        return ("owner", string_value(c[0]))

    def severity(self, meta: Meta, c: list[Token]) -> tuple[str, Any]:
        return ("severity", (str(c[0]), self._tok_span(c[0])))

    def mode_fixed(self, meta: Meta, c: list[Token]) -> tuple[str, Any]:
        return ("mode", (str(c[0]), 100.0, None))

    def mode_rollout(self, meta: Meta, c: list[Token]) -> tuple[str, Any]:
        return ("mode", ("rollout", number_value(c[0]), str(c[1])))

    def verdict_action(self, meta: Meta, c: list[Token]) -> ast.VerdictAction:
        return ast.VerdictAction(str(c[0]), self._span(meta))

    def label_action(self, meta: Meta, c: list[Any]) -> ast.LabelAction:
        expiry = c[2] if len(c) > 2 else None
        return ast.LabelAction(str(c[0]), string_value(c[1]), expiry, self._span(meta))

    def unlabel_action(self, meta: Meta, c: list[Any]) -> ast.UnlabelAction:
        return ast.UnlabelAction(str(c[0]), string_value(c[1]), self._span(meta))

    def output_action(self, meta: Meta, c: list[Any]) -> ast.OutputAction:
        args = (c[1],) if len(c) > 1 and c[1] is not None else ()
        return ast.OutputAction(string_value(c[0]), self._span(meta), args)

    def output_subject(self, meta: Meta, c: list[Token]) -> ast.OutputArg:
        return ast.OutputArg(None, None, str(c[0]), self._span(meta))

    def output_param(self, meta: Meta, c: list[Any]) -> ast.OutputArg:
        return ast.OutputArg(str(c[0]), c[1], None, self._span(meta))

    def output_unnamed(self, meta: Meta, c: list[Any]) -> ast.OutputArg:
        return ast.OutputArg(None, c[0], None, self._span(meta))

    def rule(self, meta: Meta, c: list[Any]) -> ast.Rule:
        name = string_value(c[0])
        meta_items = [x for x in c[1:] if isinstance(x, tuple)]
        rest = [x for x in c[1:] if not isinstance(x, tuple)]
        condition = rest[0]
        actions, stray = _gather_output_args(rest[1:])
        fields: dict[str, Any] = {}
        for key, value in meta_items:
            if key == "severity":
                fields["severity"] = value[0]
            elif key == "mode":
                fields["mode"], fields["rollout_percent"], fields["rollout_entity"] = value
            else:
                fields[key] = value
        return ast.Rule(name, condition, actions, span=self._span(meta), stray_args=stray, **fields)

    # ---- tests ----
    def from_opt(self, meta: Meta, c: list[Token]) -> tuple[str, Any]:
        return ("from", (str(c[0]), tuple(string_value(t) for t in c[1:])))

    def within_opt(self, meta: Meta, c: list[Any]) -> tuple[str, Any]:
        return ("within", c[0])

    def after_opt(self, meta: Meta, c: list[Any]) -> tuple[str, Any]:
        return ("after", c[0])

    def assignment(self, meta: Meta, c: list[Any]) -> tuple[tuple[str, ...], ast.Literal]:
        return (c[0], c[1])

    def with_opt(self, meta: Meta, c: list[Any]) -> tuple[str, Any]:
        return ("with", tuple(c))

    def given(self, meta: Meta, c: list[Any]) -> ast.Given:
        count = 1
        if isinstance(c[0], Token) and c[0].type == "NUMBER":
            text = str(c.pop(0))
            count = int(text) if text.isdigit() else int(float(text))  # int(): exact, however large
        event_type = string_value(c[0])
        opts: dict[str, Any] = dict(x for x in c[1:] if isinstance(x, tuple))
        entity, keys = opts.get("from", (None, ()))
        return ast.Given(
            count, event_type, entity, keys, opts.get("within"), opts.get("after"),
            opts.get("with", ()), self._span(meta),
        )

    def expect_verdict(self, meta: Meta, c: list[Token]) -> ast.Expectation:
        return ast.Expectation("verdict", str(c[0]), span=self._span(meta))

    def expect_label(self, meta: Meta, c: list[Token]) -> ast.Expectation:
        return ast.Expectation("label", string_value(c[1]), str(c[0]), self._span(meta))

    def expect_no_label(self, meta: Meta, c: list[Token]) -> ast.Expectation:
        return ast.Expectation("no_label", string_value(c[1]), str(c[0]), self._span(meta))

    def expect_rule(self, meta: Meta, c: list[Token]) -> ast.Expectation:
        return ast.Expectation("rule", string_value(c[0]), span=self._span(meta))

    def expect_no_rule(self, meta: Meta, c: list[Token]) -> ast.Expectation:
        return ast.Expectation("no_rule", string_value(c[0]), span=self._span(meta))

    def expect_output(self, meta: Meta, c: list[Token]) -> ast.Expectation:
        return ast.Expectation("output", string_value(c[0]), span=self._span(meta))

    def test(self, meta: Meta, c: list[Any]) -> ast.Test:
        givens = tuple(x for x in c[1:] if isinstance(x, ast.Given))
        expectations = tuple(x for x in c[1:] if isinstance(x, ast.Expectation))
        start = next((x[1] for x in c[1:] if isinstance(x, tuple) and x[0] == "start"), None)
        return ast.Test(string_value(c[0]), givens, expectations, self._span(meta), start)

    def start_opt(self, meta: Meta, c: list[Token]) -> tuple[str, str]:
        return ("start", string_value(c[0]))

    # ---- expressions ----
    def or_(self, meta: Meta, c: list[Any]) -> ast.Or:
        items = [*c[0].items] if isinstance(c[0], ast.Or) else [c[0]]
        return ast.Or(tuple(items + [c[1]]), self._span(meta))

    def and_(self, meta: Meta, c: list[Any]) -> ast.And:
        items = [*c[0].items] if isinstance(c[0], ast.And) else [c[0]]
        return ast.And(tuple(items + [c[1]]), self._span(meta))

    def not_(self, meta: Meta, c: list[Any]) -> ast.Not:
        return ast.Not(c[0], self._span(meta))

    def compare(self, meta: Meta, c: list[Any]) -> ast.Compare:
        return ast.Compare(str(c[1]), c[0], c[2], self._span(meta))

    def crosses(self, meta: Meta, c: list[Any]) -> ast.Crosses:
        return ast.Crosses(c[0], c[1], self._span(meta))

    def contains(self, meta: Meta, c: list[Any]) -> ast.TextOp:
        return ast.TextOp("contains", c[0], c[1], self._span(meta))

    def starts_with(self, meta: Meta, c: list[Any]) -> ast.TextOp:
        return ast.TextOp("starts_with", c[0], c[1], self._span(meta))

    def ends_with(self, meta: Meta, c: list[Any]) -> ast.TextOp:
        return ast.TextOp("ends_with", c[0], c[1], self._span(meta))

    def contains_any(self, meta: Meta, c: list[Any]) -> ast.ContainsAny:
        return ast.ContainsAny(c[0], c[1], self._span(meta))

    def matches(self, meta: Meta, c: list[Any]) -> ast.Matches:
        text = str(c[1])
        end = text.rindex("/")
        return ast.Matches(c[0], text[1:end].replace("\\/", "/"), text[end + 1 :], self._span(meta))

    def in_(self, meta: Meta, c: list[Any]) -> ast.In:
        return ast.In(c[0], c[1], False, self._span(meta))

    def not_in(self, meta: Meta, c: list[Any]) -> ast.In:
        return ast.In(c[0], c[1], True, self._span(meta))

    def is_missing(self, meta: Meta, c: list[Any]) -> ast.Missing:
        return ast.Missing(c[0], False, self._span(meta))

    def exists(self, meta: Meta, c: list[Any]) -> ast.Missing:
        return ast.Missing(c[0], True, self._span(meta))

    def event_is(self, meta: Meta, c: list[Token]) -> ast.EventIs:
        return ast.EventIs((string_value(c[0]),), self._span(meta))

    def event_is_any(self, meta: Meta, c: list[Any]) -> ast.EventIs:
        return ast.EventIs(tuple(str(i.value) for i in c[0].items), self._span(meta))

    def has_label(self, meta: Meta, c: list[Token]) -> ast.HasLabel:
        return ast.HasLabel(str(c[0]), string_value(c[1]), self._span(meta))

    def has_manual_label(self, meta: Meta, c: list[Token]) -> ast.HasLabel:
        return ast.HasLabel(str(c[0]), string_value(c[1]), self._span(meta), manual=True)

    def matches_bank(self, meta: Meta, c: list[Any]) -> ast.BankMatch:
        within = int(number_value(c[2])) if len(c) > 2 and c[2] is not None else None
        return ast.BankMatch(c[0], string_value(c[1]), within, self._span(meta))

    def policy_finds(self, meta: Meta, c: list[Any]) -> ast.PolicyFinds:
        return ast.PolicyFinds(string_value(c[0]), c[1], self._span(meta))

    def rule_fired(self, meta: Meta, c: list[Token]) -> ast.RuleFired:
        return ast.RuleFired(string_value(c[0]), self._span(meta))

    def verdict_is(self, meta: Meta, c: list[Token]) -> ast.VerdictIs:
        return ast.VerdictIs(str(c[0]), self._span(meta))

    def query_where(self, meta: Meta, c: list[Any]) -> ast.Query:
        return ast.Query(c[0], None, self._span(meta))

    def query_top(self, meta: Meta, c: list[Any]) -> ast.Query:
        return ast.Query(c[1] if len(c) > 1 else None, c[0], self._span(meta))

    def classifier_score(self, meta: Meta, c: list[Any]) -> ast.ClassifierCall:
        return ast.ClassifierCall(string_value(c[0]), c[1], "score", self._span(meta))

    def classifier_label(self, meta: Meta, c: list[Any]) -> ast.ClassifierCall:
        return ast.ClassifierCall(string_value(c[0]), c[1], "label", self._span(meta))

    def coll_literal(self, meta: Meta, c: list[Any]) -> ast.ListLit:
        return c[0]  # type: ignore[no-any-return]

    def coll_named(self, meta: Meta, c: list[Token]) -> ast.ListRef:
        return ast.ListRef(string_value(c[0]), self._span(meta))

    def arith(self, meta: Meta, c: list[Any]) -> ast.Arith:
        return ast.Arith(str(c[1]), c[0], c[2], self._span(meta))

    def name_ref(self, meta: Meta, c: list[Token]) -> ast.NameRef:
        return ast.NameRef(str(c[0]), self._span(meta))

    def call(self, meta: Meta, c: list[Any]) -> ast.Call:
        args = tuple(a for a in c[1:] if a is not None)
        return ast.Call(str(c[0]), args, self._span(meta))

    def literal(self, meta: Meta, c: list[Any]) -> Any:
        return c[0]

    def number(self, meta: Meta, c: list[Token]) -> ast.Number:
        return ast.Number(number_value(c[0]), self._span(meta))

    def string(self, meta: Meta, c: list[Token]) -> ast.String:
        return ast.String(string_value(c[0]), self._span(meta))

    def true(self, meta: Meta, c: list[Any]) -> ast.Bool:
        return ast.Bool(True, self._span(meta))

    def false(self, meta: Meta, c: list[Any]) -> ast.Bool:
        return ast.Bool(False, self._span(meta))

    def list_lit(self, meta: Meta, c: list[Any]) -> ast.ListLit:
        return ast.ListLit(tuple(x for x in c if x is not None), self._span(meta))

    def duration(self, meta: Meta, c: list[Token]) -> ast.Duration:
        unit = str(c[1]).rstrip("s")
        amount = number_value(c[0])
        return ast.Duration(amount * UNIT_SECONDS[unit], f"{c[0]} {c[1]}", self._span(meta))

    def field(self, meta: Meta, c: list[Token]) -> ast.Field:
        return ast.Field(tuple(str(t) for t in c), self._span(meta))

    def dotted(self, meta: Meta, c: list[Token]) -> tuple[str, ...]:
        return tuple(str(t) for t in c)

    # ---- counters ----
    def sliding_window(self, meta: Meta, c: list[ast.Duration]) -> tuple[float | None, str]:
        return (c[0].seconds, f"in the last {c[0].text}")

    def day_window(self, meta: Meta, c: list[Any]) -> tuple[float | None, str]:
        return (None, "today")

    def _counter(self, meta: Meta, kind: str, types: tuple[str, ...], value: Any, c: list[Any]) -> ast.Counter:
        entity = str(c[0])
        where = None
        if len(c) == 3:
            where = c[1] if not isinstance(c[1], Token) else ast.NameRef(str(c[1]), self._tok_span(c[1]))
        window, window_text = c[-1]
        return ast.Counter(kind, types, value, entity, where, window, window_text, self._span(meta))

    def count_events(self, meta: Meta, c: list[Any]) -> ast.Counter:
        first = c[0]
        types = (string_value(first),) if isinstance(first, Token) else tuple(str(i.value) for i in first.items)
        return self._counter(meta, "count", types, None, c[1:])

    def count_all(self, meta: Meta, c: list[Any]) -> ast.Counter:
        return self._counter(meta, "count", (), None, c)

    def count_distinct(self, meta: Meta, c: list[Any]) -> ast.Counter:
        return self._counter(meta, "distinct", (), c[0], c[1:])

    def sum_values(self, meta: Meta, c: list[Any]) -> ast.Counter:
        return self._counter(meta, "sum", (), c[0], c[1:])

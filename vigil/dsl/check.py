"""Static checks over a whole rules set: names, types, schemas, cycles. Every problem, at once.

The checker produces a `Program`: the declarations of every file merged into one namespace with the
type of each definition, ready for compile.py. A rules set with any error is never compiled.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import re2

from vigil.diagnostics import Diagnostic, Severity, Span
from vigil.dsl import ast
from vigil.dsl.builtins import ANY, BOOL, LIST, NUMBER, STRING, Functions, builtin_functions
from vigil.dsl.depth import MAX_NESTING, definition_order, expression_depth, references
from vigil.dsl.runtime import FieldTypeError, compile_regex, parse_time
from vigil.signals import text as text_signals

# What a field is known to be from how rules use it when one use admits two types: the left of `contains`
# (a string or a list) and the item `contains` looks for in a list (a string or a number). A later use of
# the field narrows it to one of the two.
STRING_OR_LIST, STRING_OR_NUMBER = "string or list", "string or number"
_UNIONS = {STRING_OR_LIST: frozenset((STRING, LIST)), STRING_OR_NUMBER: frozenset((STRING, NUMBER))}
# Functions whose list holds URLs or host names, whose items a `contains` literal can be checked against.
_URL_LISTS = {"urls": "whole URLs as written", "hosts": "host names", "domains": "registrable domains"}
SEVERITIES = ("low", "medium", "high", "critical")
SCHEMA_TYPES = {"string": STRING, "number": NUMBER, "bool": BOOL, "list": LIST, "timestamp": ANY, "any": ANY}
# Fields every event has, whatever its schema.
BUILTIN_FIELDS: dict[tuple[str, ...], str] = {("type",): STRING, ("id",): STRING, ("time",): NUMBER}
# What the tests of one rules set may ask for, so no rules text (an upload too) can exhaust the service.
MAX_GIVEN_EVENTS = 10_000
MAX_TEST_EVENTS = 100_000


_Decl = TypeVar("_Decl", ast.EntityDecl, ast.Define, ast.ListDecl, ast.Schema)


@dataclass(slots=True)
class Program:
    """A checked rules set: every declaration by name, with the inferred type of each definition."""

    entities: dict[str, ast.EntityDecl] = field(default_factory=dict)
    defines: dict[str, ast.Define] = field(default_factory=dict)
    define_types: dict[str, str] = field(default_factory=dict)
    lists: dict[str, ast.ListDecl] = field(default_factory=dict)
    schemas: dict[str, ast.Schema] = field(default_factory=dict)
    rules: list[ast.Rule] = field(default_factory=list)
    tests: list[ast.Test] = field(default_factory=list)
    # The type each field path must have, from schemas and from how rules use it.
    field_types: dict[tuple[str, ...], str] = field(default_factory=dict)
    # The functions the rules were checked against: the compiler and the engine use the same ones.
    functions: Functions = field(default_factory=builtin_functions)


def _did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


class Checker:
    def __init__(self, functions: Functions | None = None) -> None:
        self.program = Program(functions=functions if functions is not None else builtin_functions())
        self.functions = self.program.functions
        self.diagnostics: list[Diagnostic] = []
        self._used_defines: set[str] = set()
        self._used_lists: set[str] = set()
        self._define_stack: list[str] = []
        self._too_deep: set[int] = set()  # id() of rules whose condition nests too deeply to check
        # What items with a syntax error would have declared, by kind: their uses are not reported unknown.
        self._unparsed: dict[str, set[str]] = {}

    # ---- reporting ----
    def error(self, message: str, span: Span, hint: str | None = None, code: str = "error") -> None:
        self.diagnostics.append(Diagnostic(message, span, Severity.ERROR, hint, code))

    def warning(self, message: str, span: Span, hint: str | None = None, code: str = "warning") -> None:
        self.diagnostics.append(Diagnostic(message, span, Severity.WARNING, hint, code))

    # ---- entry point ----
    def check(self, modules: list[ast.Module]) -> Program:
        self._collect(modules)
        self._limit_nesting()
        for name, define in self.program.defines.items():
            self._define_type(name, define.span)
        for rule in self.program.rules:
            self._check_rule(rule)
        total_events = 0
        for test in self.program.tests:
            self._check_test(test)
            total_events += sum(min(g.count, MAX_GIVEN_EVENTS + 1) for g in test.givens)
            if total_events > MAX_TEST_EVENTS:
                self.error(f"the tests of this rules set give more than {MAX_TEST_EVENTS:,} events in all",
                           test.span, "test each threshold with a few events more and fewer than it", code="value")
                break
        if self._unparsed:  # an item that did not parse may be what uses them
            return self.program
        for name, define in self.program.defines.items():
            if name not in self._used_defines:
                self.warning(f"definition `{name}` is never used", define.span,
                             "remove it, or use it in a rule", code="unused")
        for name, decl in self.program.lists.items():
            if name not in self._used_lists:
                self.warning(f'list "{name}" is never used', decl.span, code="unused")
        return self.program

    def _collect(self, modules: list[ast.Module]) -> None:
        p = self.program
        seen_rules: dict[str, ast.Rule] = {}
        seen_tests: dict[str, ast.Test] = {}
        for module in modules:
            for item in module.items:
                if isinstance(item, ast.EntityDecl):
                    self._declare(p.entities, item.name, item, "entity")
                elif isinstance(item, ast.Define):
                    if item.name in p.entities:
                        self.error(f"`{item.name}` is already declared as an entity", item.span, code="duplicate")
                    else:
                        self._declare(p.defines, item.name, item, "definition")
                elif isinstance(item, ast.ListDecl):
                    self._declare(p.lists, item.name, item, "list")
                elif isinstance(item, ast.Schema):
                    self._declare(p.schemas, item.event_type, item, "schema for event type")
                    for ft in item.fields:
                        if ft.type_name not in SCHEMA_TYPES:
                            self.error(f"unknown field type `{ft.type_name}`", ft.span,
                                       _did_you_mean(ft.type_name, SCHEMA_TYPES) or
                                       "use one of: " + ", ".join(SCHEMA_TYPES), code="type")
                            p.field_types[ft.path] = ANY  # declared all the same: no second error where it is used
                        else:
                            p.field_types[ft.path] = SCHEMA_TYPES[ft.type_name]
                elif isinstance(item, ast.Rule):
                    if item.name in seen_rules:
                        first = seen_rules[item.name].span
                        self.error(f'duplicate rule name "{item.name}" (first defined at {first})', item.span,
                                   "rule names identify rules in decisions and metrics; make them unique",
                                   code="duplicate")
                    else:
                        seen_rules[item.name] = item
                        p.rules.append(item)
                elif isinstance(item, ast.Unparsed):
                    self._unparsed.setdefault(item.kind, set()).add(item.name)
                elif isinstance(item, ast.Test):
                    if item.name in seen_tests:
                        self.error(f'duplicate test name "{item.name}"', item.span, code="duplicate")
                    seen_tests[item.name] = item
                    p.tests.append(item)
        for entity in p.entities.values():
            for f in entity.fields:
                self._field(f)

    def _declare(self, table: dict[str, _Decl], name: str, item: _Decl, what: str) -> None:
        if name in table:
            first = table[name].span
            self.error(f"duplicate {what} `{name}` (first declared at {first})", item.span,
                       code="duplicate")
        else:
            table[name] = item

    def _limit_nesting(self) -> None:
        """Report definition cycles and expressions nested more than MAX_NESTING levels, before the
        recursive checks (and the compiler) see them; what is reported here is typed `any` and skipped."""
        p = self.program
        order, cycles = definition_order(p.defines, children)
        for cycle in cycles:
            self.error(f"definitions refer to each other in a cycle: {' → '.join(cycle)}",
                       p.defines[cycle[0]].span, code="cycle")
            p.define_types.update(dict.fromkeys(cycle, ANY))
        depths: dict[str, int] = {}
        hint = ("a chain of `and` or `or` is flat at any length; nest calls, `not`, arithmetic and "
                "definitions less deeply")
        poisoned: set[str] = set()  # in a cycle or too deep, or using one: reported once, typed `any`
        for name in order:
            if p.define_types.get(name) == ANY or poisoned.intersection(references(p.defines[name].expr,
                                                                                 children)):
                p.define_types[name] = ANY
                poisoned.add(name)
                depths[name] = 0
                continue
            depth = expression_depth(p.defines[name].expr, lambda n: depths.get(n, 0), children)
            if depth > MAX_NESTING:
                self.error(f"definition `{name}` nests {depth} levels deep (at most {MAX_NESTING}, "
                           "counting the definitions it uses)", p.defines[name].span, hint, code="nesting")
                p.define_types[name] = ANY
                poisoned.add(name)
                depth = 0  # reported once, here: not again for each rule that uses it
            depths[name] = depth
        for name in poisoned:  # not checked, so their references count as uses: no "never used" warnings
            self._used_defines.update(references(p.defines[name].expr, children))
        for rule in p.rules:
            depth = expression_depth(rule.condition, lambda n: depths.get(n, 0), children)
            if depth > MAX_NESTING:
                self.error(f"rule \"{rule.name}\": its condition nests {depth} levels deep (at most "
                           f"{MAX_NESTING}, counting the definitions it uses)", rule.condition.span, hint,
                           code="nesting")
                self._too_deep.add(id(rule))
                self._used_defines.update(references(rule.condition, children))
            for action in rule.actions:
                for name, value in action.params if isinstance(action, ast.OutputAction) else ():
                    depth = expression_depth(value, lambda n: depths.get(n, 0), children)
                    if depth > MAX_NESTING:
                        self.error(f"output parameter `{name}` nests {depth} levels deep (at most "
                                   f"{MAX_NESTING}, counting the definitions it uses)", value.span, hint,
                                   code="nesting")
                        self._too_deep.add(id(value))
                        self._used_defines.update(references(value, children))

    # ---- rules & tests ----
    def _plain_text(self, name: str, what: str, span: Span) -> None:
        """A name that goes into decisions, metrics and stores must be valid Unicode: a lone surrogate
        (`"\\ud800"`) cannot be encoded as UTF-8, so every response naming it would fail."""
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            self.error(f"the {what} {name.encode('utf-8', 'backslashreplace').decode()!r} holds a lone "
                       "surrogate, which is not text", span,
                       "write the character itself (\\u escapes of surrogate halves are not joined)",
                       code="value")

    def _check_rule(self, rule: ast.Rule) -> None:
        self._plain_text(rule.name, "rule name", rule.span)
        for action in rule.actions:
            if isinstance(action, (ast.LabelAction, ast.UnlabelAction)):
                self._plain_text(action.label, "label name", action.span)
            elif isinstance(action, ast.OutputAction):
                self._plain_text(action.name, "output name", action.span)
                self._check_output(action)
        for arg in rule.stray_args:
            what = f"`{arg.name} = …`" if arg.name is not None else "`subject …`" if arg.subject else "this value"
            self.error(f"{what} is an output's argument, but no output comes directly before it", arg.span,
                       'write an output\'s arguments right after its `with`, before the next action: '
                       '`output "redact" with subject user, reason = "scam", label user "scammer"`',
                       code="output")
        cond_type = ANY if id(rule) in self._too_deep else self.expr(rule.condition)
        if cond_type not in (BOOL, ANY):
            self.error(f"a rule's condition must be true or false, not a {cond_type}", rule.condition.span,
                       "compare it, e.g. `... > 10`", code="type")
        if rule.severity not in SEVERITIES:
            self.error(f"unknown severity `{rule.severity}`", rule.span,
                       _did_you_mean(rule.severity, SEVERITIES) or "use low, medium, high or critical", code="name")
        if rule.mode == "rollout":
            if not 0 < rule.rollout_percent <= 100:
                self.error("a rollout percentage must be between 0 and 100", rule.span, code="value")
            if rule.rollout_entity is not None:
                self._entity(rule.rollout_entity, rule.span)
        verdicts = [a for a in rule.actions if isinstance(a, ast.VerdictAction)]
        if len(verdicts) > 1:
            self.error("a rule can give at most one verdict", verdicts[1].span, code="value")
        for action in rule.actions:
            if isinstance(action, (ast.LabelAction, ast.UnlabelAction)):
                self._entity(action.entity, action.span)

    def _check_output(self, action: ast.OutputAction) -> None:
        """An output's arguments: one subject (a declared entity), named parameters with JSON-able values
        known when the rule fires (no policy model: its answer comes in the second stage)."""
        form = f'`output "{action.name}" with subject user, reason = "scam", id = event.id`'
        subjects = [a for a in action.args if a.subject is not None]
        for extra in subjects[1:]:
            self.error(f'output "{action.name}" has more than one subject', extra.span,
                       "an output is about one entity; send a second output for another", code="output")
        if subjects:
            self._entity(subjects[0].subject or "", subjects[0].span)
        seen: set[str] = set()
        for arg in action.args:
            if arg.value is None:
                continue
            if arg.name is None:
                self.error(self._unnamed(action.name, arg.value), arg.span,
                           f"an output's arguments are `subject ENTITY` and `name = value`, e.g. {form}",
                           code="output")
                continue
            if arg.name in seen:
                self.error(f'output "{action.name}" has two parameters named `{arg.name}`', arg.span,
                           "give each parameter its own name, or pass a list", code="duplicate")
            seen.add(arg.name)
            if id(arg.value) in self._too_deep:
                continue
            self.expr(arg.value)
            if any(isinstance(node, ast.PolicyFinds) for node in self._expanded(arg.value)):
                self.error(f"output parameter `{arg.name}` asks a policy model, whose answer comes later",
                           arg.value.span, "test the policy in the rule's condition; pass values known at once",
                           code="output")

    def _unnamed(self, output: str, value: ast.Expr) -> str:
        """What to say of a value written without a name, with the named form it likely meant."""
        if isinstance(value, ast.Field):
            return (f'output "{output}": a parameter needs a name: write `{value.path[-1]} = event.{value.dotted}`,'
                    f" not `event.{value.dotted}`")
        return f'output "{output}": a parameter needs a name, e.g. `reason = …`'

    def _expanded(self, e: ast.Expr) -> Iterator[ast.Expr]:
        """`e` and every node below it, through the definitions it names."""
        stack, seen = [e], set()
        while stack:
            node = stack.pop()
            yield node
            if isinstance(node, ast.NameRef) and node.name in self.program.defines and node.name not in seen:
                seen.add(node.name)
                stack.append(self.program.defines[node.name].expr)
            stack.extend(children(node))

    def _check_test(self, test: ast.Test) -> None:
        for given in test.givens:
            if given.entity is not None:
                decl = self._entity(given.entity, given.span)
                if decl is not None and len(decl.fields) != len(given.keys):
                    self.error(f"entity `{given.entity}` has {len(decl.fields)} key part(s), "
                               f"the test gives {len(given.keys)}", given.span, code="value")
            if given.count < 1:
                self.error("a test gives at least one event", given.span, code="value")
            elif given.count > MAX_GIVEN_EVENTS:
                self.error(f"a `given` gives at most {MAX_GIVEN_EVENTS:,} events, not {given.count:,}", given.span,
                           "a threshold needs only a few events more than it", code="value")
        if test.start is not None and not _is_time(test.start):
            self.error(f"`starting at` needs an RFC 3339 time, not {test.start!r}", test.span,
                       'e.g. `starting at "2026-03-01T23:59:00Z"`', code="value")
        rule_names = {r.name for r in self.program.rules}
        for exp in test.expectations:
            if exp.kind in ("rule", "no_rule") and exp.value not in rule_names | self._unparsed.get("rule", set()):
                self.error(f'no rule named "{exp.value}"', exp.span, _did_you_mean(exp.value, rule_names),
                           code="name")
            if exp.entity is not None:
                self._entity(exp.entity, exp.span)

    # ---- names ----
    def _entity(self, name: str, span: Span) -> ast.EntityDecl | None:
        decl = self.program.entities.get(name)
        if decl is None and name not in self._unparsed.get("entity", ()):
            self.error(f"unknown entity `{name}`", span,
                       _did_you_mean(name, self.program.entities) or f"declare it: `entity {name} = event.…`",
                       code="name")
        return decl

    def _define_type(self, name: str, span: Span) -> str:
        p = self.program
        if name in p.define_types:
            return p.define_types[name]
        if name in self._define_stack:
            cycle = " → ".join(self._define_stack[self._define_stack.index(name):] + [name])
            self.error(f"definitions refer to each other in a cycle: {cycle}", span, code="cycle")
            p.define_types[name] = ANY
            return ANY
        self._define_stack.append(name)
        result = self.expr(p.defines[name].expr)
        self._define_stack.pop()
        p.define_types[name] = result
        return result

    def _field(self, f: ast.Field, want: str = ANY, hint: str | None = None, span: Span | None = None) -> str:
        """The type of field `f` used as a `want`; a field of no declared type learns it from the use.
        `span` is where it is used, when that is a definition's name rather than the field itself."""
        builtin = BUILTIN_FIELDS.get(f.path)
        known = builtin or self.program.field_types.get(f.path)
        if self.program.schemas and known is None and "schema" not in self._unparsed:
            declared = [".".join(p) for p in self.program.field_types]
            self.error(f"unknown field `event.{f.dotted}`: no schema declares it", f.span,
                       _did_you_mean(f.dotted, declared) or "add it to a schema", code="field")
            return ANY
        if known is None:
            if want != ANY:
                self.program.field_types[f.path] = want
            return want
        if not _fits(known, want):
            self.error(f"`event.{f.dotted}` is a {known}, used here as a {want}", span or f.span, hint, code="type")
            return known
        if known in _UNIONS:  # inferred from an earlier use: this one may say which of the two it is
            known = self.program.field_types[f.path] = _narrow(known, want)
        return known

    def _field_behind(self, e: ast.Expr) -> ast.Field | None:
        """The field a definition's name stands for (`define roles = event.actor.roles`), if it names one
        the checker has not already reported unknown: its uses type the field as a use of the field does,
        so a wrongly typed value is dead-lettered when the event is read, never met by a comparison."""
        for _ in range(MAX_NESTING):
            if not (isinstance(e, ast.NameRef) and e.name in self.program.defines):
                break
            e = self.program.defines[e.name].expr
        if not isinstance(e, ast.Field):
            return None
        declared = e.path in BUILTIN_FIELDS or e.path in self.program.field_types
        return e if declared or not self.program.schemas or "schema" in self._unparsed else None

    def _known_type(self, e: ast.Expr) -> str:
        """The type of `e` as far as known now, reporting nothing for a field (its use reports)."""
        if isinstance(e, ast.Field):
            return BUILTIN_FIELDS.get(e.path) or self.program.field_types.get(e.path) or ANY
        behind = self._field_behind(e)
        if behind is not None:
            self.expr(e)  # marks the definition used
            return self._known_type(behind)
        return self.expr(e)

    # ---- expressions ----
    def expect(self, expr: ast.Expr, want: str, context: str) -> str:
        """Check `expr`, which the context needs to be of type `want`."""
        if isinstance(expr, ast.Field):
            return self._field(expr, want)
        got = self.expr(expr)
        behind = self._field_behind(expr)
        if behind is not None and (got == ANY or got in _UNIONS):
            return self._field(behind, want, span=expr.span)
        if not _fits(got, want):
            self.error(f"{context} needs a {want}, got a {got}", expr.span, code="type")
        return got

    def expr(self, e: ast.Expr) -> str:
        if isinstance(e, (ast.Number, ast.Duration)):
            return NUMBER
        if isinstance(e, ast.String):
            return STRING
        if isinstance(e, ast.Bool):
            return BOOL
        if isinstance(e, ast.ListLit):
            return LIST
        if isinstance(e, ast.Field):
            return self._field(e)
        if isinstance(e, ast.NameRef):
            if e.name in self.program.defines:
                self._used_defines.add(e.name)
                return self._define_type(e.name, e.span)
            if e.name in self.program.entities:
                self.error(f"`{e.name}` is an entity, not a value", e.span,
                           f"test its labels (`{e.name} has label \"...\"`) or count by it", code="type")
                return ANY
            if e.name in self._unparsed.get("define", set()) | self._unparsed.get("entity", set()):
                return ANY  # its definition has a syntax error, reported already
            self.error(f"unknown name `{e.name}`", e.span,
                       _did_you_mean(e.name, [*self.program.defines, *self.functions]), code="name")
            return ANY
        if isinstance(e, ast.Call):
            builtin = self.functions.get(e.name)
            if builtin is None:
                self.error(f"unknown function `{e.name}`", e.span,
                           _did_you_mean(e.name, self.functions) or "functions: " + ", ".join(sorted(self.functions)),
                           code="name")
                for a in e.args:
                    self.expr(a)
                return ANY
            if len(e.args) != len(builtin.params):
                self.error(f"`{e.name}` takes {len(builtin.params)} argument(s), got {len(e.args)}", e.span,
                           code="arity")
            for arg, want in zip(e.args, builtin.params):
                self.expect(arg, want, f"`{e.name}`")
            return builtin.result
        if isinstance(e, ast.Arith):
            self.expect(e.left, NUMBER, f"`{e.op}`")
            self.expect(e.right, NUMBER, f"`{e.op}`")
            return NUMBER
        if isinstance(e, ast.Compare):
            if e.op in ("==", "!="):
                left, right = self.expr(e.left), self.expr(e.right)
                if not _fits(left, right):
                    self.error(f"comparing a {left} with a {right} is never true", e.span, code="type")
                if isinstance(e.left, ast.Field) and right != ANY:
                    self._field(e.left, right)
                if isinstance(e.right, ast.Field) and left != ANY:
                    self._field(e.right, left)
                for operand, own, other in ((e.left, left, right), (e.right, right, left)):
                    behind = self._field_behind(operand)
                    if behind is not None and other != ANY and (own == ANY or own in _UNIONS):
                        self._field(behind, other, span=operand.span)
            else:
                self.expect(e.left, NUMBER, f"`{e.op}`")
                self.expect(e.right, NUMBER, f"`{e.op}`")
            return BOOL
        if isinstance(e, ast.Crosses):
            target = e.counter
            while isinstance(target, ast.NameRef) and target.name in self.program.defines:
                target = self.program.defines[target.name].expr
            if not isinstance(target, ast.Counter):
                self.error("`crosses` applies to a counter", e.counter.span,
                           "e.g. `count of \"post\" by user in the last 1 hour crosses 20`", code="type")
            self.expect(e.counter, NUMBER, "`crosses`")
            self.expect(e.threshold, NUMBER, "`crosses`")
            return BOOL
        if isinstance(e, ast.TextOp) and e.op == "contains":
            self._contains(e)
            return BOOL
        if isinstance(e, ast.TextOp):
            op = e.op.replace("_", " ")
            self.expect(e.left, STRING, f"`{op}`")
            self.expect(e.right, STRING, f"`{op}`")
            return BOOL
        if isinstance(e, ast.ContainsAny):
            left = self.expr(e.left) if not isinstance(e.left, ast.Field) else self._field(e.left)
            if not _fits(left, STRING_OR_LIST):
                self.error(f"`contains any of` needs a text or a list, got a {left}", e.left.span, code="type")
            self._collection(e.collection)
            return BOOL
        if isinstance(e, ast.Matches):
            self.expect(e.left, STRING, "`matches`")
            try:
                compile_regex(e.pattern, e.flags)  # with its flags, exactly as the rules will run it
            except re2.error as error:
                reason = error.args[0].decode(errors="replace") if error.args and isinstance(
                    error.args[0], bytes) else str(error)
                self.error(f"invalid regular expression /{e.pattern}/: {reason}", e.span,
                           "the RE2 syntax has no look-around or back-references", code="regex")
            return BOOL
        if isinstance(e, ast.In):
            left = self.expr(e.left)
            if left == BOOL:
                self.error("`in` needs a text, a number or a list, got true/false", e.left.span, code="type")
            self._collection(e.collection)
            return BOOL
        if isinstance(e, ast.Missing):
            self.expr(e.operand)
            return BOOL
        if isinstance(e, ast.EventIs):
            return BOOL
        if isinstance(e, ast.HasLabel):
            self._entity(e.entity, e.span)
            return BOOL
        if isinstance(e, (ast.And, ast.Or)):
            for item in e.items:
                self.expect(item, BOOL, "`and`/`or`")
            return BOOL
        if isinstance(e, ast.Not):
            self.expect(e.item, BOOL, "`not`")
            return BOOL
        if isinstance(e, ast.ClassifierCall):
            self.expect(e.arg, STRING, "a classifier")
            return NUMBER if e.want == "score" else STRING
        if isinstance(e, ast.PolicyFinds):
            self.expect(e.arg, STRING, "a policy")
            return BOOL
        if isinstance(e, ast.BankMatch):
            self.expr(e.arg)
            if e.within is not None and not 0 <= e.within <= 256:
                self.error("`within` is a Hamming distance between 0 and 256", e.span,
                           "PDQ practice is 31 for images", code="value")
            return BOOL
        if isinstance(e, (ast.RuleFired, ast.VerdictIs)):
            return self.record_predicate(e)
        if isinstance(e, ast.Counter):
            self._entity(e.entity, e.span)
            for part in (e.value, e.where):
                if part is not None and any(isinstance(n, ast.Counter) for n in self._expand(part)):
                    self.error("a counter's value or `where` filter cannot use another counter", part.span,
                               "count with a simpler condition, and compare the counters in the rule", code="type")
                if part is not None and any(self._is_slow(n) for n in self._expand(part)):
                    self.error("a counter's value or `where` filter cannot use a slow signal (a policy model or "
                               "a slow function): counters move with the first decision", part.span,
                               "count without it, and test the signal in the rule", code="type")
            if e.value is not None:
                self.expect(e.value, NUMBER if e.kind == "sum" else ANY, f"`{e.kind}`")
            if e.where is not None:
                self.expect(e.where, BOOL, "`where`")
            if e.window is not None and e.window < 1:
                self.error("a counter's window is at least 1 second", e.span, code="value")
            return NUMBER
        raise TypeError(f"unhandled expression {e!r}")  # pragma: no cover - grammar and AST agree

    def record_predicate(self, e: ast.RuleFired | ast.VerdictIs) -> str:
        """`rule "X" fired` and `verdict is V` read a stored decision: a search over the record has one
        (vigil.analysis.search checks them there), a rule deciding an event does not."""
        what = "`rule \"…\" fired`" if isinstance(e, ast.RuleFired) else "`verdict is …`"
        self.error(f"{what} asks what was decided about a stored event: it is for searches over the record "
                   "(vigil search), not for rules", e.span,
                   "a rule cannot depend on another rule's decision; test the same condition here", code="name")
        return BOOL

    def _contains(self, e: ast.TextOp) -> None:
        """`contains`: a substring of a string, or an item of a list (docs/language.md, Text). What the
        types show to be wrong is an error here; a field of unknown type learns what it must be, so an
        event whose field is neither a string nor a list is dead-lettered before any counter moves."""
        left, right = self._known_type(e.left), self._known_type(e.right)
        left_want, right_want = STRING_OR_LIST, ANY
        if not _fits(left, STRING_OR_LIST):
            self.error(f"`contains` looks inside a string or a list, not a {left}", e.left.span,
                       "compare a number with ==, < or >" if left == NUMBER else
                       "test true/false with `== true`, or use it as the condition itself", code="type")
            left_want = ANY
        elif _narrow(left, STRING_OR_LIST) == LIST:
            if _fits(right, STRING_OR_NUMBER):
                right_want = STRING_OR_NUMBER
                self._url_list_literal(e.left, e.right)
            else:
                self._contains_item_error(right, e.right.span, "a list holds items equal to a string or a number")
        elif _narrow(left, STRING_OR_LIST) == STRING:
            if _fits(right, STRING):
                right_want = STRING
            else:
                self._contains_item_error(right, e.right.span, "a string contains only a string")
        elif right == NUMBER:  # a string never contains a number: only a list can
            left_want = LIST
        elif right in (LIST, BOOL):
            self._contains_item_error(right, e.right.span, "`contains` looks for one string or number")
        elif right == ANY:
            right_want = STRING  # fits both a string and a list; a schema can say it is a number
        for operand, want in ((e.left, left_want), (e.right, right_want)):
            field = operand if isinstance(operand, ast.Field) else self._field_behind(operand)
            if field is not None:
                self._field(field, want, span=operand.span)

    def _contains_item_error(self, got: str, span: Span, rule: str) -> None:
        hint = {LIST: "to look for any of several, write `contains any of [...]`",
                NUMBER: 'write the number as a string, e.g. `contains "42"`'}.get(got)
        self.error(f"{rule}, not a {'true/false' if got == BOOL else got}", span, hint, code="type")

    def _url_list_literal(self, left: ast.Expr, item: ast.Expr) -> None:
        """`urls(...) contains "bit.ly"` is membership, so true only for a URL that is exactly "bit.ly":
        a literal that cannot be an item of a URL function's list is an error that says what to write."""
        while isinstance(left, ast.NameRef) and left.name in self.program.defines:
            left = self.program.defines[left.name].expr
        if not (isinstance(left, ast.Call) and left.name in _URL_LISTS and isinstance(item, ast.String)):
            return
        value, function = item.value, left.name
        host = None if function == "urls" else text_signals.url_host(value)
        if function == "domains" and host:
            host = text_signals.registered_domain(host) or host  # "www.bit.ly" is never a registrable domain
        if function == "urls":
            fits = re2.search(r"(?i)https?://|www\.", value) is not None
        else:
            fits = value.isascii() and value != "" and not any(c in value for c in "/: ")
            fits = fits and (host is None or host == value.casefold())
        if fits:
            return
        hint = (f'`{function}(...) contains "{value}"` is true only for an item exactly equal to it; '
                f'to find it inside the items, write `{function}(...) contains any of ["{value}"]`')
        if function == "urls":
            hint += f', or `hosts(...) contains "{value}"` for a host'
        elif host and host != value:
            hint = f'{_URL_LISTS[function]} are compared bare and in their ASCII (IDNA) form: write "{host}"'
        self.error(f"`{function}(...)` gives {_URL_LISTS[function]}, and a list `contains` only an item equal "
                   f'to the string: "{value}" is never one', item.span, hint, code="type")

    def _expand(self, e: ast.Expr, depth: int = 0) -> list[ast.Expr]:
        """`e` and its sub-expressions, following definitions (bounded, as cycles are reported elsewhere)."""
        out = [e]
        if isinstance(e, ast.NameRef) and e.name in self.program.defines and depth < 50:
            out += self._expand(self.program.defines[e.name].expr, depth + 1)
        for child in children(e):
            out += self._expand(child, depth + 1)
        return out

    def _is_slow(self, e: ast.Expr) -> bool:
        """Whether `e` itself needs the second stage (a policy answer or a slow function)."""
        if isinstance(e, ast.PolicyFinds):
            return True
        return isinstance(e, ast.Call) and e.name in self.functions and self.functions[e.name].slow

    def _collection(self, c: ast.Collection) -> None:
        if isinstance(c, ast.ListRef):
            if c.name not in self.program.lists and c.name not in self._unparsed.get("list", ()):
                self.error(f'unknown list "{c.name}"', c.span,
                           _did_you_mean(c.name, self.program.lists) or f'declare it: list "{c.name}" from "FILE"',
                           code="name")
            self._used_lists.add(c.name)


def _fits(got: str, want: str) -> bool:
    """Whether a value of type `got` may be used where `want` is needed (a union: either of its two)."""
    return ANY in (got, want) or bool(_UNIONS.get(got, {got}) & _UNIONS.get(want, {want}))


def _narrow(known: str, want: str) -> str:
    """What a value known as `known` and used as `want` is: the one type both admit, where there is one."""
    if known == ANY:
        return want
    if want == ANY:
        return known
    both = _UNIONS.get(known, {known}) & _UNIONS.get(want, {want})
    return next(iter(both)) if len(both) == 1 else known


def _is_time(text: str) -> bool:
    try:
        parse_time(text)
    except FieldTypeError:
        return False
    return True


def check(modules: list[ast.Module], functions: Functions | None = None) -> tuple[Program, list[Diagnostic]]:
    """Check a rules set against `functions` (Vigil's built-ins when None)."""
    checker = Checker(functions)
    program = checker.check(modules)
    return program, checker.diagnostics


def walk(e: ast.Expr) -> Iterator[ast.Expr]:
    """Every sub-expression of `e`, `e` first (definitions are not followed)."""
    yield e
    for child in children(e):
        yield from walk(child)


def children(e: ast.Expr) -> tuple[ast.Expr, ...]:
    if isinstance(e, (ast.And, ast.Or)):
        return e.items
    if isinstance(e, ast.Not):
        return (e.item,)
    if isinstance(e, (ast.Compare, ast.Arith, ast.TextOp)):
        return (e.left, e.right)
    if isinstance(e, ast.Crosses):
        return (e.counter, e.threshold)
    if isinstance(e, (ast.ContainsAny, ast.Matches, ast.In)):
        return (e.left,)
    if isinstance(e, ast.Missing):
        return (e.operand,)
    if isinstance(e, ast.Call):
        return e.args
    if isinstance(e, (ast.ClassifierCall, ast.PolicyFinds, ast.BankMatch)):
        return (e.arg,)
    if isinstance(e, ast.Counter):
        return tuple(x for x in (e.value, e.where) if x is not None)
    return ()

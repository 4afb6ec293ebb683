"""A search query in the rules language → a checked, compiled predicate over stored events.

The query is parsed by the rules grammar (start symbol `query`), checked by the rules checker against a
context (the entities, definitions, lists and schemas of a rules set, without its rules and tests) and
compiled by the rules compiler as one rule, `search`, whose firing is the match: nothing here interprets
expressions. `top EXPR` is compiled as that rule's output parameter, so it is computed only where the
condition holds. Two forms exist for searches only: `rule "X" fired` (the stored decision lists X, live or
shadow, either stage) and `verdict is V` (its final verdict).

What a stored event cannot answer is refused at check time, at the query's column: counters (a search
does not rebuild windows; backtest a rule instead), classifiers, policy models, hash banks and functions
over them (a model per stored event), and labels where no state store is given. Labels are read as they
were at each event's time, from the label history of the state store (vigil.signals.labels.Labels).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vigil.diagnostics import Diagnostic, Severity, Span
from vigil.dsl import ast, runtime
from vigil.dsl.builtins import BOOL, Functions, builtin_functions
from vigil.dsl.check import Checker, _did_you_mean, children
from vigil.dsl.compile import compile_program, function_local
from vigil.dsl.loader import RuleSet
from vigil.dsl.parse import QUERY_PATH, parse, parse_query
from vigil.effects import VERDICTS
from vigil.events import Event
from vigil.stores.base import LabelBackend

SEARCH_RULE = "search"
TOP_PARAM = "value"


class QueryError(Exception):
    """A query with errors: every diagnostic, located in the query's own text (`query:LINE:COL`)."""

    def __init__(self, diagnostics: list[Diagnostic], text: str) -> None:
        super().__init__("\n".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics
        self.text = text

    def render(self) -> str:
        return "\n".join(d.render(self.text) for d in self.diagnostics)

    def to_json(self) -> list[dict[str, Any]]:
        return [{"message": d.message, "line": d.span.line, "col": d.span.column, "hint": d.hint,
                 "severity": d.severity.value, "code": d.code} for d in self.diagnostics]


@dataclass(frozen=True, slots=True)
class Pushdown:
    """The filters a query implies that the record's indexes can apply (vigil.record.base.Query): every
    event the query matches passes them, so the rest is evaluated only on what they select."""

    types: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    entities: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.types or self.verdicts or self.rules or self.entities)


class _Current:
    """The stored decision the compiled predicate reads `rule "X" fired` and `verdict is V` from."""

    __slots__ = ("rules", "verdict")

    def __init__(self) -> None:
        self.rules: frozenset[str] = frozenset()
        self.verdict = "allow"


@dataclass(slots=True)
class CompiledQuery:
    """A checked query, ready to run over stored events: `matches(...)` and `top_value(...)`."""

    text: str
    pushdown: Pushdown
    has_top: bool
    _dispatch: dict[str, Callable[[Event], list[Any]]] = field(repr=False)
    _default: Callable[[Event], list[Any]] = field(repr=False)
    _current: _Current = field(repr=False)

    def evaluate(self, event: Event, rules: Iterable[str], verdict: str) -> tuple[bool, Any]:
        """Whether the stored event matches, and the `top` expression's value where it does. An event
        whose fields have the wrong type for the query does not match (as a rule would not fire)."""
        self._current.rules = frozenset(rules)
        self._current.verdict = verdict
        try:
            hits = self._dispatch.get(event.type, self._default)(event)
        except runtime.FieldTypeError:
            return False, None
        if not hits:
            return False, None
        params = hits[0][3]
        return True, (params[0] if params else None)


class QueryChecker(Checker):
    """The rules checker with the two searching forms allowed, their names checked."""

    def __init__(self, functions: Functions, known_rules: Iterable[str],
                 rule_exists: Callable[[str], bool] | None = None) -> None:
        super().__init__(functions)
        self.known_rules = sorted(set(known_rules))
        self.rule_exists = rule_exists

    def record_predicate(self, e: ast.RuleFired | ast.VerdictIs) -> str:
        if isinstance(e, ast.RuleFired) and e.rule not in self.known_rules and not (
                self.rule_exists is not None and self.rule_exists(e.rule)):
            hint = _did_you_mean(e.rule, self.known_rules)
            if hint is None and self.known_rules:
                shown = ", ".join(f'"{r}"' for r in self.known_rules[:8])
                hint = f"rules known: {shown}{' …' if len(self.known_rules) > 8 else ''}"
            elif hint is None:
                hint = "the record holds no hit of a rule by that name; give the rules (--rules) to see their names"
            self.error(f'no rule named "{e.rule}"', e.span, hint, code="name")
        return BOOL


def _context_modules(context: RuleSet | None) -> list[ast.Module]:
    """The context's declarations (entities, definitions, lists, schemas), without its rules and tests."""
    if context is None:
        return []
    modules = []
    for path, text in context.sources.items():
        module, _ = parse(text, path)  # it loaded: no syntax errors
        items = tuple(i for i in module.items if not isinstance(i, (ast.Rule, ast.Test)))
        modules.append(ast.Module(module.path, items))
    return modules


def _refusal(node: ast.Expr, functions: Functions, labels: bool) -> str | None:
    """Why a stored event cannot answer `node`, or None."""
    if isinstance(node, (ast.Counter, ast.Crosses)):
        return "counts events in a window, which a search does not rebuild"
    if isinstance(node, (ast.ClassifierCall, ast.PolicyFinds)):
        return "asks a model about every stored event"
    if isinstance(node, ast.BankMatch):
        return "looks media up in a hash bank"
    if isinstance(node, ast.Call) and node.name in functions:
        function = functions[node.name]
        if function.slow or function.call is None:
            return f"calls `{node.name}`, which asks a model or a service"
    if isinstance(node, ast.HasLabel) and not labels:
        return "reads labels, and no state store was given to read their history from"
    return None


_HINTS = {
    "counts": "search what the rule that uses it decided (`rule \"…\" fired`), or backtest a rule that counts",
    "asks": "search the decisions of the rule that uses it (`rule \"…\" fired`)",
    "looks": "search the decisions of the rule that uses it (`rule \"…\" fired`)",
    "calls": "search the decisions of the rule that uses it (`rule \"…\" fired`)",
    "reads": "give the state store (--db) the labels live in",
}


def _refuse_unanswerable(query_exprs: list[ast.Expr], program_defines: dict[str, ast.Define],
                         functions: Functions, labels: bool) -> list[Diagnostic]:
    """Errors at the query's own columns for what it uses (through definitions) that cannot be answered."""
    out: list[Diagnostic] = []

    def reasons(e: ast.Expr, seen: set[str]) -> Iterator[str]:
        why = _refusal(e, functions, labels)
        if why is not None:
            yield why
            return
        if isinstance(e, ast.NameRef) and e.name in program_defines and e.name not in seen:
            yield from reasons(program_defines[e.name].expr, seen | {e.name})
        for child in children(e):
            yield from reasons(child, seen)

    def visit(e: ast.Expr) -> None:
        why = _refusal(e, functions, labels)
        if why is None and isinstance(e, ast.NameRef) and e.name in program_defines:
            found = next(reasons(program_defines[e.name].expr, {e.name}), None)
            if found is not None:
                why = f"`{e.name}` {found}"
        elif why is not None:
            why = f"this {why}"
        if why is not None:
            out.append(Diagnostic(f"a search reads stored events: {why}", e.span, Severity.ERROR,
                                  _hint_for(why), "search"))
            return
        for child in children(e):
            visit(child)

    for e in query_exprs:
        visit(e)
    return out


def _hint_for(why: str) -> str:
    for word, hint in _HINTS.items():
        if f" {word} " in f" {why} ":
            return hint
    return "search what was decided (`rule \"…\" fired`, `verdict is …`)"


def _conjuncts(e: ast.Expr | None) -> tuple[ast.Expr, ...]:
    if e is None:
        return ()
    return e.items if isinstance(e, ast.And) else (e,)


def pushdown(condition: ast.Expr | None, entities: dict[str, ast.EntityDecl]) -> Pushdown:
    """The indexed filters `condition` implies: `event is`, `verdict is`, `rule "X" fired` (alone or as
    an `or` of the same kind) and `event.F == "key"` where F is an entity's one field."""
    types: set[str] | None = None
    verdicts: set[str] | None = None
    rules: tuple[str, ...] = ()
    keyed: list[tuple[str, str]] = []
    by_field = {decl.fields[0].path: name for name, decl in entities.items() if len(decl.fields) == 1}
    for item in _conjuncts(condition):
        alternatives = item.items if isinstance(item, ast.Or) else (item,)
        if all(isinstance(a, ast.EventIs) for a in alternatives):
            found = {t for a in alternatives if isinstance(a, ast.EventIs) for t in a.types}
            types = found if types is None else types & found
        elif all(isinstance(a, ast.VerdictIs) for a in alternatives):
            found = {a.verdict for a in alternatives if isinstance(a, ast.VerdictIs)}
            verdicts = found if verdicts is None else verdicts & found
        elif all(isinstance(a, ast.RuleFired) for a in alternatives) and not rules:
            rules = tuple(dict.fromkeys(a.rule for a in alternatives if isinstance(a, ast.RuleFired)))
        elif isinstance(item, ast.Compare) and item.op == "==":
            for f, v in ((item.left, item.right), (item.right, item.left)):
                if isinstance(f, ast.Field) and isinstance(v, ast.String) and f.path in by_field:
                    keyed.append((by_field[f.path], v.value))
                    break
    # An empty intersection matches nothing: keep one impossible filter rather than none.
    return Pushdown(tuple(sorted(types)) if types is not None else (),
                    tuple(v for v in VERDICTS if v in verdicts) if verdicts is not None else (),
                    rules, tuple(dict.fromkeys(keyed)))


Redact = Callable[[tuple[str, ...], str], Any]  # (field path, value) → the value as the record stores it


def redacted(e: ast.Expr, redact: Redact) -> ast.Expr:
    """`e` with the literal of each `event.F == "x"` (or `!=`) written as the record stores field F: a
    field the record keeps as a keyed hash is compared with the hash of "x", so it is still found."""
    if isinstance(e, (ast.And, ast.Or)):
        return dataclasses.replace(e, items=tuple(redacted(i, redact) for i in e.items))
    if isinstance(e, ast.Not):
        return dataclasses.replace(e, item=redacted(e.item, redact))
    if isinstance(e, ast.Compare) and e.op in ("==", "!="):
        if isinstance(e.left, ast.Field) and isinstance(e.right, ast.String):
            return dataclasses.replace(e, right=_stored_as(e.left, e.right, redact))
        if isinstance(e.right, ast.Field) and isinstance(e.left, ast.String):
            return dataclasses.replace(e, left=_stored_as(e.right, e.left, redact))
    return e


def _stored_as(f: ast.Field, v: ast.String, redact: Redact) -> ast.String:
    stored = redact(f.path, v.value)
    return dataclasses.replace(v, value=stored) if isinstance(stored, str) else v


def compile_query(text: str, *, context: RuleSet | None = None, functions: Functions | None = None,
                  known_rules: Iterable[str] = (), rule_exists: Callable[[str], bool] | None = None,
                  labels: LabelBackend | None = None, redact: Redact | None = None) -> CompiledQuery:
    """Parse, check and compile a search. `context`: the rules set whose declarations the query may use
    (its rules' names are known to `rule "X" fired`, with `known_rules`, and any name `rule_exists` finds,
    e.g. in the record: an older version's rule);
    `labels`: where `ENTITY has label` reads (as of each event's time); `redact`: how the record stores a
    field's value (`record_redact`), so a hashed field is searched by its hash. Raises QueryError."""
    functions = functions if functions is not None else (
        context.program.functions if context is not None else builtin_functions())
    query, errors = parse_query(text)
    if query is None:
        raise QueryError(errors, text)
    if redact is not None and query.condition is not None:
        query = dataclasses.replace(query, condition=redacted(query.condition, redact))
    condition = query.condition if query.condition is not None else ast.Bool(True, query.span)
    actions: list[ast.Action] = [ast.VerdictAction("flag", query.span)]
    if query.top is not None:
        actions.append(ast.OutputAction("top", query.top.span, (ast.OutputArg(TOP_PARAM, query.top, None,
                                                                               query.top.span),)))
    rule = ast.Rule(SEARCH_RULE, condition, tuple(actions), span=Span(QUERY_PATH, 1, 1))
    names = [*(r.name for r in (context.program.rules if context is not None else ())), *known_rules]
    checker = QueryChecker(functions, names, rule_exists)
    program = checker.check([*_context_modules(context), ast.Module(QUERY_PATH, (rule,))])
    diagnostics = [d for d in checker.diagnostics if d.severity is Severity.ERROR]
    diagnostics = [dataclasses.replace(d, message=d.message.replace("a rule's condition", "a search's condition"))
                   for d in diagnostics]
    diagnostics += _refuse_unanswerable([e for e in (query.condition, query.top) if e is not None],
                                        program.defines, functions, labels is not None)
    if diagnostics:
        raise QueryError(sorted(diagnostics, key=lambda d: (d.span.file != QUERY_PATH, d.span.line,
                                                            d.span.column)), text)
    compiled = compile_program(program, context.list_items if context is not None else {})
    current = _Current()
    namespace = _namespace(compiled.constants, compiled.functions, program.functions, labels, current)
    exec(compile(compiled.source, "<search>", "exec"), namespace)  # noqa: S102 - from the checked query
    return CompiledQuery(text, pushdown(query.condition, program.entities), query.top is not None,
                         namespace["DISPATCH"], namespace["decide_other"], current)


def _namespace(constants: dict[str, Any], used: tuple[str, ...], functions: Functions,
               labels: LabelBackend | None, current: _Current) -> dict[str, Any]:
    """What the compiled query calls: the engine's pure helpers (vigil.engine.Engine._namespace), labels
    as of the event's time, and the stored decision. Counters and signals never appear: refused above."""
    def no_labels(*args: Any) -> bool:  # pragma: no cover - the checker refused labels without a store
        raise RuntimeError("labels were refused at check time")

    ns: dict[str, Any] = {
        "__builtins__": {"len": len, "int": int, "float": float, "type": type, "dict": dict, "str": str,
                         "bool": bool, "list": list},
        "_U": runtime.UNSET, "_get": runtime.get, "_as_number": runtime.as_number,
        "_as_string": runtime.as_string, "_as_bool": runtime.as_bool, "_as_list": runtime.as_list,
        "_as_string_or_list": runtime.as_string_or_list, "_as_string_or_number": runtime.as_string_or_number,
        "_entity_key": runtime.entity_key, "_text_op": runtime.text_op, "_contains": runtime.contains,
        "_contains_normalized": runtime.contains_normalized, "_arith": runtime.arith,
        "_has_label": labels.has if labels is not None else no_labels,
        "_has_manual_label": labels.has_manual if labels is not None else no_labels,
        "_rule_fired": lambda name: name in current.rules,
        "_verdict_is": lambda verdict: current.verdict == verdict,
        "_NO_RESULTS": {},
    }
    for name in used:
        call = functions[name].call
        if call is not None:
            ns[function_local(name)] = call
    ns.update(constants)
    return ns


def record_redact(redactor: Any) -> Redact:
    """`redact` for compile_query from the record's Redactor (vigil.record.redact): the value at the path
    after the record's own redaction of an event holding only it."""
    def redact(path: tuple[str, ...], value: str) -> Any:
        event: dict[str, Any] = {}
        node = event
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        stored: Any = redactor.event(event)
        for part in path:
            stored = stored.get(part) if isinstance(stored, dict) else None
        return stored

    return redact

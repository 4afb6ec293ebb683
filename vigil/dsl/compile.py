"""Checked rules → Python source: one plain function per event type, no tree walking per event.

Why generated code: each event runs straight-line Python in which every feature (a field, a function
call, a definition, a counter, a label test) is a local computed at most once, on first use, and
conditions short-circuit. Rules that cannot fire for an event type (their `event is` test is false)
are left out of that type's function. The output is deterministic: the same rules give byte-identical
source, which `vigil compile` prints.

Missing data is three-valued: a value is None when unknown. `_true(e)` emits code that is truthy only
when `e` is definitely true, `_false(e)` only when definitely false; a rule fires on `_true`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from vigil.dsl import ast
from vigil.dsl.builtins import BOOL, LIST, NUMBER, STRING
from vigil.dsl.check import STRING_OR_LIST, STRING_OR_NUMBER, Program, children
from vigil.dsl.unparse import unparse

_CHECKED_ACCESS = {NUMBER: "_as_number", STRING: "_as_string", BOOL: "_as_bool", LIST: "_as_list",
                   STRING_OR_LIST: "_as_string_or_list", STRING_OR_NUMBER: "_as_string_or_number"}
_TYPE_TEST = {NUMBER: "type({v}) in (int, float)", STRING: "type({v}) is str", BOOL: "type({v}) is bool",
              LIST: "type({v}) is list", STRING_OR_LIST: "type({v}) in (str, list)",
              STRING_OR_NUMBER: "type({v}) in (str, int, float)"}
_PY_COMPARE = {"==": "==", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """A counter as the state stores see it. `cid` is stable across rules versions for the same
    definition, so that changing unrelated rules keeps the counts."""

    cid: str
    kind: str  # count, distinct, sum
    window: float | None  # seconds, or None for the UTC calendar day
    text: str
    entity: str = ""  # the entity it counts per (entity timelines show an entity's counters)


@dataclass(frozen=True, slots=True)
class RuleInfo:
    index: int
    name: str
    severity: str
    mode: str
    rollout_percent: float
    verdict: str | None
    # Entities whose keys the generated code returns with a hit, in order: label entities, output subjects,
    # then rollout.
    entities: tuple[str, ...]
    actions: tuple[ast.Action, ...]
    description: str
    owner: str
    location: str
    rollout_entity: str | None
    # 1: decided with the event; 2: needs a slow signal (a policy model) and runs in the second stage.
    stage: int = 1


@dataclass(slots=True)
class CompiledRules:
    source: str
    rules: list[RuleInfo]
    counters: list[CounterSpec]
    constants: dict[str, Any] = field(default_factory=dict)
    event_types: tuple[str, ...] = ()

    # Event types whose events have slow rules to run (None: the types no rule names).
    slow_types: frozenset[str | None] = frozenset()
    # The registered functions the code calls, by name (the engine binds these: function_local(name)).
    functions: tuple[str, ...] = ()


def function_local(name: str) -> str:
    """The name a registered function has in the compiled rules' namespace: a prefix of its own, so no
    function name can shadow a helper (`_get`), a temporary (`_t1`) or a constant."""
    return f"_fn_{name}"


def counter_id(counter: ast.Counter) -> str:
    return hashlib.sha1(unparse(counter).encode()).hexdigest()[:16]


class _FunctionBuilder:
    """Emits one event type's function. `etype` None is the function for types no rule names."""

    def __init__(self, compiler: Compiler, etype: str | None, stage: int = 1) -> None:
        self.c = compiler
        self.etype = etype
        # The second stage re-reads the event for its slow rules: it moves no counter, only reads them.
        self.stage = stage
        self.slots: dict[Any, str] = {}  # feature node → local name
        self.temps = 0
        self.lines: list[str] = []

    def temp(self) -> str:
        self.temps += 1
        return f"_t{self.temps}"

    def slot(self, key: Any, prefix: str = "f") -> str:
        if key not in self.slots:
            self.slots[key] = f"{prefix}{len(self.slots)}"
        return self.slots[key]

    def lazy(self, key: Any, code_fn: Any) -> str:
        """A feature computed on first use: `(f3 if f3 is not _U else (f3 := CODE))`."""
        is_new = key not in self.slots
        name = self.slot(key)
        if is_new:
            self.c.slot_code[(self.etype, name)] = code_fn()
        if isinstance(key, ast.Field):
            return name  # fields are read at the top of the function (see build), so always computed
        code = self.c.slot_code[(self.etype, name)]
        return f"({name} if {name} is not _U else ({name} := {code}))"

    # ---- static truth: what is known for this event type at compile time ----
    def static(self, e: ast.Expr) -> bool | None:
        if isinstance(e, ast.EventIs):
            return self.etype in e.types
        if isinstance(e, ast.Bool):
            return e.value
        if isinstance(e, ast.NameRef):
            return self.static(self.c.program.defines[e.name].expr)
        if isinstance(e, ast.Not):
            inner = self.static(e.item)
            return None if inner is None else not inner
        if isinstance(e, ast.And):
            values = [self.static(i) for i in e.items]
            if False in values:
                return False
            return True if all(v is True for v in values) else None
        if isinstance(e, ast.Or):
            values = [self.static(i) for i in e.items]
            if True in values:
                return True
            return False if all(v is False for v in values) else None
        return None

    # ---- boolean code ----
    def true(self, e: ast.Expr) -> str:
        known = self.static(e)
        if known is not None:
            return repr(known)
        if isinstance(e, ast.And):
            return "(" + " and ".join(self.true(i) for i in e.items if self.static(i) is not True) + ")"
        if isinstance(e, ast.Or):
            return "(" + " or ".join(self.true(i) for i in e.items if self.static(i) is not False) + ")"
        if isinstance(e, ast.Not):
            return self.false(e.item)
        return f"({self.val(e)} is True)"

    def false(self, e: ast.Expr) -> str:
        known = self.static(e)
        if known is not None:
            return repr(not known)
        if isinstance(e, ast.And):
            return "(" + " or ".join(self.false(i) for i in e.items if self.static(i) is not True) + ")"
        if isinstance(e, ast.Or):
            return "(" + " and ".join(self.false(i) for i in e.items if self.static(i) is not False) + ")"
        if isinstance(e, ast.Not):
            return self.true(e.item)
        return f"({self.val(e)} is False)"

    def bool3(self, e: ast.Expr) -> str:
        """True, False or None (unknown) — Kleene logic for and/or/not used as values."""
        known = self.static(e)
        if known is not None:
            return repr(known)
        return f"(True if {self.true(e)} else (False if {self.false(e)} else None))"

    # ---- value code ----
    def val(self, e: ast.Expr) -> str:
        if isinstance(e, (ast.Number,)):
            return repr(int(e.value) if float(e.value).is_integer() else e.value)
        if isinstance(e, ast.Duration):
            return repr(e.seconds)
        if isinstance(e, (ast.String, ast.Bool)):
            return repr(e.value)
        if isinstance(e, ast.ListLit):
            return repr([getattr(i, "value", getattr(i, "seconds", None)) for i in e.items])
        if isinstance(e, ast.Field):
            return self.lazy(e, lambda: self.field_code(e))
        if isinstance(e, ast.NameRef):
            define = self.c.program.defines[e.name]
            if isinstance(define.expr, ast.Counter):
                return self.counter_ref(define.expr)
            # and/or/not need Kleene logic as a value; a comparison's value is already true/false/None.
            kleene = isinstance(define.expr, (ast.And, ast.Or, ast.Not))
            return self.lazy(e, lambda: self.bool3(define.expr) if kleene else self.val(define.expr))
        if isinstance(e, (ast.And, ast.Or, ast.Not, ast.EventIs)):
            return self.bool3(e)
        if isinstance(e, ast.Call):
            return self.lazy(e, lambda: self.call_code(e))
        if isinstance(e, ast.Counter):
            return self.counter_ref(e)
        if isinstance(e, ast.HasLabel):
            return self.lazy(e, lambda: self.has_label_code(e))
        if isinstance(e, ast.ClassifierCall):
            return self.lazy(e, lambda: self.signal_code(f"_classifier_{e.want}", repr(e.name), e.arg))
        if isinstance(e, ast.PolicyFinds):
            return self.lazy(e, lambda: self.signal_code("_policy", repr(e.name), e.arg))
        if isinstance(e, ast.BankMatch):
            # The feature holds the matches (for the explanation); the condition is whether there are any.
            matches = self.lazy(e, lambda: self.signal_code("_bank_match", repr(e.bank), e.arg, repr(e.within)))
            m = self.temp()
            return f"(None if ({m} := {matches}) is None else len({m}) > 0)"
        if isinstance(e, ast.Arith):
            return f"_arith({e.op!r}, {self.val(e.left)}, {self.val(e.right)})"
        if isinstance(e, ast.Compare):
            left, right = self.operand(e.left), self.operand(e.right)
            unknown = " or ".join(check for check in (left[1], right[1]) if check) or "False"
            return f"(None if {unknown} else {left[0]} {_PY_COMPARE[e.op]} {right[0]})"
        if isinstance(e, ast.Crosses):
            counter = self.c.resolve_counter(e.counter)
            after_code = self.counter_ref(counter)
            after, before = self.counter_slots(counter)
            if self.c.counter_index(counter) not in self.eager_counters:
                # This event type does not add to the counter, so it cannot take it across anything.
                return f"(None if {after_code} is None else False)"
            threshold, unknown = self.operand(e.threshold)
            unknown = f" or {unknown}" if unknown else ""
            # `before` is unset when this event did not count: then it crossed nothing.
            return (f"(None if {after_code} is None{unknown} else "
                    f"{before} is not _U and {before} <= {threshold} < {after})")
        if isinstance(e, ast.TextOp) and e.op == "contains" and self.c.is_normalized(e.left):
            # Matched as a one-phrase list: normalised like the text, through capped letter runs.
            if isinstance(e.right, ast.String):
                phrase = self.c.constant("L", ("list", "", "phrases", (e.right.value,)))
                return f"{phrase}.contains_any_normalized({self.val(e.left)})"
            return f"_contains_normalized({self.val(e.left)}, {self.val(e.right)})"
        if isinstance(e, ast.TextOp) and e.op == "contains":
            paths = (repr(x.dotted if isinstance(x, ast.Field) else "(contains)") for x in (e.left, e.right))
            return f"_contains({self.val(e.left)}, {self.val(e.right)}, {', '.join(paths)})"
        if isinstance(e, ast.TextOp):
            return f"_text_op({e.op!r}, {self.val(e.left)}, {self.val(e.right)})"
        if isinstance(e, ast.ContainsAny):
            method = "contains_any_normalized" if self.c.is_normalized(e.left) else "contains_any"
            return f"{self.c.collection(e.collection)}.{method}({self.val(e.left)})"
        if isinstance(e, ast.Matches):
            regex = self.c.constant("R", ("regex", e.pattern, e.flags))
            a = self.temp()
            return f"(None if ({a} := {self.val(e.left)}) is None else {regex}.search({a}))"
        if isinstance(e, ast.In):
            a = self.temp()
            member = f"{self.c.collection(e.collection)}.member({self.val(e.left)})"
            return f"(None if ({a} := {member}) is None else {'not ' if e.negated else ''}{a})"
        if isinstance(e, ast.Missing):
            return f"({self.val(e.operand)} is {'not ' if e.negated else ''}None)"
        if isinstance(e, ast.RuleFired):  # a search over the record: its namespace binds these two
            return f"_rule_fired({e.rule!r})"
        if isinstance(e, ast.VerdictIs):
            return f"_verdict_is({e.verdict!r})"
        raise TypeError(f"cannot compile {e!r}")  # pragma: no cover

    def operand(self, e: ast.Expr) -> tuple[str, str]:
        """Code for a comparison operand and the test that it is unknown ("" for a literal)."""
        if isinstance(e, (ast.Number, ast.Duration, ast.String, ast.Bool)):
            return self.val(e), ""
        local = self.temp()
        return local, f"({local} := {self.val(e)}) is None"

    def field_code(self, f: ast.Field) -> str:
        if f.path == ("type",):
            return "ev.type"
        if f.path == ("id",):
            return "ev.id"
        if f.path == ("time",):
            return "ev.time"
        if len(f.path) == 1:
            access = f"d.get({f.path[0]!r})"
        elif len(f.path) == 2:
            parent = self.temp()
            access = f"({parent}.get({f.path[1]!r}) if type({parent} := d.get({f.path[0]!r})) is dict else None)"
        else:
            access = f"_get(d, {f.path!r})"
        type_name = self.c.program.field_types.get(f.path, "")
        check = _CHECKED_ACCESS.get(type_name)
        if check is None:
            return access
        # The common case inline (the value has the right type, or is missing); the helper raises otherwise.
        v = self.temp()
        ok = _TYPE_TEST[type_name].format(v=v)
        return f"({v} if ({v} := {access}) is None or {ok} else {check}({v}, {f.dotted!r}))"

    def signal_code(self, function: str, name: str, arg: ast.Expr, *extra: str) -> str:
        a = self.temp()
        rest = "".join(f", {x}" for x in extra)
        return f"(None if ({a} := {self.val(arg)}) is None else {function}({name}, {a}{rest}))"

    def call_code(self, e: ast.Call) -> str:
        """A call as the registry describes it (vigil/dsl/builtins.py): `_fn_NAME(args)`, behind a test
        that every argument is known unless the function takes unknowns itself."""
        function = self.c.program.functions[e.name]
        self.c.functions_used.add(e.name)
        args = [self.val(a) for a in e.args]
        guards: list[str] = []
        if function.known_args:
            for i, arg in enumerate(args):
                local = self.temp()
                guards.append(f"({local} := {arg}) is None")
                args[i] = local
        if function.time:
            args.append("t")
        if function.slow:
            args.insert(0, "ev.key")  # called once per event and arguments (builtins._Memo)
        call = f"{function_local(e.name)}({', '.join(args)})"
        return f"(None if {' or '.join(guards)} else {call})" if guards else call

    def entity_key(self, name: str) -> str:
        decl = self.c.program.entities[name]
        key = ("entity", name)
        if key not in self.slots:
            parts = ", ".join(self.val(f) for f in decl.fields)
            self.slots[key] = f"k_{name}"
            code = f"_entity_key({parts})"
            if len(decl.fields) == 1:  # the common case, inline: a non-empty string is its own key
                part = self.temp()
                code = f"({part} if type({part} := {parts}) is str and {part} else _entity_key({part}))"
            self.c.slot_code[(self.etype, f"k_{name}")] = code
        # Entity keys are read at the top of the function (see build): the bare local is always set.
        return self.slots[key]

    def has_label_code(self, e: ast.HasLabel) -> str:
        k = self.temp()
        function = "_has_manual_label" if e.manual else "_has_label"
        return f"(None if ({k} := {self.entity_key(e.entity)}) is None else {function}({e.entity!r}, {k}, {e.label!r}, t))"

    # ---- counters ----
    def counter_slots(self, counter: ast.Counter) -> tuple[str, str]:
        index = self.c.counter_index(counter)
        return f"c{index}", f"c{index}b"

    def counter_ref(self, counter: ast.Counter) -> str:
        after, _ = self.counter_slots(counter)
        index = self.c.counter_index(counter)
        if index in self.eager_counters:
            # Set by the update when the event counted; read only if a rule needs it when it did not.
            key_local = self.eager_keys[index]
            return (f"({after} if {after} is not _U else ({after} := "
                    f"None if {key_local} is None else _peek_{index}({key_local}, sec)))")
        key = ("counter", index)
        if key not in self.slots:
            self.slots[key] = after
            k = self.temp()
            self.c.slot_code[(self.etype, after)] = (
                f"(None if ({k} := {self.entity_key(counter.entity)}) is None else _peek_{index}({k}, sec))"
            )
        return f"({after} if {after} is not _U else ({after} := {self.c.slot_code[(self.etype, after)]}))"

    def counts_here(self, counter: ast.Counter) -> bool:
        if self.stage == 2 or (counter.types and self.etype not in counter.types):
            return False
        return counter.where is None or self.static(counter.where) is not False

    def emit_counter_update(self, counter: ast.Counter) -> str:
        """Queue this event for the counter when it qualifies. Returns the local holding the entity key."""
        index = self.c.counter_index(counter)
        key = self.temp()
        self.lines.append(f"    {key} = {self.entity_key(counter.entity)}")
        condition = f"{key} is not None"
        if counter.where is not None and self.static(counter.where) is not True:
            condition += f" and {self.true(counter.where)}"
        value_code = "1"
        if counter.value is not None:
            value = self.temp()
            condition += f" and ({value} := {self.val(counter.value)}) is not None"
            value_code = value
        self.lines.append(f"    if {condition}:")
        self.lines.append(f"        _u.append(({index}, {key}, {value_code}))")
        self.eager_counters.add(index)
        self.eager_keys[index] = key
        return key

    def emit_counter_results(self, keys: dict[int, str]) -> None:
        """One call applies every queued update (one round trip for a remote store, and the place where
        a redelivered event id is recognised); a counter the event did not qualify for is read as is."""
        self.lines.append("    _r = _add_many(ev.key, sec, _u) if _u else _NO_RESULTS")  # scoped by source
        for index in keys:
            after, before = f"c{index}", f"c{index}b"
            self.lines.append(f"    if {index} in _r:")
            self.lines.append(f"        {before}, {after} = _r[{index}]")
            self.lines.append("    else:")
            self.lines.append(f"        {before} = {after} = _U")

    # ---- the function ----
    def build(self, name: str) -> str:
        self.eager_counters: set[int] = set()
        self.eager_keys: dict[int, str] = {}
        keys: dict[int, str] = {}
        for counter in self.c.counters:
            if self.counts_here(counter):
                keys[self.c.counter_index(counter)] = self.emit_counter_update(counter)
        if keys:
            self.lines.insert(0, "    _u = []")
            self.emit_counter_results(keys)
        body: list[str] = []
        for info, rule in zip(self.c.rule_infos, self.c.program.rules):
            if info.stage != self.stage or self.static(rule.condition) is False:
                continue
            condition = self.true(rule.condition)
            features = self.c.rule_features[info.index]
            feature_code = ", ".join(f"{label!r}: {self.slot_name(node)}" for label, node in features)
            key_list = ", ".join(self.entity_key(e) for e in info.entities)
            entity_keys = f"({key_list},)" if info.entities else "()"
            # repr: a rule name or file name may hold a newline, which must not end the comment
            body.append(f"    # rule {info.index}: {info.name!r} ({info.location!r})")
            body.append(f"    if {condition}:")
            # Output parameters' values, in the order of the rule's outputs and their parameters.
            values = [self.val(value) for action in rule.actions if isinstance(action, ast.OutputAction)
                      for _name, value in action.params]
            params = f"({', '.join(values)},)" if values else "()"
            body.append(f"        hits.append(({info.index}, {{{feature_code}}}, {entity_keys}, {params}))")
        # Fields and entity keys are read first: a wrongly typed one raises FieldTypeError before any
        # counter moves, so a dead-lettered event leaves no trace in the state.
        eager = [(name, self.c.slot_code[(self.etype, name)]) for key, name in self.slots.items()
                 if isinstance(key, ast.Field) or (isinstance(key, tuple) and key[0] == "entity")]
        eager.sort(key=lambda item: (item[0].startswith("k_"), int(item[0][1:]) if item[0][1:].isdigit() else 0))
        eager_names = {name for name, _ in eager}
        locals_ = sorted(set(self.slots.values()) - eager_names - {
            self.counter_slots(c)[0] for c in self.c.counters if self.c.counter_index(c) in self.eager_counters})
        signature = f"def {name}(ev):" if self.stage == 1 else f"def {name}(ev, _policy):"
        head = [signature, "    d = ev.data", "    t = ev.time", "    sec = int(t)", "    hits = []"]
        if locals_:
            head.append("    " + " = ".join(locals_) + " = _U")
        head += [f"    {name} = {code}" for name, code in eager]
        # Fields and entity keys were emitted as bare locals where used; nothing edits the text after this.
        return "\n".join(head + self.lines + body + ["    return hits"])

    def slot_name(self, node: Any) -> str:
        """The local holding a feature's value, or `_U` where this function never computes it."""
        if isinstance(node, ast.Counter):
            index = self.c.counter_index(node)
            if index in self.eager_counters or ("counter", index) in self.slots:
                return self.counter_slots(node)[0]
            return "_U"
        return self.slots.get(node, "_U")


class Compiler:
    def __init__(self, program: Program, list_items: dict[str, tuple[str, ...]]) -> None:
        self.program = program
        self.list_items = list_items
        self.constants: dict[str, Any] = {}
        self._constant_keys: dict[Any, str] = {}
        self.slot_code: dict[tuple[str | None, str], str] = {}
        self.counters: list[ast.Counter] = []
        self._counter_index: dict[ast.Counter, int] = {}
        self.rule_infos: list[RuleInfo] = []
        self.rule_features: list[list[tuple[str, ast.Expr]]] = []
        self.functions_used: set[str] = set()

    def is_normalized(self, e: ast.Expr) -> bool:
        """Whether `e` is the result of `normalized(...)`, directly or through definitions."""
        while isinstance(e, ast.NameRef):
            e = self.program.defines[e.name].expr
        return isinstance(e, ast.Call) and e.name == "normalized"

    def constant(self, prefix: str, key: Any) -> str:
        if key not in self._constant_keys:
            self._constant_keys[key] = f"_{prefix}{len(self._constant_keys)}"
        return self._constant_keys[key]

    def collection(self, c: ast.Collection) -> str:
        if isinstance(c, ast.ListRef):
            decl = self.program.lists[c.name]
            return self.constant("L", ("list", decl.name, decl.kind, self.list_items[decl.name]))
        items = tuple(str(getattr(i, "value", "")) for i in c.items)
        return self.constant("L", ("list", "", "phrases", items))

    def resolve_counter(self, e: ast.Expr) -> ast.Counter:
        while isinstance(e, ast.NameRef):
            e = self.program.defines[e.name].expr
        assert isinstance(e, ast.Counter)  # the checker guarantees `crosses` applies to a counter
        return e

    def counter_index(self, counter: ast.Counter) -> int:
        return self._counter_index[counter]

    def _collect(self, e: ast.Expr, features: list[tuple[str, ast.Expr]], seen: set[Any]) -> None:
        """Register counters (inner first) and the named features a rule's explanation shows."""
        if isinstance(e, ast.NameRef):
            define = self.program.defines[e.name]
            if isinstance(define.expr, (ast.Counter, ast.Field, ast.Call, ast.HasLabel)):
                # The definition names a feature: show it once, under its name.
                for child in children(define.expr):
                    self._collect(child, features, seen)
                self._register_counter(define.expr)
                seen.add(unparse(define.expr))
            else:
                self._collect(define.expr, features, seen)
            label_node: ast.Expr = define.expr if isinstance(define.expr, ast.Counter) else e
            if e.name not in seen:
                seen.add(e.name)
                features.append((e.name, label_node))
            return
        for child in children(e):
            self._collect(child, features, seen)
        self._register_counter(e)
        if isinstance(e, (ast.Field, ast.Call, ast.Counter, ast.HasLabel, ast.ClassifierCall, ast.PolicyFinds,
                          ast.BankMatch)):
            text = unparse(e)
            if text not in seen:
                seen.add(text)
                features.append((text, e))

    def _register_counter(self, e: ast.Expr) -> None:
        if isinstance(e, ast.Counter) and e not in self._counter_index:
            self._counter_index[e] = len(self.counters)
            self.counters.append(e)

    def compile(self) -> CompiledRules:
        for index, rule in enumerate(self.program.rules):
            features: list[tuple[str, ast.Expr]] = []
            self._collect(rule.condition, features, set())
            self.rule_features.append(features)
            verdict = next((a.verdict for a in rule.actions if isinstance(a, ast.VerdictAction)), None)
            entities = [a.entity for a in rule.actions if isinstance(a, (ast.LabelAction, ast.UnlabelAction))]
            entities += [a.subject for a in rule.actions if isinstance(a, ast.OutputAction) and a.subject]
            for action in rule.actions:  # counters an output parameter reads are counters like any other
                for _name, value in action.params if isinstance(action, ast.OutputAction) else ():
                    self._collect(value, [], set())
            if rule.rollout_entity:
                entities.append(rule.rollout_entity)
            self.rule_infos.append(RuleInfo(
                index, rule.name, rule.severity, rule.mode, rule.rollout_percent, verdict,
                tuple(dict.fromkeys(entities)), rule.actions, rule.description, rule.owner, str(rule.span),
                rule.rollout_entity,
                2 if any(self._is_slow(n) for n in self._all_nodes(rule.condition)) else 1,
            ))
        types: set[str] = set()
        for rule in self.program.rules:
            for node in self._all_nodes(rule.condition):
                if isinstance(node, ast.EventIs):
                    types.update(node.types)
        for counter in self.counters:
            types.update(counter.types)
        event_types = tuple(sorted(types))
        functions = []
        dispatch = []
        for i, etype in enumerate(event_types):
            functions.append(_FunctionBuilder(self, etype).build(f"decide_{i}"))
            dispatch.append(f"    {etype!r}: decide_{i},")
        functions.append(_FunctionBuilder(self, None).build("decide_other"))
        tables = ["DISPATCH = {\n" + "\n".join(dispatch) + "\n}"]
        slow_types: set[str | None] = set()
        if any(info.stage == 2 for info in self.rule_infos):
            slow_dispatch = []
            for i, etype in enumerate(event_types):
                functions.append(_FunctionBuilder(self, etype, stage=2).build(f"slow_{i}"))
                slow_dispatch.append(f"    {etype!r}: slow_{i},")
            functions.append(_FunctionBuilder(self, None, stage=2).build("slow_other"))
            candidates: list[str | None] = [*event_types, None]
            for candidate in candidates:
                probe = _FunctionBuilder(self, candidate, stage=2)
                if any(info.stage == 2 and probe.static(rule.condition) is not False
                       for info, rule in zip(self.rule_infos, self.program.rules)):
                    slow_types.add(candidate)
            tables.append("SLOW_DISPATCH = {\n" + "\n".join(slow_dispatch) + "\n}")
        header = ["# Generated by vigil.dsl.compile from a checked rules set. Deterministic; do not edit."]
        source = "\n\n\n".join(["\n".join(header)] + functions + tables)
        specs = [CounterSpec(counter_id(c), c.kind, c.window, unparse(c), c.entity) for c in self.counters]
        return CompiledRules(source + "\n", self.rule_infos, specs, self._materialize(), event_types,
                             frozenset(slow_types), tuple(sorted(self.functions_used)))

    def _is_slow(self, e: ast.Expr) -> bool:
        """Whether `e` needs the second stage: a policy answer, or a function registered as slow."""
        if isinstance(e, ast.PolicyFinds):
            return True
        return isinstance(e, ast.Call) and self.program.functions[e.name].slow

    def _all_nodes(self, e: ast.Expr) -> list[ast.Expr]:
        out = [e]
        if isinstance(e, ast.NameRef):
            out += self._all_nodes(self.program.defines[e.name].expr)
        for child in children(e):
            out += self._all_nodes(child)
        return out

    def _materialize(self) -> dict[str, Any]:
        from vigil.dsl.runtime import TermList, compile_regex

        out: dict[str, Any] = {}
        for key, name in self._constant_keys.items():
            if key[0] == "regex":
                out[name] = compile_regex(key[1], key[2])
            else:
                out[name] = TermList(key[1], key[2], key[3])
        return out


def compile_program(program: Program, list_items: dict[str, tuple[str, ...]]) -> CompiledRules:
    return Compiler(program, list_items).compile()

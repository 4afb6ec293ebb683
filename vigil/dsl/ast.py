"""The rules language's syntax tree: frozen dataclasses, each carrying the Span it came from.

Spans are excluded from equality and hashing, so two occurrences of the same expression compare
equal; the compiler relies on that to compute each feature at most once per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from vigil.diagnostics import NO_SPAN, Span


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


# ---- expressions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class String:
    value: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Duration:
    seconds: float
    text: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Literal, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Field:
    path: tuple[str, ...]
    span: Span = _span()

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class NameRef:
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Arith:
    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Crosses:
    """True only on the event that takes a counter from at most `threshold` to above it."""

    counter: Expr
    threshold: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TextOp:
    op: str  # "contains", "starts_with", "ends_with"
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ListRef:
    name: str
    span: Span = _span()


Collection = Union[ListLit, ListRef]


@dataclass(frozen=True, slots=True)
class ContainsAny:
    left: Expr
    collection: Collection
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Matches:
    left: Expr
    pattern: str
    flags: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class In:
    left: Expr
    collection: Collection
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Missing:
    """`x is missing` (negated=False) or `x exists` (negated=True): never unknown."""

    operand: Expr
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class EventIs:
    types: tuple[str, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class HasLabel:
    """`ENTITY has label "x"`; with `manual`, `ENTITY has manual label "x"` (set by a person)."""

    entity: str
    label: str
    span: Span = _span()
    manual: bool = False


@dataclass(frozen=True, slots=True)
class ClassifierCall:
    """`classifier "spam" on TEXT` (the score of its positive class), or with `label` its label."""

    name: str
    arg: Expr
    want: str  # "score" or "label"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class PolicyFinds:
    """`policy "harassment" finds TEXT violating`: a policy-as-prompt model's verdict. Slow: rules that
    use it run in the second stage."""

    name: str
    arg: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class BankMatch:
    """`VALUE matches bank "known-bad" within 31`: media or text hashed and looked up in a hash bank."""

    arg: Expr
    bank: str
    within: int | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RuleFired:
    """`rule "X" fired`: the stored decision of an event lists the rule (live or shadow, either stage).
    Searches over the record only."""

    rule: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class VerdictIs:
    """`verdict is review`: the stored decision's final verdict. Searches over the record only."""

    verdict: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Not:
    item: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Counter:
    """A windowed aggregate per entity.

    kind: "count" (events), "distinct" (distinct values of `value`) or "sum" (of `value`).
    types: the event types counted, or () for every type. window: seconds for a sliding window,
    or None for the current UTC calendar day.
    """

    kind: str
    types: tuple[str, ...]
    value: Expr | None
    entity: str
    where: Expr | None
    window: float | None
    window_text: str
    span: Span = _span()


Literal = Union[Number, String, Duration, Bool, ListLit]
Expr = Union[
    Number, String, Duration, Bool, ListLit, Field, NameRef, Call, Arith, Compare, Crosses, TextOp,
    ContainsAny, Matches, In, Missing, EventIs, HasLabel, And, Or, Not, Counter, ClassifierCall, PolicyFinds,
    BankMatch, RuleFired, VerdictIs,
]


# ---- declarations -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Use:
    path: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class EntityDecl:
    name: str
    fields: tuple[Field, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Define:
    name: str
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ListDecl:
    name: str
    kind: str  # "phrases" (substring matching) or "domains" (a domain or any parent) or "words"
    file: str | None
    items: tuple[str, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class FieldType:
    path: tuple[str, ...]
    type_name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Schema:
    event_type: str
    fields: tuple[FieldType, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class VerdictAction:
    verdict: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class LabelAction:
    entity: str
    label: str
    expires_after: Duration | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class UnlabelAction:
    entity: str
    label: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class OutputArg:
    """One argument after an output's `with`: `subject ENTITY` (name None, subject set), `name = value`,
    or a value without a name (a mistake the checker explains: name None, subject None)."""

    name: str | None
    value: Expr | None
    subject: str | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class OutputAction:
    """`output "NAME" with subject ENTITY, param = value, …`: a message to the sinks the settings route
    NAME to, about the entity SUBJECT, carrying the parameters' values."""

    name: str
    span: Span = _span()
    args: tuple[OutputArg, ...] = ()

    @property
    def subject(self) -> str | None:
        return next((a.subject for a in self.args if a.subject is not None), None)

    @property
    def params(self) -> tuple[tuple[str, Expr], ...]:
        return tuple((a.name, a.value) for a in self.args if a.name is not None and a.value is not None)


Action = Union[VerdictAction, LabelAction, UnlabelAction, OutputAction]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    condition: Expr
    actions: tuple[Action, ...]
    description: str = ""
    owner: str = ""
    severity: str = "medium"
    mode: str = "live"  # "live", "shadow" or "rollout"
    rollout_percent: float = 100.0
    rollout_entity: str | None = None
    span: Span = _span()
    # Output arguments written where no output precedes them (after a verdict or a label): an error.
    stray_args: tuple[OutputArg, ...] = ()


@dataclass(frozen=True, slots=True)
class Given:
    count: int
    event_type: str
    entity: str | None
    keys: tuple[str, ...]
    within: Duration | None
    after: Duration | None
    assignments: tuple[tuple[tuple[str, ...], Literal], ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Expectation:
    kind: str  # "verdict", "label", "no_label", "rule", "no_rule", "output"
    value: str
    entity: str | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Test:
    name: str
    givens: tuple[Given, ...]
    expectations: tuple[Expectation, ...]
    span: Span = _span()
    start: str | None = None  # `starting at "RFC 3339 time"`: when the first event happens


@dataclass(frozen=True, slots=True)
class Unparsed:
    """A top-level item with a syntax error (reported by the parser). What it would have declared is kept,
    so the checker can still check the file's other items without reporting its uses as unknown."""

    kind: str  # "entity", "define", "list", "schema", "rule", "test", "use", or "" where it cannot be told
    name: str
    span: Span = _span()


Item = Union[Use, EntityDecl, Define, ListDecl, Schema, Rule, Test, Unparsed]


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed rules file."""

    path: str
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class Query:
    """A search over the record: the events where `condition` holds (None: every event), or with `top`
    the most frequent values of that expression among them."""

    condition: Expr | None
    top: Expr | None = None
    span: Span = _span()

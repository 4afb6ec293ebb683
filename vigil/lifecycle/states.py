"""Per-rule stages, stored beside the rules versions: each change is a row of `rule_states` (the latest
row of a rule is its stage), so the history of every rule is kept and a rollback is one more change.

A rule without a row runs as its text says (`mode shadow`, `rollout 10% by user`, or live). A row
overrides that until it is rolled back to "as written" (`stage` None):

- `draft`: written but not started: not evaluated, no hits recorded.
- `shadow`: evaluated and recorded, never applied.
- `rollout`: applied for `percent` of the values of `entity` (the same entity is always in or out), in
  shadow for the others.
- `live`: applied.
- `paused`: stopped after it ran: not evaluated. The guard (vigil/lifecycle/guard.py) pauses here.

Every change is also an entry of the audit log (`rules.stage`, `rules.stage_rollback`), by the person who
made it, in the same call; `generation()` (the newest row's number) lets every instance notice a change.

    states = RuleStates.over(store, audit)
    states.change("Posting burst", "shadow", actor="alice", reason="try it on today's traffic")
    states.current()["Posting burst"].stage  # "shadow"
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vigil.audit import AuditLog
from vigil.stores.tables import Tables

STAGES = ("draft", "shadow", "rollout", "live", "paused")
PROMOTION = ("draft", "shadow", "rollout", "live")  # the order `promote` walks
MAX_REASON = 1000  # characters of a change's reason kept
MAX_RULE_NAME = 500
_PG_LOCK = 0x72756c73  # advisory lock for the migrations ("ruls")

MIGRATIONS: dict[str, list[str]] = {dialect: [f"""
CREATE TABLE rule_states (
    seq {'INTEGER PRIMARY KEY' if dialect == 'sqlite' else 'BIGSERIAL PRIMARY KEY'}, rule TEXT NOT NULL,
    stage TEXT, percent DOUBLE PRECISION, entity TEXT, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX rule_states_rule ON rule_states (rule, seq);
"""] for dialect in ("sqlite", "postgres")}


class LifecycleError(ValueError):
    """A stage change that cannot be made (an unknown stage, a rollout without its entity, a rule the
    active version does not have): the message says what and how to fix it."""

    def __init__(self, message: str, status: int = 422, code: str = "bad_stage") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class RuleState:
    """One rule's stage as of change `seq`: `stage` None means "as its text says"."""

    rule: str
    stage: str | None
    percent: float | None = None
    entity: str | None = None
    seq: int = 0
    at: float = 0.0
    actor: str = ""
    reason: str = ""
    # What else the change recorded: the guard's figures when it paused the rule ({"guard": {...}}), the
    # change a rollback undid ({"rollback_of": seq}).
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def by_guard(self) -> bool:
        return "guard" in self.detail

    def describe(self) -> str:
        if self.stage is None:
            return "as written"
        if self.stage == "rollout":
            return f"rollout {self.percent:g}% by {self.entity}"
        return self.stage

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "stage": self.stage, "percent": self.percent, "entity": self.entity,
                "seq": self.seq, "at": self.at, "actor": self.actor, "reason": self.reason, "detail": self.detail,
                "describe": self.describe(), "by_guard": self.by_guard}


_COLUMNS = "seq, rule, stage, percent, entity, at, actor, reason, detail"


def _state(row: Any) -> RuleState:
    return RuleState(str(row[1]), row[2], None if row[3] is None else float(row[3]), row[4], int(row[0]),
                     float(row[5]), str(row[6]), str(row[7]), json.loads(row[8]))


def validate(stage: str | None, percent: float | None, entity: str | None) -> tuple[float | None, str | None]:
    """The percent and entity a stage keeps (only a rollout keeps them); LifecycleError when they do not fit."""
    if stage is not None and stage not in STAGES:
        raise LifecycleError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)} (or null: as written)")
    if stage != "rollout":
        return None, None
    if percent is None or isinstance(percent, bool) or not isinstance(percent, (int, float)) \
            or not math.isfinite(percent) or not 0 < percent <= 100:
        raise LifecycleError("a rollout needs its percentage, a number above 0 and at most 100",
                             code="bad_rollout")
    if not entity or not isinstance(entity, str):
        raise LifecycleError("a rollout needs the entity it is assigned by (e.g. user): the same entity is "
                             "always in or out", code="bad_rollout")
    return float(percent), entity


class RuleStates:
    """The stages over one database (`RuleStates.over(store, audit)`); changes go to `audit`."""

    def __init__(self, tables: Tables, audit: AuditLog, clock: Callable[[], float] = time.time) -> None:
        self.tables = tables
        self.audit = audit
        self.clock = clock

    @classmethod
    def over(cls, store: Any, audit: AuditLog, clock: Callable[[], float] = time.time) -> RuleStates:
        return cls(Tables.over(store, MIGRATIONS, "rule_states_schema_version", _PG_LOCK), audit, clock)

    def generation(self) -> int:
        """The newest change's number (0 before any): what instances poll to notice a change."""
        with self.tables.tx() as tx:
            row = tx.execute("SELECT MAX(seq) FROM rule_states").fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    def current(self) -> dict[str, RuleState]:
        """Every rule's latest state, by rule name (rules rolled back to "as written" included)."""
        with self.tables.tx() as tx:
            rows = tx.execute(f"SELECT {_COLUMNS} FROM rule_states WHERE seq IN "
                              "(SELECT MAX(seq) FROM rule_states GROUP BY rule)").fetchall()
        return {s.rule: s for s in map(_state, rows)}

    def history(self, rule: str, limit: int = 100) -> list[RuleState]:
        """A rule's changes, newest first."""
        with self.tables.tx() as tx:
            rows = tx.execute(f"SELECT {_COLUMNS} FROM rule_states WHERE rule = ? ORDER BY seq DESC LIMIT ?",
                              (rule, max(1, min(limit, 1000)))).fetchall()
        return [_state(r) for r in rows]

    def change(self, rule: str, stage: str | None, *, actor: Any, percent: float | None = None,
               entity: str | None = None, reason: str = "", detail: dict[str, Any] | None = None,
               action: str = "rules.stage") -> RuleState:
        """Put `rule` in `stage` (None: as written) and audit it as `action` by `actor`. LifecycleError
        for a stage, percent or entity that does not fit; the rule's existence is the caller's to check
        (it depends on the version that runs)."""
        if not rule or len(rule) > MAX_RULE_NAME:
            raise LifecycleError("name the rule (at most 500 characters)")
        percent, entity = validate(stage, percent, entity)
        text = json.dumps(detail or {}, sort_keys=True)
        now = float(self.clock())
        name = getattr(actor, "actor", actor)
        with self.tables.tx() as tx:
            before = tx.execute(f"SELECT {_COLUMNS} FROM rule_states WHERE rule = ? ORDER BY seq DESC LIMIT 1",
                                (rule,)).fetchone()
            tx.execute("INSERT INTO rule_states (rule, stage, percent, entity, at, actor, reason, detail) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (rule, stage, percent, entity, now, str(name),
                                                            reason[:MAX_REASON], text))
            row = tx.execute(f"SELECT {_COLUMNS} FROM rule_states WHERE rule = ? ORDER BY seq DESC LIMIT 1",
                             (rule,)).fetchone()
        state = _state(row)
        previous = _state(before) if before is not None else None
        self.audit.append(actor, action, f"rule:{rule}", {
            "stage": stage, "percent": percent, "entity": entity, "reason": state.reason, "change": state.seq,
            "previous": previous.describe() if previous is not None else "as written", **(detail or {})})
        return state

    def rollback(self, rule: str, *, actor: Any, reason: str = "") -> RuleState:
        """Return `rule` to the stage it had before its latest change ("as written" before its first);
        LifecycleError (404) when it never changed."""
        changes = self.history(rule, 2)
        if not changes:
            raise LifecycleError(f"rule {rule!r} has no stage changes to roll back", 404, "no_stage_changes")
        undone = changes[0]
        back = changes[1] if len(changes) > 1 else RuleState(rule, None)
        return self.change(rule, back.stage, actor=actor, percent=back.percent, entity=back.entity,
                           reason=reason or f"rollback of change {undone.seq} ({undone.describe()})",
                           detail={"rollback_of": undone.seq}, action="rules.stage_rollback")

    def close(self) -> None:
        self.tables.close()


def next_stage(current: str | None, written_mode: str) -> str:
    """The stage `promote` moves a rule to: one step along draft → shadow → rollout → live (from paused:
    live; as written: one step on from the mode its text gives). LifecycleError when it is live already."""
    stage = current if current is not None else written_mode
    if stage == "paused":
        return "live"
    if stage not in PROMOTION or stage == "live":
        raise LifecycleError("the rule is live already: nothing to promote it to", 409, "already_live")
    return PROMOTION[PROMOTION.index(stage) + 1]

"""Rule stages in the store: each change a row and an audit entry by its person, the latest row the stage,
a rollback one more change back to the stage before; a stage that does not fit is refused with why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.audit import AuditLog
from vigil.lifecycle.states import LifecycleError, RuleStates, next_stage
from vigil.stores.sqlite import SqliteStore


@pytest.fixture()
def states(tmp_path: Path) -> Iterator[RuleStates]:
    store = SqliteStore(tmp_path / "s.sqlite")
    audit = AuditLog.over(store)
    states = RuleStates.over(store, audit, clock=lambda: 1000.0)
    yield states
    states.close()
    audit.close()
    store.close()


def test_a_change_is_the_rules_stage_and_an_audit_entry(states: RuleStates) -> None:
    assert states.current() == {} and states.generation() == 0
    state = states.change("Burst", "shadow", actor="alice", reason="try it")
    assert (state.stage, state.actor, state.at, state.reason) == ("shadow", "alice", 1000.0, "try it")
    assert states.current()["Burst"].stage == "shadow"
    assert states.generation() == state.seq
    [entry] = states.audit.entries()
    assert (entry.actor, entry.action, entry.target) == ("alice", "rules.stage", "rule:Burst")
    assert entry.detail["stage"] == "shadow" and entry.detail["previous"] == "as written"


def test_a_rollout_keeps_its_percent_and_entity_and_needs_both(states: RuleStates) -> None:
    state = states.change("Burst", "rollout", actor="alice", percent=10, entity="user")
    assert (state.percent, state.entity, state.describe()) == (10.0, "user", "rollout 10% by user")
    for percent, entity in ((None, "user"), (0, "user"), (101, "user"), (float("nan"), "user"), (10, None)):
        with pytest.raises(LifecycleError, match="rollout needs"):
            states.change("Burst", "rollout", actor="alice", percent=percent, entity=entity)
    with pytest.raises(LifecycleError, match="unknown stage 'on'"):
        states.change("Burst", "on", actor="alice")
    assert states.current()["Burst"].describe() == "rollout 10% by user"  # nothing stored by the refusals


def test_rollback_returns_to_the_stage_before_and_is_audited(states: RuleStates) -> None:
    states.change("Burst", "shadow", actor="alice")
    live = states.change("Burst", "live", actor="bob")
    back = states.rollback("Burst", actor="carol")
    assert back.stage == "shadow" and back.detail == {"rollback_of": live.seq}
    assert states.audit.entries()[-1].action == "rules.stage_rollback"
    assert states.audit.entries()[-1].actor == "carol"
    assert [c.stage for c in states.history("Burst")] == ["shadow", "live", "shadow"]


def test_rolling_back_the_first_change_returns_to_as_written(states: RuleStates) -> None:
    states.change("Burst", "paused", actor="alice")
    assert states.rollback("Burst", actor="alice").stage is None
    with pytest.raises(LifecycleError, match="no stage changes") as caught:
        states.rollback("Other", actor="alice")
    assert caught.value.status == 404


def test_promotion_walks_draft_shadow_rollout_live() -> None:
    assert next_stage("draft", "live") == "shadow"
    assert next_stage("shadow", "live") == "rollout"
    assert next_stage("rollout", "live") == "live"
    assert next_stage("paused", "live") == "live"
    assert next_stage(None, "shadow") == "rollout"  # as written: one step on from the text's mode
    with pytest.raises(LifecycleError, match="live already"):
        next_stage(None, "live")

"""Stages laid over a checked rules set: each rule runs in its stage, draft and paused rules not at all,
a rollout by an entity the version lacks in shadow; the version names the stages that applied."""

from __future__ import annotations

from vigil.dsl.loader import load_ruleset
from vigil.engine import Engine
from vigil.events import parse_event
from vigil.lifecycle.overlay import effective_modes, overlay
from vigil.lifecycle.states import RuleState

RULES = """
entity user = event.actor.id
rule "Shout" when event is "post" and event.text contains "!" then block
rule "Long" when event is "post" and length(event.text) > 3 then flag
"""


def _ruleset():  # type: ignore[no-untyped-def]
    return load_ruleset(["main.vigil"], files={"main.vigil": RULES})


def _decide(ruleset, text: str, user: str = "u1"):  # type: ignore[no-untyped-def]
    engine = Engine(ruleset)
    try:
        return engine.decide(parse_event({"type": "post", "id": "e1", "time": 1.0, "actor": {"id": user},
                                              "text": text}))
    finally:
        engine.close()


def test_no_state_leaves_the_rules_set_as_it_is() -> None:
    written = _ruleset()
    assert overlay(written, {}) is written
    assert overlay(written, {"Shout": RuleState("Shout", None)}) is written  # rolled back to as written
    assert overlay(written, {"Gone": RuleState("Gone", "paused")}) is written  # a rule it does not have


def test_a_shadow_stage_records_without_applying() -> None:
    staged = overlay(_ruleset(), {"Shout": RuleState("Shout", "shadow")})
    decision = _decide(staged, "hello!")
    assert decision.verdict == "flag"
    assert {(h.rule, h.mode) for h in decision.hits} == {("Shout", "shadow"), ("Long", "live")}
    assert staged.version.startswith(_ruleset().version + "+")


def test_paused_and_draft_rules_do_not_run() -> None:
    staged = overlay(_ruleset(), {"Shout": RuleState("Shout", "paused"), "Long": RuleState("Long", "draft")})
    decision = _decide(staged, "hello!")
    assert decision.verdict == "allow" and decision.hits == ()
    assert [r.name for r in staged.program.rules] == []


def test_a_rollout_applies_to_its_share_of_entities() -> None:
    staged = overlay(_ruleset(), {"Shout": RuleState("Shout", "rollout", 50.0, "user")})
    modes = {_decide(staged, "hi!", user=f"u{i}").hits[0].mode for i in range(40)}
    assert modes == {"live", "shadow"}
    elsewhere = overlay(_ruleset(), {"Shout": RuleState("Shout", "rollout", 50.0, "account")})
    assert _decide(elsewhere, "hi!").hits[0].mode == "shadow"  # no such entity: applied to nobody


def test_effective_modes_list_every_rule_with_its_written_mode_and_stage() -> None:
    modes = {m["rule"]: m for m in effective_modes(_ruleset(), {"Long": RuleState("Long", "paused", seq=3)})}
    assert modes["Shout"]["stage"] == "live" and modes["Shout"]["state"] is None
    assert modes["Long"]["stage"] == "paused" and modes["Long"]["written"]["mode"] == "live"
    assert modes["Long"]["state"]["seq"] == 3

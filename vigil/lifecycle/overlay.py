"""The stored stages laid over a rules set that passed the gate: each rule with a stage runs in it, as if
its text said so, and draft and paused rules are left out of the compiled code altogether (so a paused
rule calls no model and costs nothing). The rules' own tests ran on the text as written, before this.

The result's version is the text's version with a digest of the stages that applied (`3f2a…+9c01be2d`),
so a decision names what ran, and an instance that compares versions sees a change of stage as a change.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from vigil.dsl import ast
from vigil.dsl.compile import compile_program
from vigil.dsl.loader import RuleSet, python_code
from vigil.lifecycle.states import RuleState

log = logging.getLogger("vigil.lifecycle")
NOT_RUN = ("draft", "paused")


def written_mode(rule: ast.Rule) -> dict[str, Any]:
    """A rule's mode as its text gives it."""
    if rule.mode == "rollout":
        return {"mode": "rollout", "percent": rule.rollout_percent, "entity": rule.rollout_entity}
    return {"mode": rule.mode, "percent": None, "entity": None}


def _applied(rule: ast.Rule, state: RuleState, entities: Mapping[str, Any]) -> ast.Rule | None:
    """`rule` in `state`'s stage; None when it does not run. A rollout by an entity the version no
    longer declares runs in shadow (applied to nobody) rather than live."""
    if state.stage in NOT_RUN:
        return None
    if state.stage == "rollout":
        if state.entity not in entities:
            log.warning("rule %r is in a rollout by %r, which this version does not declare: it runs in shadow",
                        rule.name, state.entity)
            return replace(rule, mode="shadow", rollout_percent=100.0, rollout_entity=None)
        return replace(rule, mode="rollout", rollout_percent=float(state.percent or 0.0),
                       rollout_entity=state.entity)
    return replace(rule, mode=str(state.stage), rollout_percent=100.0, rollout_entity=None)


def applying(ruleset: RuleSet, states: Mapping[str, RuleState]) -> dict[str, RuleState]:
    """The states that change something in `ruleset`: of rules it has, with a stage (not "as written")."""
    names = {r.name for r in ruleset.program.rules}
    return {n: s for n, s in sorted(states.items()) if s.stage is not None and n in names}


def overlay(ruleset: RuleSet, states: Mapping[str, RuleState]) -> RuleSet:
    """`ruleset` with `states` applied, compiled anew; `ruleset` itself when no state applies."""
    relevant = applying(ruleset, states)
    if not relevant:
        return ruleset
    program = ruleset.program
    rules = []
    for rule in program.rules:
        state = relevant.get(rule.name)
        staged = rule if state is None else _applied(rule, state, program.entities)
        if staged is not None:
            rules.append(staged)
    staged_program = replace(program, rules=rules)
    digest = hashlib.sha256(repr([(n, s.stage, s.percent, s.entity) for n, s in relevant.items()]).encode())
    version = f"{ruleset.version}+{digest.hexdigest()[:8]}"
    compiled = compile_program(staged_program, ruleset.list_items)
    code = python_code(compiled, version, staged_program, list(ruleset.warnings), ruleset.sources)
    return RuleSet(staged_program, compiled, version, ruleset.sources, ruleset.warnings, ruleset.list_items, code)


def effective_modes(ruleset: RuleSet, states: Mapping[str, RuleState]) -> list[dict[str, Any]]:
    """Every rule of `ruleset` (as written) with how it runs: its written mode, its stored state if any,
    and the stage it is in (`stage`: draft, shadow, rollout, live or paused)."""
    out = []
    for rule in ruleset.program.rules:
        written = written_mode(rule)
        state = states.get(rule.name)
        if state is not None and state.stage is not None:
            stage = {"stage": state.stage, "percent": state.percent, "entity": state.entity}
            if state.stage == "rollout" and state.entity not in ruleset.program.entities:
                stage = {"stage": "shadow", "percent": None, "entity": None}
        else:
            stage = {"stage": written["mode"], "percent": written["percent"], "entity": written["entity"]}
        out.append({"rule": rule.name, "severity": rule.severity, "owner": rule.owner, "where": str(rule.span),
                    "written": written, **stage, "state": state.to_json() if state is not None else None})
    return out

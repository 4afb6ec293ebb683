"""`vigil test`: run the tests written beside the rules, each on a fresh in-memory engine."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from vigil.dsl import ast
from vigil.dsl.loader import RuleSet
from vigil.dsl.runtime import encode_key
from vigil.effects import Decision, OutputEffect

# Tests start at a fixed moment so that `today` windows and expiry are reproducible.
TEST_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()


@dataclass(frozen=True, slots=True)
class TestResult:
    name: str
    location: str
    passed: bool
    failures: tuple[str, ...]
    decision: Decision | None


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {})
    data[path[-1]] = value


def _literal(value: ast.Literal) -> Any:
    if isinstance(value, ast.ListLit):
        return [_literal(i) for i in value.items]
    if isinstance(value, ast.Duration):
        return value.seconds
    if isinstance(value, ast.Number):
        return int(value.value) if value.value.is_integer() else value.value
    return value.value


def test_events(ruleset: RuleSet, test: ast.Test) -> list[dict[str, Any]]:
    """The events a test's `given` steps describe, in order, with times from TEST_EPOCH."""
    events: list[dict[str, Any]] = []
    now = TEST_EPOCH
    for given in test.givens:
        if given.after is not None:
            now += given.after.seconds
        step = given.within.seconds / given.count if given.within is not None else 1.0
        for i in range(given.count):
            event: dict[str, Any] = {"type": given.event_type, "id": f"test-{len(events) + 1}", "time": now}
            if given.entity is not None:
                decl = ruleset.program.entities[given.entity]
                for f, key in zip(decl.fields, given.keys):
                    _set(event, f.path, key)
            for path, value in given.assignments:
                _set(event, path, _literal(value))
            events.append(event)
            if i < given.count - 1:
                now += step
        now += 1.0
    return events


def run_test(ruleset: RuleSet, test: ast.Test, signals: Any = None) -> TestResult:
    from vigil.engine import Engine  # the engine imports the DSL; tests sit above both
    from vigil.events import parse_event
    from vigil.stages import SlowStage

    engine = Engine(ruleset, signals=signals)
    # Slow rules (policy models) run their second stage at once, so expectations see its result.
    followups: list[Decision] = []
    slow = SlowStage(engine, followups.append)
    decision: Decision | None = None
    failures: list[str] = []
    last: dict[str, Any] = {}
    for event in test_events(ruleset, test):
        result = engine.process(event)
        if not isinstance(result, Decision):
            failures.append(f"event {event['id']} was dead-lettered: {result.reason}")
            break
        if result.pending:
            slow.run_batch([(parse_event(event), result)])
            final = followups.pop()
            # One view of the event: both stages' hits and effects, the stronger verdict.
            result = dataclasses.replace(result, verdict=final.verdict, hits=result.hits + final.hits,
                                         effects=result.effects + final.effects, pending=False)
        decision, last = result, event
    if decision is not None:
        fired = {h.rule for h in decision.hits}
        outputs = {e.name for e in decision.effects if isinstance(e, OutputEffect)}
        for exp in test.expectations:
            failures += _failures(engine, ruleset, exp, decision, last, fired, outputs)
    engine.close()
    return TestResult(test.name, str(test.span), not failures, tuple(failures), decision)


def _failures(engine: Any, ruleset: RuleSet, exp: ast.Expectation, decision: Decision, last: dict[str, Any],
              fired: set[str], outputs: set[str]) -> list[str]:
    if exp.kind == "verdict" and decision.verdict != exp.value:
        why = ", ".join(sorted(h.rule for h in decision.live_hits)) or "no live rule fired"
        return [f"{exp.span}: expected verdict {exp.value}, got {decision.verdict} ({why})"]
    if exp.kind in ("label", "no_label"):
        assert exp.entity is not None
        decl = ruleset.program.entities[exp.entity]
        parts = []
        for f in decl.fields:
            value: Any = last
            for part in f.path:
                value = value.get(part) if isinstance(value, dict) else None
            parts.append(str(value))
        key = encode_key(parts) if len(parts) > 1 else parts[0]
        has = engine.labels.has(exp.entity, key, exp.value, decision.time)
        if exp.kind == "label" and not has:
            return [f'{exp.span}: expected {exp.entity} "{key}" to have label "{exp.value}"']
        if exp.kind == "no_label" and has:
            return [f'{exp.span}: expected {exp.entity} "{key}" not to have label "{exp.value}"']
    if exp.kind == "rule" and exp.value not in fired:
        return [f'{exp.span}: expected rule "{exp.value}" to fire; fired: {sorted(fired) or "none"}']
    if exp.kind == "no_rule" and exp.value in fired:
        return [f'{exp.span}: expected rule "{exp.value}" not to fire']
    if exp.kind == "output" and exp.value not in outputs:
        return [f'{exp.span}: expected output "{exp.value}"; outputs: {sorted(outputs) or "none"}']
    return []


def run_tests(ruleset: RuleSet, signals: Any = None) -> list[TestResult]:
    return [run_test(ruleset, t, signals) for t in ruleset.program.tests]


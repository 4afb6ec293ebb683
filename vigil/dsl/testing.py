"""`vigil test`: run the tests written beside the rules, each on a fresh in-memory engine.

The checker bounds how many events the tests of a rules set may give (check.MAX_GIVEN_EVENTS,
MAX_TEST_EVENTS), and `run_tests` stops at a time budget, so an uploaded rules set's tests cannot
exhaust the service that runs them before activation.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vigil.dsl import ast
from vigil.dsl.loader import RuleSet
from vigil.dsl.runtime import encode_key, parse_time
from vigil.effects import Decision, OutputEffect

# Tests start at a fixed moment, unless they say `starting at`, so that `today` windows and expiry are
# reproducible.
TEST_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
# Seconds all the tests of one rules set may run (`vigil test --time-limit`, the service's settings).
TEST_TIME_LIMIT = 60.0


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


def test_events(ruleset: RuleSet, test: ast.Test) -> Iterator[dict[str, Any]]:
    """The events a test's `given` steps describe, in order (generated one at a time: a test may give
    thousands). The first `given` starts at the test's start (`starting at`, else TEST_EPOCH); each
    later one starts 1 second after the previous one's last event, or exactly `after D` after it (`after`
    on the first `given` counts from the start). `N events within D` come one every D/N seconds, so all N
    fall inside any window of D; without `within`, one a second."""
    start = TEST_EPOCH if test.start is None else parse_time(test.start)
    if start is None:  # the checker refuses such a test
        raise ValueError(f"test {test.name!r} has no start time")
    number = 0
    last: float | None = None
    for given in test.givens:
        gap = given.after.seconds if given.after is not None else (0.0 if last is None else 1.0)
        first = (start if last is None else last) + gap
        step = given.within.seconds / given.count if given.within is not None else 1.0
        for i in range(given.count):
            number += 1
            last = first + i * step
            event: dict[str, Any] = {"type": given.event_type, "id": f"test-{number}", "time": last}
            if given.entity is not None:
                decl = ruleset.program.entities[given.entity]
                for f, key in zip(decl.fields, given.keys):
                    _set(event, f.path, key)
            for path, value in given.assignments:
                _set(event, path, _literal(value))
            yield event


def run_test(ruleset: RuleSet, test: ast.Test, signals: Any = None, deadline: float | None = None,
             time_limit: float = TEST_TIME_LIMIT) -> TestResult:
    """Run one test; stop (failed) once time.monotonic() passes `deadline`."""
    from vigil.events import parse_event  # the engine imports the DSL; tests sit above both
    from vigil.runtime import build_engine
    from vigil.stages import SlowStage

    # A fresh in-memory engine per test, with the signals the front door configured (vigil.runtime).
    engine = build_engine(ruleset, signals=signals)
    # Slow rules (policy models) run their second stage at once, so expectations see its result.
    followups: list[Decision] = []
    slow = SlowStage(engine, followups.append)
    decision: Decision | None = None
    failures: list[str] = []
    last: dict[str, Any] = {}
    for event in test_events(ruleset, test):
        if deadline is not None and time.monotonic() >= deadline:
            failures.append(_over_budget(time_limit, f"stopped before event {event['id']}"))
            decision = None
            break
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


def _over_budget(time_limit: float, where: str) -> str:
    return (f"{where}: the tests of this rules set ran past their time budget of {time_limit:g} s "
            "(give fewer events, or raise the limit)")


def run_tests(ruleset: RuleSet, signals: Any = None, time_limit: float = TEST_TIME_LIMIT) -> list[TestResult]:
    """Run every test of the rules set within `time_limit` seconds in all; a test that is still running
    at the limit fails, and those after it fail without running."""
    deadline = time.monotonic() + time_limit
    results: list[TestResult] = []
    for test in ruleset.program.tests:
        if time.monotonic() >= deadline:
            results.append(TestResult(test.name, str(test.span), False, (_over_budget(time_limit, "not run"),), None))
        else:
            results.append(run_test(ruleset, test, signals, deadline, time_limit))
    return results


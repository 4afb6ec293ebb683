"""`vigil test`: the tests written beside the rules, run on a fresh engine each."""

from __future__ import annotations

from conftest import HEADER, ruleset

from vigil.dsl import testing
from vigil.dsl.testing import TEST_EPOCH, run_tests

RULES = HEADER + """
define posts = count of "post" by user in the last 1 minute
define sent = count of "msg" by pair in the last 1 hour
rule "burst" when event is "post" and posts > 3 then review, label user "bursty" for 1 hour
rule "pester" when event is "msg" and sent >= 3 then block, label pair "pestering", output "harassment"
rule "late" when event is "post" and event.late == true then flag
"""


def results(tests: str) -> dict[str, testing.TestResult]:
    return {r.name: r for r in run_tests(ruleset(RULES + tests))}


def test_passing_tests() -> None:
    got = results("""
test "four posts within a minute"
  given 4 "post" events from user "u1" within 30 seconds
  expect review, rule "burst", label user "bursty", no rule "pester"
test "three posts are fine"
  given 3 "post" from user "u1"
  expect allow, no rule "burst", no label user "bursty"
test "posts spread out"
  given 3 "post" from user "u1" within 30 seconds
  given "post" from user "u1" after 2 minutes
  expect allow
test "composite entity"
  given 3 "msg" events from pair ("a", "b") within 10 minutes
  expect block, label pair "pestering", output "harassment"
test "with fields"
  given "post" from user "u" with late = true, extra.nested = [1, "x"]
  expect flag, rule "late"
""")
    assert {name: (r.passed, r.failures) for name, r in got.items()} == {
        "four posts within a minute": (True, ()),
        "three posts are fine": (True, ()),
        "posts spread out": (True, ()),
        "composite entity": (True, ()),
        "with fields": (True, ()),
    }


def test_failing_expectations_say_why() -> None:
    got = results("""
test "wrong verdict"
  given 4 "post" from user "u1"
  expect block
test "missing label and output"
  given "msg" from pair ("a", "b")
  expect label pair "pestering", output "harassment"
test "rule that did not fire"
  given "post" from user "u1"
  expect rule "burst"
test "rule that fired"
  given 4 "post" from user "u1"
  expect no rule "burst", no label user "bursty"
""")
    assert not any(r.passed for r in got.values())
    [failure] = got["wrong verdict"].failures
    assert failure.endswith("expected verdict block, got review (burst)")
    assert failure.startswith("r.vigil:")
    assert got["missing label and output"].failures[0].endswith('expected pair "a|b" to have label "pestering"')
    assert got["missing label and output"].failures[1].endswith('expected output "harassment"; outputs: none')
    assert got["rule that did not fire"].failures[0].endswith('expected rule "burst" to fire; fired: none')
    assert [f.split(": ", 1)[1] for f in got["rule that fired"].failures] == [
        'expected rule "burst" not to fire',
        'expected user "u1" not to have label "bursty"',
    ]


def test_after_lets_windows_expire() -> None:
    got = results("""
test "window expires"
  given 3 "post" from user "u1"
  given "post" from user "u1" after 1 minute
  expect allow
test "window still open"
  given 3 "post" from user "u1"
  given "post" from user "u1" after 50 seconds
  expect review
""")
    assert got["window expires"].passed, got["window expires"].failures
    assert got["window still open"].passed, got["window still open"].failures


def test_label_expiry_in_tests() -> None:
    got = results("""
test "label gone after its hour"
  given 4 "post" from user "u1"
  given "other" from user "u1" after 2 hours
  expect no label user "bursty"
""")
    assert got["label gone after its hour"].passed, got["label gone after its hour"].failures


def test_events_of_a_test() -> None:
    rules = ruleset(RULES + 'test "t"\n  given 3 "post" from user "u1" within 30 seconds with n = 2\n'
                    '  given "msg" from pair ("a", "b") after 1 minute\n  expect allow')
    events = testing.test_events(rules, rules.program.tests[0])
    assert [(e["type"], e["time"] - TEST_EPOCH) for e in events] == [
        ("post", 0.0), ("post", 10.0), ("post", 20.0), ("msg", 81.0)]
    assert events[0]["user"] == "u1" and events[0]["n"] == 2
    assert (events[3]["user"], events[3]["target"]) == ("a", "b")
    assert len({e["id"] for e in events}) == 4


def test_dead_lettered_event_fails_the_test() -> None:
    got = results('test "bad type"\n  given "post" from user "u" with late = 3\n  expect allow')
    result = got["bad type"]
    assert not result.passed
    assert "dead-lettered" in result.failures[0] and "should be a bool" in result.failures[0]


def test_each_test_starts_from_a_fresh_engine() -> None:
    got = results("""
test "first"
  given 3 "post" from user "u1"
  expect allow
test "second"
  given 3 "post" from user "u1"
  expect allow, no label user "bursty"
""")
    assert all(r.passed for r in got.values())


def test_result_location_is_the_test() -> None:
    [result] = run_tests(ruleset(RULES + '\ntest "t" given "post" expect allow'))
    assert result.location.startswith("r.vigil:")
    assert int(result.location.split(":")[1]) == len(RULES.splitlines()) + 2


def test_label_expectations_of_composite_keys_with_the_separator() -> None:
    # The runner looks the label up under the engine's own key: ("a|b", "c") is not ("a", "b|c").
    got = results("""
test "a pipe inside a part"
  given 3 "msg" events from pair ("a|b", "c") within 10 minutes
  expect block, label pair "pestering"
""")
    assert got["a pipe inside a part"].passed, got["a pipe inside a part"].failures

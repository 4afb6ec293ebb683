"""`vigil test`: the tests written beside the rules, run on a fresh engine each."""

from __future__ import annotations

from conftest import HEADER, errors_of, ruleset

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
    events = list(testing.test_events(rules, rules.program.tests[0]))
    # `after 1 minute` is exactly a minute after the last post (it was 61 s: a second was added on top)
    assert [(e["type"], e["time"] - TEST_EPOCH) for e in events] == [
        ("post", 0.0), ("post", 10.0), ("post", 20.0), ("msg", 80.0)]
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


def _times(givens: str, start: str = "") -> list[float]:
    rules = ruleset(RULES + f'test "t"{start}\n{givens}\n  expect allow')
    return [e["time"] - TEST_EPOCH for e in testing.test_events(rules, rules.program.tests[0])]


def test_times_are_what_the_language_reference_says() -> None:
    # N events within D: one every D/N seconds, so all N fit in any window of D
    assert _times('  given 4 "post" from user "u1" within 1 minute') == [0.0, 15.0, 30.0, 45.0]
    # without `within`: one a second; the next `given` one second after the last event
    assert _times('  given 2 "post" from user "u1"\n  given "post" from user "u1"') == [0.0, 1.0, 2.0]
    # `after` on the first `given` counts from the test's start
    assert _times('  given "post" from user "u1" after 10 seconds') == [10.0]
    assert _times('  given "post" from user "u1"\n  given "post" from user "u1" after 1 hour') == [0.0, 3600.0]


def test_n_events_within_a_window_are_all_counted_in_it() -> None:
    got = results("""
test "four posts within the one-minute window"
  given 4 "post" events from user "u1" within 1 minute
  expect review, rule "burst"
test "a post exactly a minute after the last one starts afresh"
  given 4 "post" events from user "u1" within 1 minute
  given 3 "post" events from user "u1" after 1 minute
  expect allow
""")
    assert {n: r.failures for n, r in got.items()} == {n: () for n in got}


def test_a_test_can_set_its_start_time() -> None:
    start = ' starting at "2026-03-01T23:59:30+01:00"'
    assert [t + TEST_EPOCH for t in _times('  given 2 "post" from user "u1"', start)] == [
        1772405970.0, 1772405971.0]
    got = results("""
define spent = sum of event.amount for user where (event is "buy") today
rule "big day" when event is "buy" and spent > 100 then flag
test "spending resets at midnight" starting at "2026-03-01T23:59:00Z"
  given "buy" from user "u1" with amount = 80
  given "buy" from user "u1" after 2 minutes with amount = 80
  expect allow
test "and adds up before it" starting at "2026-03-01T23:50:00Z"
  given "buy" from user "u1" with amount = 80
  given "buy" from user "u1" after 2 minutes with amount = 80
  expect flag
""")
    assert {n: r.failures for n, r in got.items()} == {n: () for n in got}


def test_a_start_that_is_not_a_time_is_a_check_error() -> None:
    [error] = errors_of(RULES + 'test "t" starting at "tomorrow"\n  given "post" from user "u"\n  expect allow')
    assert error.message == "`starting at` needs an RFC 3339 time, not 'tomorrow'"
    assert error.hint == 'e.g. `starting at "2026-03-01T23:59:00Z"`'


def test_the_events_a_rules_set_s_tests_give_are_bounded() -> None:
    # this test's events grew `vigil serve` to 22.8 GB during an upload's checks (issue 11.2)
    [error] = errors_of(RULES + 'test "t"\n  given 999999999999999999 "post" from user "u"\n  expect allow')
    assert error.message == "a `given` gives at most 10,000 events, not 999,999,999,999,999,999"
    many = "".join(f'test "t{i}"\n  given 10000 "post" from user "u"\n  expect review\n' for i in range(11))
    [error] = errors_of(RULES + many)
    assert error.message == "the tests of this rules set give more than 100,000 events in all"
    assert error.span.line == RULES.count("\n") + 31  # the eleventh test, the one past the bound


def test_tests_stop_at_their_time_budget() -> None:
    rules = ruleset(RULES + 'test "a"\n  given 3 "post" from user "u1"\n  expect allow\n'
                    'test "b"\n  given "post" from user "u1"\n  expect allow\n')
    first, second = run_tests(rules, time_limit=0.0)
    assert not first.passed and not second.passed
    assert first.failures == (("not run: the tests of this rules set ran past their time budget of 0 s "
                               "(give fewer events, or raise the limit)"),)
    assert second.failures == first.failures
    assert all(r.passed for r in run_tests(rules, time_limit=60.0))


def test_a_test_past_the_deadline_stops_before_its_next_event() -> None:
    import time

    rules = ruleset(RULES + 'test "a"\n  given 3 "post" from user "u1"\n  expect allow\n')
    result = testing.run_test(rules, rules.program.tests[0], deadline=time.monotonic(), time_limit=5)
    assert result.failures == (("stopped before event test-1: the tests of this rules set ran past their time "
                                "budget of 5 s (give fewer events, or raise the limit)"),)
    assert result.decision is None

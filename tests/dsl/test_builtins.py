"""The function registry: one registration makes a function that the checker types, the compiler calls
and the engine runs; slow functions wait for the second stage."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import HEADER, event

from vigil.diagnostics import DiagnosticError
from vigil.dsl.builtins import TYPES, FunctionError, Functions, builtin_functions
from vigil.dsl.loader import RuleSet, load_ruleset
from vigil.dsl.testing import run_tests
from vigil.effects import Decision
from vigil.engine import Engine
from vigil.stages import SlowStage


def load(text: str, functions: Functions | None = None) -> RuleSet:
    return load_ruleset("r.vigil", files={"r.vigil": HEADER + text}, functions=functions)


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.close()


def decide(engine: Engine, **data: Any) -> Decision:
    result = engine.process(event(**data))
    assert isinstance(result, Decision), result
    return result


def with_function(name: str, call: Callable[..., Any], params: tuple[str, ...] = ("string",),
                  result: str = "number", **options: Any) -> Functions:
    functions = builtin_functions()
    functions.add(name, params, result, "a test function", call=call, source="tests", **options)
    return functions


def test_every_builtin_is_typed_and_described() -> None:
    functions = builtin_functions()
    assert {"lower", "length", "age", "normalized", "language", "profanity", "nsfw"} <= set(functions)
    for function in functions.values():
        assert all(t in TYPES for t in (*function.params, function.result)), function
        assert function.doc.strip() and function.source == "vigil"
        assert (function.call is None) != (function.bind is None)


def test_the_checker_reads_types_and_names_from_the_registry() -> None:
    with pytest.raises(DiagnosticError) as info:
        load('rule "r" when lower(event.n + 1) == "x" or nosuch(event.t) then flag')
    messages = [d.message for d in info.value.diagnostics]
    assert "`lower` needs a string, got a number" in messages
    unknown = next(d for d in info.value.diagnostics if d.message == "unknown function `nosuch`")
    assert unknown.hint is not None and "lower" in unknown.hint and "profanity" in unknown.hint


def test_one_registration_adds_a_function_to_checker_compiler_and_engine(engines: list[Engine]) -> None:
    functions = with_function("shouting", lambda text: sum(c.isupper() for c in text) / len(text))
    rules = load('rule "Loud" when shouting(event.text) > 0.5 then flag', functions)
    assert "_fn_shouting(" in rules.compiled.source and rules.compiled.functions == ("shouting",)
    engines.append(engine := Engine(rules))
    assert decide(engine, text="HELLO there!!").verdict == "allow"
    loud = decide(engine, text="HELLO")
    assert loud.verdict == "flag" and loud.hits[0].features["shouting(event.text)"] == 1.0
    with pytest.raises(DiagnosticError) as info:
        load('rule "r" when shouting(1) > 1 or shouting("a", "b") > 1 then flag', functions)
    assert {d.message for d in info.value.diagnostics} >= {"`shouting` needs a string, got a number",
                                                          "`shouting` takes 1 argument(s), got 2"}
    with pytest.raises(DiagnosticError):  # a registry without it: unknown, as before
        load('rule "Loud" when shouting(event.text) > 0.5 then flag')


def test_a_function_only_sees_known_arguments_and_unknown_stays_unknown(engines: list[Engine]) -> None:
    seen: list[tuple[Any, ...]] = []

    def pair(a: str, b: float) -> bool:
        seen.append((a, b))
        return len(a) > b

    functions = with_function("longer", pair, ("string", "number"), "bool")
    engines.append(engine := Engine(load('rule "r" when longer(event.t, event.n) then flag\n'
                                         'rule "unknown" when longer(event.t, event.n) is missing then review',
                                         functions)))
    assert decide(engine, t="abc", n=2).verdict == "flag"
    assert decide(engine, t="abc").verdict == "review"
    assert decide(engine, n=1).verdict == "review"
    assert seen == [("abc", 2)]


def test_a_function_named_like_a_helper_shadows_nothing(engines: list[Engine]) -> None:
    # `_get` reads deep fields and `_t1` is a temporary in the generated code: neither may be replaced.
    functions = with_function("get", lambda text: 7, result="number")
    functions.add("t1", ("number",), "number", "another", call=lambda n: n + 1, source="tests")
    rules = load('rule "r" when get(event.a.b.c) == 7 and t1(event.n) == 3 then block', functions)
    engines.append(engine := Engine(rules))
    assert decide(engine, a={"b": {"c": "x"}}, n=2).verdict == "block"
    assert decide(engine, a={"b": {}}, n=2).verdict == "allow"


@pytest.mark.parametrize(("name", "params", "result", "options", "message"), [
    ("lower", ("string",), "string", {}, "function `lower` is already registered by Vigil's built-ins"),
    ("count", ("string",), "number", {}, "function name `count` is a keyword of the rules language"),
    ("has-dash", ("string",), "number", {}, "function name 'has-dash' is not a name rules can call"),
    ("f", ("text",), "number", {}, "function `f`: unknown type 'text'"),
    ("f", ("string",), "number", {"call": None}, "function `f`: give exactly one of `call`"),
    ("f", ("string",), "number", {"doc": " "}, "function `f`: give a one-line `doc`"),
])
def test_a_bad_registration_is_refused_with_the_reason(name: str, params: tuple[str, ...], result: str,
                                                       options: dict[str, Any], message: str) -> None:
    functions = builtin_functions()
    given: dict[str, Any] = {"doc": "d", "call": len, **options}
    with pytest.raises(FunctionError) as info:
        functions.add(name, params, result, given.pop("doc"), **given)
    assert str(info.value).startswith(message)


def test_a_plugin_function_that_fails_or_answers_the_wrong_type_is_unknown(
        engines: list[Engine], caplog: pytest.LogCaptureFixture) -> None:
    def flaky(text: str) -> Any:
        if text == "boom":
            raise ConnectionError("database down")
        return "high" if text == "wrong" else 0.9

    functions = with_function("risk", flaky)
    engines.append(engine := Engine(load('rule "r" when risk(event.t) > 0.5 then flag\n'
                                         'rule "u" when risk(event.t) is missing then review', functions)))
    assert decide(engine, t="fine").verdict == "flag"
    assert decide(engine, t="boom").verdict == "review"
    assert decide(engine, t="boom").verdict == "review"
    assert decide(engine, t="wrong").verdict == "review"
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings.count("function `risk` of plugin `tests` failed: ConnectionError: database down") == 1
    assert "function `risk` of plugin `tests` answered str 'high', not a number" in warnings


def test_a_slow_function_runs_in_the_second_stage_once_per_event(engines: list[Engine]) -> None:
    calls: list[str] = []

    def standing(user: str) -> str:
        calls.append(user)
        return "banned" if user == "u1" else "good"

    functions = with_function("standing", standing, result="string", slow=True)
    rules = load('rule "Fast" when event.n > 1 then flag\n'
                 'rule "Banned" when standing(event.user) == "banned" and event.n > 0 then block', functions)
    assert [info.stage for info in rules.compiled.rules] == [1, 2]
    engines.append(engine := Engine(rules))
    first = decide(engine, user="u1", n=2)
    assert first.verdict == "flag" and first.pending and calls == []  # not asked before the first decision
    later: list[Decision] = []
    SlowStage(engine, later.append).run_batch([(engine_event(first, user="u1", n=2), first)])
    assert [d.verdict for d in later] == ["block"] and later[0].stage == 2
    assert calls == ["u1"]  # probed and decided: asked once


def engine_event(first: Decision, **data: Any) -> Any:
    from vigil.events import parse_event

    return parse_event({"type": first.event_type, "id": first.event_id, "time": first.time, **data})


def test_vigil_test_runs_slow_functions_like_policies() -> None:
    functions = with_function("standing", lambda user: "banned" if user == "u1" else "good", result="string",
                              slow=True)
    rules = load('rule "Banned" when standing(event.user) == "banned" then block\n'
                 'test "a banned user" given "post" from user "u1" expect block\n'
                 'test "a good user" given "post" from user "u2" expect allow', functions)
    results = run_tests(rules)
    assert [r.passed for r in results] == [True, True], [r.failures for r in results]


@pytest.mark.parametrize("signal", ['policy "spam" finds event.text violating', 'standing(event.user) == "x"'])
def test_a_counter_cannot_filter_on_a_slow_signal(signal: str) -> None:
    # A policy in a counter's `where` compiled into the first stage, which has no policy answers: every
    # event was dead-lettered with "NameError: name '_policy' is not defined".
    functions = with_function("standing", lambda user: "x", result="string", slow=True)
    with pytest.raises(DiagnosticError) as info:
        load(f'define n = count of "post" by user where ({signal}) in the last 1 hour\n'
             'rule "r" when n > 0 then flag', functions)
    assert [d.message for d in info.value.diagnostics] == [
        ("a counter's value or `where` filter cannot use a slow signal (a policy model or a slow function): "
         "counters move with the first decision")]


def test_a_rules_set_pickles_with_its_functions(engines: list[Engine]) -> None:
    # The service loads a large rules version in a worker process and unpickles it (vigil/service/compiler.py).
    import pickle

    rules = pickle.loads(pickle.dumps(load('rule "r" when lower(event.t) == "a" and age(event.at) > 10 and '
                                           'language(event.t) is missing then flag')))
    assert set(rules.program.functions) == set(builtin_functions())
    engines.append(engine := Engine(rules))
    assert decide(engine, t="A", at=0).verdict == "flag"

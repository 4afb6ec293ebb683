"""The compiler: deterministic, readable Python, one function per event type, only the rules that apply."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
from conftest import HEADER, event, ruleset

from vigil.dsl import ast, runtime
from vigil.dsl.compile import counter_id
from vigil.dsl.loader import load_ruleset
from vigil.effects import Decision
from vigil.engine import Engine

MakeEngine = Callable[..., Engine]


def verdict(engine: Engine, **data: Any) -> str:
    result = engine.process(event(**data))
    assert isinstance(result, Decision), result
    return result.verdict

RULES = HEADER + """
list "spam" = ["cheap followers", "free iphone"]
list "bad" of domains = ["evil.com", "worse.net"]
define posts = count of "post" by user in the last 1 hour
define logins = count of "login" by ip today
define text = normalized(event.text)
rule "spammy post" severity high
  when event is "post" and (text contains any of list "spam" or domains(event.text) in list "bad") and posts > 3
  then block, label user "spammer" for 7 days
rule "login burst" when event is "login" and logins crosses 10 then output "alerts"
rule "flagged user" when event is any of ["post", "comment"] and user has label "spammer" then review
rule "any type" when event.score > 0.9 then flag
rule "shadowed" mode shadow when event is "comment" and event.text matches /free/i then block
"""


def function_of(source: str, event_type: str) -> str:
    """The text of the function DISPATCH names for `event_type` (or decide_other)."""
    name = "decide_other"
    for line in source.splitlines():
        if line.strip().startswith(f"{event_type!r}:"):
            name = line.split(":")[1].strip().rstrip(",")
    start = source.index(f"def {name}(ev):")
    end = source.find("\n\n\n", start)
    return source[start:end]


def test_same_rules_give_byte_identical_source() -> None:
    assert ruleset(RULES).compiled.source == ruleset(RULES).compiled.source


def test_source_does_not_depend_on_the_hash_seed() -> None:
    script = textwrap.dedent("""
        import sys
        from vigil.dsl.loader import load_ruleset
        sys.stdout.write(load_ruleset("r.vigil", files={"r.vigil": sys.stdin.read()}).compiled.source)
    """)
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", script], input=RULES, capture_output=True, text=True,
                              env=env, check=True, timeout=60)
        outputs.add(done.stdout)
    assert outputs == {ruleset(RULES).compiled.source}


def test_rules_not_relevant_to_a_type_are_absent_from_its_function() -> None:
    source = ruleset(RULES).compiled.source
    post = function_of(source, "post")
    login = function_of(source, "login")
    comment = function_of(source, "comment")
    other = function_of(source, "signup")
    assert "# rule 0: 'spammy post'" in post and "# rule 0" not in login and "# rule 0" not in comment
    assert "# rule 1: 'login burst'" in login and "# rule 1" not in post
    assert "# rule 2: 'flagged user'" in post and "# rule 2" in comment and "# rule 2" not in login
    assert all("# rule 3: 'any type'" in f for f in (post, login, comment, other))
    assert "# rule 4: 'shadowed'" in comment and "# rule 4" not in post
    assert other.count("# rule ") == 1


def test_counters_are_added_only_by_the_types_they_count() -> None:
    source = ruleset(RULES).compiled.source
    assert "_add_many" in function_of(source, "post")
    assert "_add_many" in function_of(source, "login")
    assert "_add_many" not in function_of(source, "comment")
    assert "_add_many" not in function_of(source, "signup")


def test_dispatch_lists_the_named_types_in_order() -> None:
    compiled = ruleset(RULES).compiled
    assert compiled.event_types == ("comment", "login", "post")
    assert compiled.source.endswith("DISPATCH = {\n    'comment': decide_0,\n    'login': decide_1,\n"
                                    "    'post': decide_2,\n}\n")


def test_rule_text_is_never_spliced_into_code(make_engine: MakeEngine) -> None:
    # A rule name with a newline, and a string that looks like code: both must stay data.
    hostile = 'rule "x\\nhits.append((0, {}, ()))\\n#" when event.t == "\\"); hits.append((0, {}, ())); (\\"" then block'
    engine = make_engine(hostile)
    assert verdict(engine, t="nothing") == "allow"
    assert verdict(engine, t='"); hits.append((0, {}, ())); ("') == "block"
    assert all(line.startswith(("    ", "def ", "DISPATCH", "}", "#")) or not line
               for line in engine.ruleset.compiled.source.splitlines())


def test_each_feature_is_computed_once(make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str | None] = []

    def counting(value: str | None) -> str | None:
        calls.append(value)
        return runtime_normalized(value)

    runtime_normalized = runtime.normalized
    monkeypatch.setattr(runtime, "normalized", counting)
    engine = make_engine('rule "a" when normalized(event.t) contains "x" then block\n'
                         'rule "b" when normalized(event.t) contains "y" then flag\n'
                         'rule "c" when event.n > 1 and normalized(event.t) contains "z" then flag')
    assert verdict(engine, t="X Y") == "block"
    assert calls == ["X Y"]
    engine.process(event(t="nothing", n=0))
    assert calls == ["X Y", "nothing"]


def test_counter_ids_are_stable_and_depend_on_the_definition() -> None:
    a = ruleset(HEADER + 'rule "r" when count of "post" by user in the last 1 hour > 1 then block')
    b = ruleset(HEADER + 'define other = 1\nrule "renamed" when event.n > other or '
                'count of "post" by user in the last 1 hour > 5 then flag')
    c = ruleset(HEADER + 'rule "r" when count of "post" by user in the last 2 hours > 1 then block')
    assert a.compiled.counters[0].cid == b.compiled.counters[0].cid
    assert a.compiled.counters[0].cid != c.compiled.counters[0].cid
    condition = a.program.rules[0].condition
    assert isinstance(condition, ast.Compare) and isinstance(condition.left, ast.Counter)
    assert a.compiled.counters[0].cid == counter_id(condition.left)


def test_same_counter_through_two_definitions_is_one_counter() -> None:
    compiled = ruleset(HEADER + 'define a = count of "post" by user in the last 1 hour\n'
                       'define b = count of "post" by user in the last 1 hour\n'
                       'rule "r" when a > 1 and b > 2 then block').compiled
    assert len(compiled.counters) == 1


def test_ruleset_version_follows_content() -> None:
    a = load_ruleset("r.vigil", files={"r.vigil": 'rule "r" when event.n > 1 then block'})
    b = load_ruleset("r.vigil", files={"r.vigil": 'rule "r" when event.n > 1 then block'})
    c = load_ruleset("r.vigil", files={"r.vigil": 'rule "r" when event.n > 2 then block'})
    assert a.version == b.version != c.version
    d = load_ruleset("r.vigil", files={"r.vigil": 'list "l" from "l.txt"\nrule "r" when event.n in list "l" then block',
                                       "l.txt": "a\n"})
    e = load_ruleset("r.vigil", files={"r.vigil": 'list "l" from "l.txt"\nrule "r" when event.n in list "l" then block',
                                       "l.txt": "b\n"})
    assert d.version != e.version



def test_a_string_that_looks_like_generated_code_is_compared_as_written(make_engine: MakeEngine) -> None:
    # The compiler once finished its text with str.replace, which also rewrote string literals from rule
    # files: a literal spelling the lazy read of a field compiled to == "f0" (issue 10.13).
    probe = ruleset('rule "r"\n  when event.a == "x"\n  then block\n').compiled.source
    code = next(line for line in probe.splitlines() if line.startswith("    f0 = "))[len("    f0 = "):]
    literal = f"(f0 if f0 is not _U else (f0 := {code}))"
    assert '"' not in literal
    engine = make_engine(f'rule "r"\n  when event.a == "{literal}"\n  then block\n')
    assert verdict(engine, a=literal) == "block"
    assert verdict(engine, a="f0") == "allow"

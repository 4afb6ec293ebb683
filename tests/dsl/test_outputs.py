"""Outputs with a subject and parameters: syntax, the checker's messages (a newcomer's mistakes among
them), the compiled values and what decisions show."""

from __future__ import annotations

import orjson
import pytest

from vigil.diagnostics import DiagnosticError
from vigil.dsl.loader import load_ruleset
from vigil.effects import Decision
from vigil.engine import Engine

HEAD = 'entity user = event.actor.id\nentity post = event.id\n'


def _errors(body: str) -> list[str]:
    with pytest.raises(DiagnosticError) as caught:
        load_ruleset("r.vigil", files={"r.vigil": HEAD + body})
    return [f"{d.span.line}:{d.span.column}: {d.message} | {d.hint}" for d in caught.value.errors]


def _decide(body: str, event: dict[str, object]) -> Decision:
    engine = Engine(load_ruleset("r.vigil", files={"r.vigil": HEAD + body}))
    decision = engine.process(orjson.dumps({"type": "post", "id": "p1", "time": 0, "actor": {"id": "u1"}, **event}))
    assert isinstance(decision, Decision)
    return decision


def _outputs(decision: Decision) -> list[dict[str, object]]:
    return [e for e in decision.to_json()["effects"] if e["kind"] == "output"]


def test_a_value_without_a_name_shows_the_form_to_write() -> None:
    [error] = _errors('rule "r" when event is "post" then output "redact" with event.id')
    assert error.startswith('3:57: output "redact": a parameter needs a name: write `id = event.id`, not `event.id`')
    assert 'e.g. `output "redact" with subject user, reason = "scam", id = event.id`' in error


@pytest.mark.parametrize("args", ["user", 'reason = "scam", user', "user, reason = 1"])
def test_an_entity_without_subject_says_subject(args: str) -> None:
    [error] = _errors(f'rule "r" when event is "post" then output "redact" with {args}')
    assert "`user` alone is no output argument: an output takes `subject ENTITY` and `name = value`" in error
    assert "write `subject user` to say whom it is about, or `user = …` to send a value" in error


def test_a_trailing_comma_before_the_next_rule_is_still_a_trailing_comma() -> None:
    [error, _] = _errors('rule "r" when event is "post" then output "q" with a = 1,\nrule "s" when x then flag')
    assert error.startswith("4:1: the `,` at the end of line 3 asks for another action, so this `rule` is read as one")


def test_an_argument_after_another_action_belongs_to_no_output() -> None:
    [error] = _errors('rule "r" when event is "post" then output "redact", review, reason = "scam"')
    assert "`reason = …` is an output's argument, but no output comes directly before it" in error


@pytest.mark.parametrize(("args", "message"), [
    ("subject usr", "unknown entity `usr`"),
    ("subject user, subject post", 'output "redact" has more than one subject'),
    ("a = 1, a = 2", 'output "redact" has two parameters named `a`'),
    ("a = nosuch", "unknown name `nosuch`"),
    ('a = policy "spam" finds event.text violating', "output parameter `a` asks a policy model"),
])
def test_bad_arguments(args: str, message: str) -> None:
    errors = _errors(f'rule "r" when event is "post" then output "redact" with {args}')
    assert any(message in e for e in errors), errors


def test_subject_and_parameters_reach_the_decision() -> None:
    decision = _decide('define n = length(event.text)\n'
                       'rule "r" when event is "post" then block, output "redact" with subject user, '
                       'reason = "scam", post = event.id, size = n, tags = ["a", 1], gone = event.nothing, '
                       'flagged = true, label user "x", output "audit" with subject post', {"text": "hello"})
    assert _outputs(decision) == [
        {"kind": "output", "name": "redact", "subject": {"entity": "user", "key": "u1"},
         "params": {"reason": "scam", "post": "p1", "size": 5, "tags": ["a", 1], "gone": None, "flagged": True}},
        {"kind": "output", "name": "audit", "subject": {"entity": "post", "key": "p1"}},
    ]
    assert decision.verdict == "block" and any(e["kind"] == "label" for e in decision.to_json()["effects"])


def test_a_verdict_after_an_output_argument_is_a_verdict() -> None:
    decision = _decide('rule "r" when event is "post" then output "q" with reviewed = 1, review', {})
    assert decision.verdict == "review" and _outputs(decision)[0]["params"] == {"reviewed": 1}


def test_a_large_parameter_is_sent_as_a_summary() -> None:
    decision = _decide('rule "r" when event is "post" then output "q" with text = event.text', {"text": "x" * 50_000})
    value = _outputs(decision)[0]["params"]["text"]  # type: ignore[index]
    assert value["summarized"] == "string" and value["bytes"] == 50_002 and len(value["sha256"]) == 64


def test_a_counter_in_a_parameter_counts_like_any_other() -> None:
    engine = Engine(load_ruleset("r.vigil", files={"r.vigil": HEAD + (
        'rule "r" when event is "post" then output "q" with posts = count of "post" by user in the last 1 hour')}))
    seen = []
    for i in range(3):
        d = engine.process(orjson.dumps({"type": "post", "id": f"p{i}", "time": i, "actor": {"id": "u1"}}))
        assert isinstance(d, Decision)
        seen.append(_outputs(d)[0]["params"])
    assert seen == [{"posts": 1}, {"posts": 2}, {"posts": 3}]


def test_the_compiled_source_is_deterministic_with_parameters() -> None:
    text = HEAD + 'rule "r" when event is "post" then output "q" with subject user, a = event.id, b = lower(event.t)'
    first = load_ruleset("r.vigil", files={"r.vigil": text}).compiled.source
    assert first == load_ruleset("r.vigil", files={"r.vigil": text}).compiled.source

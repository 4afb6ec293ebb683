"""The search language: the rules grammar, checker and compiler over stored events."""

from __future__ import annotations

import pytest

from vigil.analysis.query import Pushdown, QueryError, compile_query
from vigil.diagnostics import DiagnosticError
from vigil.dsl.loader import load_ruleset
from vigil.events import Event
from vigil.signals.labels import Labels
from vigil.stores.memory import MemoryStore

RULES = """
schema "login" { ip: string  account: string  success: bool  actor.id: string }
entity user = event.actor.id
entity ip = event.ip
define failed = event.success == false
define tries = count of "login" by ip in the last 10 minutes
rule "Credential stuffing" when event is "login" and failed and tries > 20 then block
rule "Known bad IP" when ip has label "bad" then review
"""


@pytest.fixture(scope="module")
def context():  # type: ignore[no-untyped-def]
    return load_ruleset("r.vigil", files={"r.vigil": RULES})


def login(ip: str = "1.2.3.4", success: bool = False, t: float = 100.0) -> Event:
    return Event("login", "e1", t, {"ip": ip, "success": success, "account": "a", "actor": {"id": "u1"}})


def errors(text: str, context, **kw) -> list[str]:  # type: ignore[no-untyped-def]
    with pytest.raises(QueryError) as caught:
        compile_query(text, context=context, **kw)
    return [f"{d.span.line}:{d.span.column} {d.message} | {d.hint}" for d in caught.value.diagnostics]


def test_rule_fired_verdict_is_and_fields_decide_a_stored_event(context) -> None:  # type: ignore[no-untyped-def]
    query = compile_query('rule "Credential stuffing" fired and verdict is block and failed and event.ip == "1.2.3.4"',
                          context=context)
    assert query.evaluate(login(), ["Credential stuffing"], "block") == (True, None)
    assert query.evaluate(login(), ["Credential stuffing"], "review")[0] is False
    assert query.evaluate(login(), ["Known bad IP"], "block")[0] is False
    assert query.evaluate(login(success=True), ["Credential stuffing"], "block")[0] is False
    assert query.evaluate(login(ip="9.9.9.9"), ["Credential stuffing"], "block")[0] is False


def test_indexed_filters_are_pushed_down_and_only_what_the_condition_implies(context) -> None:  # type: ignore[no-untyped-def]
    query = compile_query('event is "login" and (verdict is block or verdict is review) and '
                          '(rule "Credential stuffing" fired or rule "Known bad IP" fired) and event.ip == "1.2.3.4"',
                          context=context)
    assert query.pushdown == Pushdown(("login",), ("review", "block"), ("Credential stuffing", "Known bad IP"),
                                      (("ip", "1.2.3.4"),))
    # An `or` mixing kinds, or a negation, implies no indexed filter.
    assert compile_query('verdict is block or event.ip == "x"', context=context).pushdown.empty
    assert compile_query("not verdict is allow", context=context).pushdown.empty


def test_top_values_are_computed_where_the_condition_holds(context) -> None:  # type: ignore[no-untyped-def]
    query = compile_query('top event.ip where rule "Credential stuffing" fired', context=context)
    assert query.has_top
    assert query.evaluate(login(ip="5.5.5.5"), ["Credential stuffing"], "block") == (True, "5.5.5.5")
    assert query.evaluate(login(ip="5.5.5.5"), [], "allow") == (False, None)
    every = compile_query("top lower(event.account)", context=context)
    assert every.evaluate(login(), [], "allow") == (True, "a")


def test_unknown_rule_names_are_errors_with_a_did_you_mean(context) -> None:  # type: ignore[no-untyped-def]
    assert errors('verdict is block and rule "Credential stufing" fired', context) == [
        '1:22 no rule named "Credential stufing" | did you mean `Credential stuffing`?']
    # Rules the record saw fire (an older version's) are known too.
    compile_query('rule "Old rule" fired', context=context, known_rules=["Old rule"])


def test_syntax_and_type_errors_are_located_in_the_query(context) -> None:  # type: ignore[no-untyped-def]
    assert errors("verdict is blok", context)[0].startswith("1:12 unexpected `blok`; expected a verdict")
    assert errors('event.ip = "x"', context)[0].startswith("1:10 unexpected `=`")
    assert "end of the query" in errors("event.ip ==", context)[0]
    assert errors("event.success + 1 > 2", context)[0].startswith("1:1 `event.success` is a bool")
    assert errors("event.ip", context) == [
        "1:1 a search's condition must be true or false, not a string | compare it, e.g. `... > 10`"]


def test_what_a_stored_event_cannot_answer_is_refused_at_its_column(context) -> None:  # type: ignore[no-untyped-def]
    found = errors('event is "login" and tries > 3', context)
    assert found[0].startswith("1:22 a search reads stored events: `tries` counts events in a window")
    assert "rule \"…\" fired" in found[0]
    assert errors('event is "login" and language(event.account) == "en"', context)[0].startswith(
        "1:22 a search reads stored events: this calls `language`")
    assert errors('ip has label "bad"', context)[0].startswith("1:1 a search reads stored events: this reads labels")


def test_labels_are_read_as_they_were_at_the_events_time(context) -> None:  # type: ignore[no-untyped-def]
    labels = Labels(MemoryStore())
    labels.set("ip", "1.2.3.4", "bad", present=True, now=1000.0, source="manual", actor="analyst")
    query = compile_query('ip has label "bad"', context=context, labels=labels)
    assert query.evaluate(login(t=999.0), [], "allow")[0] is False
    assert query.evaluate(login(t=1001.0), [], "allow")[0] is True


def test_rules_may_not_use_the_searching_forms() -> None:
    with pytest.raises(DiagnosticError) as caught:
        load_ruleset("r.vigil", files={"r.vigil": 'rule "a" when event is "x" then flag\n'
                                                   'rule "b" when rule "a" fired or verdict is block then block'})
    messages = [d.message for d in caught.value.errors]
    assert len(messages) == 2 and all("for searches over the record" in m for m in messages)


def test_a_query_without_context_reads_fields_and_decisions() -> None:
    query = compile_query('event is "post" and event.text contains "free money" and not verdict is allow')
    assert query.evaluate(Event("post", "p", 0, {"text": "Free MONEY now"}), [], "flag")[0] is True
    assert query.evaluate(Event("post", "p", 0, {"text": 3}), [], "flag")[0] is False  # wrong type: no match


def test_verdict_used_as_a_name_in_rules_gets_a_plain_hint() -> None:
    with pytest.raises(DiagnosticError) as caught:
        load_ruleset("r.vigil", files={"r.vigil": 'define verdict = 1\nrule "a" when verdict > 0 then flag'})
    [error] = caught.value.errors
    assert (error.span.line, error.span.column) == (2, 23) and "give a definition another name" in (error.hint or "")


def test_a_field_the_record_hashes_is_searched_by_the_hash_of_the_value() -> None:
    from pydantic import SecretStr

    from vigil.analysis.query import record_redact
    from vigil.record.redact import Redactor
    from vigil.record.settings import RecordSettings

    redactor = Redactor(RecordSettings(redact={"user.email": "hash"}, hash_key=SecretStr("k")))
    context = load_ruleset("r.vigil", files={"r.vigil": "entity email = event.user.email\n"})
    stored = Event("signup", "s1", 0, redactor.event({"user": {"email": "a@b.c"}, "country": "fr"}))
    query = compile_query('event.user.email == "a@b.c" and event.country == "fr"', context=context,
                          redact=record_redact(redactor))
    assert query.evaluate(stored, [], "allow")[0] is True
    assert query.pushdown.entities == (("email", stored.data["user"]["email"]),)  # the record's key: hashed too
    plain = compile_query('event.user.email == "a@b.c"', context=context)
    assert plain.evaluate(stored, [], "allow")[0] is False

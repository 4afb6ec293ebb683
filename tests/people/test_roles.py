"""The permission check: roles per queue, child-safety queues closed to everyone without that role, and
tokens that belong to nobody acting with the roles of their scopes."""

from __future__ import annotations

import pytest

from vigil.people.roles import (
    ACTIONS,
    QUEUE_ACTIONS,
    ROLES,
    Grant,
    Principal,
    QueueRef,
    can,
    parse_grant,
    parse_grants,
    token_principal,
    visible,
)

SPAM = QueueRef("spam")
ABUSE = QueueRef("abuse")
CSAM = QueueRef("csam", child_safety=True)
CSAM_2 = QueueRef("csam-appeals", child_safety=True)


def person(*grants: str) -> Principal:
    return Principal("p", parse_grants(grants))


def test_the_issue_s_roles_exist_and_only_name_known_actions() -> None:
    assert {"admin", "rules_manager", "review_lead", "reviewer", "child_safety_reviewer", "analyst"} <= set(ROLES)
    assert all(actions <= set(ACTIONS) for actions in ROLES.values())
    assert QUEUE_ACTIONS <= set(ACTIONS)


def test_a_queue_grant_covers_that_queue_only() -> None:
    alice = person("reviewer:spam")
    assert can(alice, "review.decide", SPAM)
    assert not can(alice, "review.decide", ABUSE)
    assert can(alice, "review.decide")  # in some queue
    assert not can(alice, "review.assign", SPAM)  # a lead's action


def test_a_global_reviewer_covers_every_ordinary_queue_but_no_child_safety_one() -> None:
    reviewer = person("reviewer")
    assert can(reviewer, "review.claim", SPAM) and can(reviewer, "review.claim", ABUSE)
    for action in QUEUE_ACTIONS:
        assert not can(reviewer, action, CSAM)


@pytest.mark.parametrize("grants", [("admin",), ("review_lead",), ("admin", "review_lead", "reviewer", "analyst"),
                                    ("child_safety_reviewer:csam-appeals", "admin")])
def test_without_the_child_safety_role_for_it_a_child_safety_queue_is_invisible(grants: tuple[str, ...]) -> None:
    principal = person(*grants)
    assert [q.name for q in visible(principal, [SPAM, CSAM, ABUSE])] == ["spam", "abuse"]
    assert not any(can(principal, action, CSAM) for action in QUEUE_ACTIONS)


def test_the_child_safety_role_opens_child_safety_queues_only() -> None:
    cs = person("child_safety_reviewer")
    assert can(cs, "review.view", CSAM) and can(cs, "review.media", CSAM) and can(cs, "review.decide", CSAM_2)
    assert not can(cs, "review.view", SPAM)
    assert not can(cs, "review.assign", CSAM)  # assigning is a lead's
    lead = person("child_safety_reviewer:csam", "review_lead")
    assert can(lead, "review.assign", CSAM) and not can(lead, "review.view", CSAM_2)
    assert can(lead, "review.assign", SPAM)


def test_analysts_read_and_change_nothing() -> None:
    analyst = person("analyst")
    assert can(analyst, "read") and can(analyst, "review.view", SPAM)
    changes = [a for a in ACTIONS if a not in ("read", "review.view")]
    assert not any(can(analyst, a) for a in changes)
    assert not can(analyst, "review.media", SPAM)


def test_rules_managers_change_rules_and_banks_not_people() -> None:
    manager = person("rules_manager")
    assert can(manager, "rules.write") and can(manager, "banks.write")
    assert not can(manager, "users.manage") and not can(manager, "review.decide", SPAM)


def test_an_unknown_action_is_an_error_not_a_refusal() -> None:
    with pytest.raises(ValueError, match="unknown action 'rules.wirte'"):
        can(person("admin"), "rules.wirte")


def test_grants_parse_with_clear_errors() -> None:
    assert parse_grant("reviewer:spam") == Grant("reviewer", "spam")
    assert parse_grants(["reviewer,analyst", "reviewer"]) == (Grant("reviewer"), Grant("analyst"))
    with pytest.raises(ValueError, match="unknown role 'moderator'; choose from admin"):
        parse_grant("moderator")
    with pytest.raises(ValueError, match="name the queue"):
        parse_grant("reviewer:")


def test_tokens_of_nobody_act_with_the_roles_of_their_scopes() -> None:
    admin = token_principal("ops", ["admin"], "ab12")
    assert admin.actor == "token:ops" and admin.person is None and admin.token == "ab12"
    assert can(admin, "rules.write") and can(admin, "users.manage") and not can(admin, "review.view", CSAM)
    ingest = token_principal("app", ["ingest"])
    assert can(ingest, "events.send") and not can(ingest, "read")
    reader = token_principal("dash", ["read"])
    assert can(reader, "read") and not can(reader, "labels.write")
    assert token_principal("r", ["review"]).scopes() == ("read", "review")


def test_a_person_s_roles_answer_for_the_scopes_routes_still_check() -> None:
    assert person("admin").scopes() == ("ingest", "read", "review", "admin")
    assert person("rules_manager").scopes() == ("read",)
    assert person("reviewer:spam").scopes() == ("read", "review")

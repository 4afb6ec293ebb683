"""Roles, the actions they permit, and `can(principal, action, queue)`: the one permission check.

A person holds grants, each a role for every queue or for one queue (`reviewer`, `reviewer:spam`).
Queue actions (review.*, appeals.decide) need a grant that covers the queue; other actions need the
role anywhere. Child-safety queues are the exception that Coop #1154 shows must hold everywhere: nothing
in one, not even seeing it, is allowed without the `child_safety_reviewer` role for that queue (or every
queue), whatever else the person holds; admin included.

An API token that belongs to nobody (made before people existed) acts with the roles of its scopes
(`SCOPE_ROLES`) and is recorded as `token:NAME`; a token made for a person acts with that person's roles.

>>> alice = Principal("alice", (Grant("reviewer", "spam"),))
>>> can(alice, "review.decide", QueueRef("spam")), can(alice, "review.decide", QueueRef("abuse"))
(True, False)
>>> lead = Principal("bob", (Grant("review_lead"), Grant("admin")))
>>> can(lead, "review.view", QueueRef("csam", child_safety=True))
False
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

# Every action a permission check may name, and what it lets one do.
ACTIONS: dict[str, str] = {
    "events.send": "send events and read the decisions of one's own events",
    "read": "read labels, rules versions, decisions, metrics and search",
    "labels.write": "add and remove manual labels",
    "rules.write": "upload, activate and roll back rules versions",
    "banks.write": "create banks and add or remove their entries",
    "backtests.run": "replay stored events through candidate rules",
    "review.view": "see a queue, its items and their evidence",
    "review.media": "see the media of a queue's items",
    "review.claim": "claim, release and skip a queue's items",
    "review.decide": "decide a claimed item",
    "review.assign": "assign a queue's items to others, and sweep the queue",
    "appeals.decide": "decide appeals in a queue",
    "users.manage": "create, change and disable people, and their tokens",
    "audit.read": "read and verify the audit log",
}
QUEUE_ACTIONS = frozenset({"review.view", "review.media", "review.claim", "review.decide", "review.assign",
                           "appeals.decide"})
_REVIEW = frozenset({"review.view", "review.media", "review.claim", "review.decide", "appeals.decide", "read"})

# The roles, and the actions each permits.
ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset(ACTIONS),
    "rules_manager": frozenset({"read", "rules.write", "banks.write", "backtests.run"}),
    "review_lead": _REVIEW | {"review.assign", "labels.write"},
    "reviewer": _REVIEW,
    # Only in child-safety queues; in the others it permits nothing (hold `reviewer` too for those).
    "child_safety_reviewer": _REVIEW,
    "analyst": frozenset({"read", "review.view"}),
    # A machine that sends events (a service account, with a token and no password).
    "sender": frozenset({"events.send"}),
}
CHILD_SAFETY_ROLE = "child_safety_reviewer"

# What an API token's scopes (vigil.service.auth.SCOPES) mean as roles, for tokens that belong to nobody.
SCOPE_ROLES: dict[str, str] = {"ingest": "sender", "read": "analyst", "review": "reviewer", "admin": "admin"}
# The scopes a role answers for, where a route still checks a scope (vigil.service.auth.require).
ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "admin": ("ingest", "read", "review", "admin"),
    "rules_manager": ("read",),
    "review_lead": ("read", "review"),
    "reviewer": ("read", "review"),
    "child_safety_reviewer": ("read", "review"),
    "analyst": ("read",),
    "sender": ("ingest",),
}


class Queue(Protocol):
    """What a permission check needs to know about a queue."""

    @property
    def name(self) -> str: ...

    @property
    def child_safety(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class QueueRef:
    name: str
    child_safety: bool = False


@dataclass(frozen=True, slots=True)
class Grant:
    """A role, for every queue (`queue` None) or for one queue."""

    role: str
    queue: str | None = None

    def __str__(self) -> str:
        return self.role if self.queue is None else f"{self.role}:{self.queue}"

    def covers(self, queue: Queue) -> bool:
        if self.queue is not None and self.queue != queue.name:
            return False
        # The child-safety role works in child-safety queues only; the other roles outside them, unless
        # the person also holds the child-safety role there (checked by `can`).
        return queue.child_safety or self.role != CHILD_SAFETY_ROLE


def parse_grant(text: str) -> Grant:
    """`reviewer` or `reviewer:spam`; ValueError naming the roles for an unknown one.

    >>> parse_grant("reviewer:spam")
    Grant(role='reviewer', queue='spam')
    """
    role, _, queue = text.strip().partition(":")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)} (ROLE or ROLE:QUEUE)")
    if _ and not queue:
        raise ValueError(f"{text!r}: name the queue after the colon, e.g. {role}:spam")
    return Grant(role, queue or None)


def parse_grants(texts: Iterable[str]) -> tuple[Grant, ...]:
    return tuple(dict.fromkeys(parse_grant(t) for text in texts for t in text.split(",") if t.strip()))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: a person (`kind` "person", by name), or an API token that belongs to nobody
    (`kind` "token", named `token:NAME`, with the roles of its scopes). `actor` is what every record of
    the action names."""

    name: str
    grants: tuple[Grant, ...]
    kind: str = "person"
    token: str | None = None  # the id of the token the request came with, if any

    @property
    def actor(self) -> str:
        return self.name

    @property
    def person(self) -> str | None:
        return self.name if self.kind == "person" else None

    def roles(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(g.role for g in self.grants))

    def scopes(self) -> tuple[str, ...]:
        """The token scopes these grants answer for (routes that still check scopes)."""
        found = {s for g in self.grants for s in ROLE_SCOPES.get(g.role, ())}
        return tuple(s for s in ("ingest", "read", "review", "admin") if s in found)


def token_principal(name: str, scopes: Iterable[str], token_id: str | None = None) -> Principal:
    """The principal of a token that belongs to nobody: its scopes as roles."""
    grants = tuple(Grant(SCOPE_ROLES[s]) for s in scopes if s in SCOPE_ROLES)
    return Principal(f"token:{name}", grants, kind="token", token=token_id)


def can(principal: Principal, action: str, queue: Queue | None = None) -> bool:
    """Whether `principal` may do `action` (a key of ACTIONS), in `queue` for a queue action. Without a
    queue, a queue action asks whether the principal may do it in some queue. In a child-safety queue,
    only with the child-safety role for it. An unknown action is a ValueError (a typo must not allow)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; the actions are {', '.join(ACTIONS)}")
    if queue is None or action not in QUEUE_ACTIONS:
        return any(action in ROLES.get(g.role, frozenset()) for g in principal.grants)
    if queue.child_safety and not any(g.role == CHILD_SAFETY_ROLE and g.covers(queue) for g in principal.grants):
        return False
    return any(g.covers(queue) and action in ROLES.get(g.role, frozenset()) for g in principal.grants)


def visible(principal: Principal, queues: Iterable[Queue]) -> list[Queue]:
    """The queues `principal` may see (review.view), in the order given: child-safety queues drop out
    for everyone without the role, so that their names and counts are never shown either."""
    return [q for q in queues if can(principal, "review.view", q)]

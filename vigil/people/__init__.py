"""People, roles and permissions (issue 14.8): who may do what, and in which queues.

`can(principal, action, queue)` is the one permission check (vigil.people.roles); `People` keeps the
accounts and console sessions (vigil.people.accounts); every change is written to the audit log
(vigil.audit).
"""

from vigil.people.accounts import People, PeopleError, Person
from vigil.people.roles import (
    ACTIONS,
    ROLES,
    Grant,
    Principal,
    Queue,
    QueueRef,
    can,
    parse_grant,
    parse_grants,
    token_principal,
    visible,
)

__all__ = ["ACTIONS", "ROLES", "Grant", "People", "PeopleError", "Person", "Principal", "Queue", "QueueRef", "can",
           "parse_grant", "parse_grants", "token_principal", "visible"]

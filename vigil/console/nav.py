"""The console's navigation: each page with the permission it needs, shown only to those who have it
(the pages check it again on the server)."""

from __future__ import annotations

from dataclasses import dataclass

from vigil.people.roles import Principal, can


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str  # under /console
    permission: str
    key: str = ""  # the access key (Alt+Shift+KEY in Chromium)

    def visible(self, principal: Principal | None) -> bool:
        return principal is not None and can(principal, self.permission)


NAV: tuple[NavItem, ...] = (
    NavItem("Review", "/review", "review.view", "r"),
    NavItem("Search", "/search", "read", "s"),
    NavItem("Entities", "/entities", "read", "e"),
    NavItem("Dashboard", "/dashboard", "read", "d"),
    NavItem("Rules", "/rules", "read", "u"),
    NavItem("Banks", "/banks", "banks.write", "b"),
    NavItem("Administration", "/admin", "users.manage", "a"),
)

"""The console's routes, mounted by the service's app (vigil.service.app) at /console/: the static
files (vendored htmx and uPlot, the console's CSS and script) and the pages, all behind the security
headers; `/` sends a browser to the console."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from . import admin, banks, dashboard, entity, review, rules, search, session
from .security import SecurityHeaders
from .web import CONSOLE_PATH, templates


class _WithTemplates:
    """Puts the console's template environment into each request's scope (one per app, no global)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.env = templates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["vigil.console"] = self.env
        await self.app(scope, receive, send)


def page_routes() -> list[BaseRoute]:
    """Every page and action of the console, relative to /console."""
    return [
        Route("/", session.home, methods=["GET"]),
        Route("/login", session.login_form, methods=["GET"]),
        Route("/login", session.login, methods=["POST"]),
        Route("/logout", session.logout, methods=["POST"]),
        Route("/review", review.queues, methods=["GET"]),
        Route("/rules", rules.rules_list, methods=["GET"]),
        Route("/banks", banks.banks_list, methods=["GET"]),
        Route("/admin", admin.people_page, methods=["GET"]),
        Route("/admin/people", admin.create_person, methods=["POST"]),
        Route("/admin/person", admin.change_person, methods=["POST"]),
        Route("/admin/token", admin.new_token, methods=["POST"]),
        Route("/admin/audit", admin.audit_page, methods=["GET"]),
        Route("/banks/bank", banks.bank_detail, methods=["GET"]),
        Route("/banks/import", banks.import_csv, methods=["POST"]),
        Route("/banks/toggle", banks.toggle, methods=["POST"]),
        Route("/banks/match", banks.match, methods=["POST"]),
        Route("/rules/rule", rules.rule_detail, methods=["GET"]),
        Route("/rules/stage", rules.change_stage, methods=["POST"]),
        Route("/rules/diff", rules.diff_page, methods=["GET"]),
        Route("/rules/edit", rules.editor, methods=["GET"]),
        Route("/rules/check", rules.check, methods=["POST"]),
        Route("/rules/test", rules.run_tests, methods=["POST"]),
        Route("/rules/backtest", rules.backtest_edit, methods=["POST"]),
        Route("/rules/save", rules.save, methods=["POST"]),
        Route("/review/items/{item_id}", review.item_page, methods=["GET"]),
        Route("/review/items/{item_id}/claim", review.claim, methods=["POST"]),
        Route("/review/items/{item_id}/release", review.release, methods=["POST"]),
        Route("/review/items/{item_id}/decide", review.decide, methods=["POST"]),
        Route("/review/{queue}", review.queue, methods=["GET"]),
        Route("/review/{queue}/claim", review.claim_next, methods=["POST"]),
        Route("/entities", entity.lookup, methods=["GET"]),
        Route("/entities/{entity_type}/{key:path}/labels", entity.change, methods=["POST"]),
        Route("/entities/{entity_type}/{key:path}", entity.entity, methods=["GET"]),
        Route("/search", search.search_page, methods=["GET"]),
        Route("/dashboard", dashboard.dashboard, methods=["GET"]),
        Route("/search/check", search.check, methods=["GET"]),
        Route("/search/bulk", search.bulk, methods=["POST"]),
    ]


async def _to_console(request: Request) -> Response:
    return RedirectResponse(CONSOLE_PATH + "/", status_code=307)


def routes() -> Sequence[BaseRoute]:
    """The console's routes for the service's app."""
    inner = Router(routes=[Mount("/static", app=StaticFiles(packages=[("vigil.console", "static")])),
                           *page_routes()])
    app = SecurityHeaders(_WithTemplates(inner), static_prefix=CONSOLE_PATH + "/static/")
    return [Route("/", _to_console, methods=["GET"], include_in_schema=False),
            Route(CONSOLE_PATH, _to_console, methods=["GET"], include_in_schema=False),
            Mount(CONSOLE_PATH, app=app)]

"""Clear JSON errors: every 4xx and 5xx body is {"error": {"code", "message", "hint"}}."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from vigil.jsonout import dumps


class JSONResponse(Response):
    """A JSON response rendered with orjson (fast); what orjson refuses is rendered plainly, never a 500."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


class ApiError(Exception):
    """An error a client can act on; routes raise it and the app renders it."""

    def __init__(self, status: int, code: str, message: str, hint: str = "", *,
                 extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.extra = extra or {}
        self.headers = headers

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            error["hint"] = self.hint
        error.update(self.extra)
        return {"error": error}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_response(status: int, code: str, message: str, hint: str = "",
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return ApiError(status, code, message, hint, headers=headers).response()


async def api_error_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiError):  # pragma: no cover - registered for ApiError only
        raise exc
    service = getattr(request.app.state, "service", None)
    if service is not None:
        service.metrics.rejected.labels(exc.code).inc()
    return exc.response()


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """The router's own errors (no such path, wrong method) in the same JSON shape."""
    status = int(getattr(exc, "status_code", 500))
    code = _HTTP_CODES.get(status, "http_error")
    hint = "see /openapi.json for the endpoints" if status in (404, 405) else ""
    return error_response(status, code, str(getattr(exc, "detail", "")) or code.replace("_", " "), hint)


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    return error_response(500, "internal", f"internal error: {type(exc).__name__}",
                          "the error is logged on the server; retry, and report it if it persists")

"""Every error the service returns has one JSON shape: ``{"error": {"code": str, "message": str}}``.

Client mistakes are 4xx with a message that says what to change; only a bug reaches the catch-all, which logs the
traceback and answers a JSON 500 without internals.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rtvp.errors import ConfigError, DataError, RtvpError
from rtvp.tasks.llm import LLMError

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI, Request

log = logging.getLogger("rtvp.service")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 408: "request_timeout", 413: "payload_too_large",
               415: "unsupported_media_type", 422: "invalid_request", 429: "too_many_requests", 503: "busy"}


class ServiceError(Exception):
    """A client-facing error: HTTP status, a stable machine-readable code and a human message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_body(code: str, message: str) -> dict[str, Any]:
    """The JSON error payload."""
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error response."""
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = list(err.get("loc", ()))
        if where and where[0] in ("body", "query", "path", "header", "cookie"):  # the part, not the field
            where = where[1:]
        name = ".".join(str(p) for p in where)
        parts.append(f"{name or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_request", _validation_message(exc))


async def _rtvp_error(_: Request, exc: Exception) -> JSONResponse:
    """Map rtvp's own errors: bad input (empty / over-long prompts, bad query) is 422, a failing LLM 502."""
    if isinstance(exc, LLMError):  # the chat endpoint behind /v1/ask is down or misbehaving
        return error_response(502, "llm_unavailable", str(exc))
    if isinstance(exc, (ConfigError, DataError)):
        return error_response(422, "invalid_input", str(exc))
    log.error("rtvp error while serving: %s", exc)
    return error_response(500, "internal_error", str(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error (logged on the server); please report it")


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception type to the JSON error shape."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RtvpError, _rtvp_error)
    app.add_exception_handler(Exception, _unexpected)

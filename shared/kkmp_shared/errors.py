"""The contract's error format, for every 4xx/5xx a service answers.

`{"error": {"code": "<snake_case>", "message": "<human sentence>", "details": ...}}`. Handlers here turn
FastAPI's own errors into that shape so no route has to think about it, and the body-size limit
answers 413 before a handler ever sees an oversized body.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("kkmp.errors")

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error a route raises to answer with the contract's format."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"The {what} does not exist.")


def forbidden(message: str = "You are not allowed to do this.") -> ApiError:
    return ApiError(403, "forbidden", message)


def conflict(code: str, message: str, details: Any = None) -> ApiError:
    return ApiError(409, code, message, details)


def unprocessable(field: str, message: str, code: str = "validation_error") -> ApiError:
    return ApiError(422, code, message, [{"field": field, "message": message, "type": code}])


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def validation_details(errors: list[Any]) -> list[dict[str, Any]]:
    details = []
    for err in errors:
        loc = err.get("loc", ())
        details.append(
            {
                "field": _field_name(loc),
                "location": loc[0] if loc else None,
                "message": err.get("msg", "invalid"),
                "type": err.get("type", "invalid"),
            }
        )
    return details


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """The methods of the resource at this request's path, for the `Allow` of a 405 (RFC 9110).

    Starlette answers 405 from the first route whose path matches and names only that route's methods,
    but a path is often served by several routes (GET on one, PATCH on another), so all of them are
    named. A more literal path (`/suppliers/batch`, `/cooperatives/{id}/movements/batch`) is its own
    resource even where a template with more parameters (`/suppliers/{supplier_id}`,
    `/cooperatives/{id}/movements/{movement_id}`) also matches it: then only the routes with the
    fewest path parameters count, as the OpenAPI document says (concrete paths match before
    templated ones). FastAPI keeps an included router as one entry of `app.routes`;
    `iter_route_contexts` walks the routes inside it.
    """
    by_parameters: dict[int, set[str]] = {}
    for route in iter_route_contexts(routes):
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            parameters = len(getattr(route, "param_convertors", None) or ())
            by_parameters.setdefault(parameters, set()).update(route.methods or ())
    return sorted(by_parameters[min(by_parameters)]) if by_parameters else []


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(list(exc.errors()))
        fields = ", ".join(sorted({d["field"] for d in details})) or "request"
        return JSONResponse(
            error_body("validation_error", f"Invalid input: {fields}.", details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").capitalize()
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405 and (methods := allowed_methods(request.app.routes, request.scope)):
            headers = {**(headers or {}), "Allow": ", ".join(methods)}
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers)

    @app.exception_handler(OperationalError)
    async def _database_busy(request: Request, exc: OperationalError) -> JSONResponse:
        # A lock or connection timeout is the server being overloaded, not the client's fault: say so
        # and let the client retry, instead of a 500.
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        return JSONResponse(
            error_body("unavailable", "The service is busy; retry in a moment."),
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internal_error", "An unexpected error occurred; it has been logged."),
            status_code=500,
        )


class BodySizeLimitMiddleware:
    """Answers 413 for bodies over the limit, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._too_large(send)
                    return
        # Buffer the body (bounded) so a streamed upload that grows past the limit is refused too.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            error_body("payload_too_large", f"The request body is larger than {self.max_bytes} bytes."),
            status_code=413,
        )
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}

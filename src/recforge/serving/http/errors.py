"""One error shape for every 4xx: `{"error": {"code", "message", "field"}}`, its OpenAPI model and handlers.

Everything a request can get wrong ends here, registered once on the app: our own `HttpError`, a
RecforgeError from the model code (bad input it found), pydantic validation of a request body,
and Starlette's 404 / 405. A client (or a fuzzer) can rely on the shape without reading messages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from recforge.errors import RecforgeError
from recforge.serving.metrics import ServiceMetrics

STARLETTE_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


class ErrorDetail(BaseModel):
    code: str = Field(description="A stable machine-readable kind, e.g. `invalid_request`, `not_found`.")
    message: str = Field(description="What is wrong and how to fix it.")
    field: str | None = Field(None, description="Dotted path of the offending request field, when one is at fault.")


class ApiError(BaseModel):
    """The body of every 4xx answer."""

    error: ErrorDetail


class HttpError(Exception):
    """A request the service refuses, with the status and error code to answer."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "field": field}}, status_code=status)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries: each status answers with the ApiError shape."""
    words = {400: "Bad input", 401: "Missing or wrong API key", 404: "Unknown model or version"}
    words |= {413: "Body or batch too large", 422: "Request body does not match its schema"}
    return {s: {"model": ApiError, "description": words.get(s, "Client error")} for s in statuses}


UNION_TAGS = ("int", "str", "constrained-int", "constrained-str")


def _location(loc: Sequence[int | str]) -> str | None:
    """Dotted request path of an error, without pydantic's union-member tags (`user_id`, not `user_id.int`)."""
    return ".".join(str(p) for p in loc if p not in UNION_TAGS) or None


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def validation_error(errors: Sequence[Any]) -> HttpError:
    """One HttpError for pydantic's error list: a JSON syntax error is a 400, a schema mismatch a 422."""
    first = errors[0]
    if first["type"] == "json_invalid":
        return HttpError(400, "malformed_json", f"the request body is not valid JSON: {first['ctx']['error']}")
    problems = "; ".join(f"{_location(e['loc']) or 'body'}: {_message(e)}" for e in errors[:10])
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return HttpError(422, "invalid_request", f"invalid request: {problems}{more}", _location(first["loc"]))


def install_error_handlers(app: FastAPI, metrics: ServiceMetrics) -> None:
    """Register the handlers once: every refusal is counted and answered in the one shape."""

    def answer(request: Request, error: HttpError) -> JSONResponse:
        route = request.scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        metrics.errors.labels(endpoint=endpoint, kind=error.code).inc()
        return error_response(error.status, error.code, error.message, error.field)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HttpError)
        return answer(request, exc)

    async def bad_input(request: Request, exc: Exception) -> JSONResponse:
        return answer(request, HttpError(400, "bad_input", str(exc)))

    async def invalid(request: Request, exc: Exception) -> JSONResponse:  # path, query and header parameters
        assert isinstance(exc, RequestValidationError)
        return answer(request, validation_error(exc.errors()))

    async def starlette_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = STARLETTE_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        message = f"{request.method} {request.url.path}: {detail}"
        response = answer(request, HttpError(exc.status_code, code, message))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    app.add_exception_handler(HttpError, http_error)
    app.add_exception_handler(RecforgeError, bad_input)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, starlette_error)

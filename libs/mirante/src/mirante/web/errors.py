"""One JSON error shape for every service: `{"error": {"code", "message", "details"}, "request_id"}`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mirante.web.request_id import current_request_id

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ApiError(Exception):
    """An error meant for the client: raised by services, rendered by the handler below."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code or type(self).status_code
        self.code = code or type(self).code
        self.details = details
        self.headers = headers


class BadRequestError(ApiError):
    status_code, code = 400, "bad_request"


class UnauthorizedError(ApiError):
    status_code, code = 401, "unauthorized"

    def __init__(self, message: str = "authentication required", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class ForbiddenError(ApiError):
    status_code, code = 403, "forbidden"


class NotFoundError(ApiError):
    status_code, code = 404, "not_found"


class ConflictError(ApiError):
    status_code, code = 409, "conflict"


class PayloadTooLargeError(ApiError):
    status_code, code = 413, "payload_too_large"


class UnsupportedMediaTypeError(ApiError):
    status_code, code = 415, "unsupported_media_type"


class ValidationFailedError(ApiError):
    status_code, code = 422, "validation_error"


class RateLimitedError(ApiError):
    status_code, code = 429, "rate_limited"


class MissingReferenceError(NotFoundError):
    """`field` of a request body names a `thing` that does not exist.

    One rule across the suite for ids (and names) in a body that point at other records: one that names nothing is
    a 404 with that record's `<thing>_not_found` code, as the same id in a path would be, and `details.field` names
    the body field (`floor_id`, `target_machine_id`). A record that exists but cannot be used that way (a floor
    without a plan, an inactive user, a machine that does not run the type) is a 409 (a `ConflictError` whose
    details also name the field). A 422 stays for values that are wrong in themselves, whatever is stored.
    """

    def __init__(self, thing: str, value: object, field: str, *, message: str | None = None, **details: Any) -> None:
        super().__init__(
            message or f"there is no {thing} {value}",
            code=f"{thing.replace(' ', '_')}_not_found",
            details={"field": field, **details},
        )


async def referenced(lookup: Awaitable[T], field: str) -> T:
    """What `lookup` finds; when it raises a 404, that 404 also names `field`, the body field that gave the id
    (`MissingReferenceError`'s rule, for a lookup that already answers the record's own 404)."""
    try:
        return await lookup
    except NotFoundError as missing:
        raise NotFoundError(missing.message, code=missing.code, details={"field": field}) from None


INTERNAL_ERROR_MESSAGE = "internal server error"


def error_body(status_code: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error document; a 500 always says only `INTERNAL_ERROR_MESSAGE`, whatever `message` was given.

    A 500 means the server failed, and the text at hand is then usually an exception's (a driver message
    naming query arguments, a Python `TypeError`): it belongs in the log, next to the request id, never in
    the body. The code and structured details stay, so a caller can still say which step failed.
    """
    if status_code == 500:
        message = INTERNAL_ERROR_MESSAGE
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error, "request_id": current_request_id()}


def error_response(
    status_code: int, code: str, message: str, details: Any = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status_code, code, message, details), status_code=status_code, headers=headers)


def _validation_message(error: Mapping[str, Any]) -> str:
    context = error.get("ctx") or {}
    # A length bound given on top of a validated type (`Annotated[Text, Query(max_length=40)]`) is checked
    # after the type's validator, and pydantic then speaks of "items"; for text, say characters.
    kind = error.get("type")
    if kind in ("too_long", "too_short") and isinstance(error.get("input"), str):
        bound = context.get("max_length" if kind == "too_long" else "min_length")
        unit = "character" if bound == 1 else "characters"
        return f"String should have {'at most' if kind == 'too_long' else 'at least'} {bound} {unit}"
    return str(error.get("msg", "invalid value"))


def _describe_validation(errors: Sequence[Any]) -> list[dict[str, Any]]:
    described = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        described.append({"field": ".".join(location), "message": _validation_message(error)})
    return described


# Python's reason phrases change between versions (413, 422), so the codes of the statuses the suite uses are
# fixed here, the same as the matching `ApiError` classes.
_STABLE_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
}


def _code_for(status_code: int) -> str:
    if status_code in _STABLE_CODES:
        return _STABLE_CODES[status_code]
    try:
        return HTTPStatus(status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    details = None if isinstance(exc.detail, str) else exc.detail
    return error_response(exc.status_code, _code_for(exc.status_code), message, details, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _describe_validation(exc.errors())
    summary = "; ".join(f"{item['field']}: {item['message']}" for item in details[:5])
    return error_response(422, "validation_error", f"invalid request: {summary}", details)


def _internal_error() -> JSONResponse:
    return error_response(500, "internal_error", INTERNAL_ERROR_MESSAGE)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return _internal_error()


class UnhandledErrorMiddleware:
    """Answers an exception no handler took with the 500 error document, logged once with the request id.

    Starlette's own catch-all wraps every user middleware, so there the request id is already unbound and the
    response would miss it (and the CORS headers). Install this inside `RequestIdMiddleware`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                # The status is sent and part of the body with it (a streamed export): the body is left without
                # its end, so the server closes the connection and the client sees an incomplete transfer
                # rather than a file that merely looks short. Re-raising would only log the same error twice.
                logger.exception(
                    "unhandled error on %s %s after the response started; its body is left incomplete",
                    scope["method"],
                    scope["path"],
                )
                return
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            await _internal_error()(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)

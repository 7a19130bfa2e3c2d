"""Every error a service answers has one JSON shape: `{"error": {"code", "message", "details"?}, "request_id"}`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from mirante.settings import InfraSettings
from mirante.testing.apps import library_app
from mirante.testing.plugin import ClientFactory
from mirante.web.errors import (
    ApiError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    MissingReferenceError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
    referenced,
)

LEAKED_SECRET = "postgres-password-hunter2"

API_ERRORS: dict[str, tuple[ApiError, int, str]] = {
    "bad_request": (BadRequestError("the request makes no sense"), 400, "bad_request"),
    "unauthorized": (UnauthorizedError(), 401, "unauthorized"),
    "forbidden": (ForbiddenError("not yours"), 403, "forbidden"),
    "not_found": (NotFoundError("thing 7 not found"), 404, "not_found"),
    "conflict": (ConflictError("already there", code="duplicate_thing"), 409, "duplicate_thing"),
    "too_large": (PayloadTooLargeError("too big"), 413, "payload_too_large"),
    "media_type": (UnsupportedMediaTypeError("send JSON"), 415, "unsupported_media_type"),
    "invalid": (ValidationFailedError("bad field", details=[{"field": "x", "message": "no"}]), 422, "validation_error"),
    "rate_limited": (RateLimitedError("slow down", headers={"Retry-After": "7"}), 429, "rate_limited"),
    "custom_status": (ApiError("gone for good", status_code=410, code="gone"), 410, "gone"),
    "missing_reference": (
        MissingReferenceError("support group", 7, "support_group_id"),
        404,
        "support_group_not_found",
    ),
}

errors_router = APIRouter(prefix="/errors")


class Widget(BaseModel):
    name: str = Field(min_length=1)
    size: int = Field(ge=1)


@errors_router.get("/api/{kind}")
async def raise_api_error(kind: str) -> None:
    raise API_ERRORS[kind][0]


@errors_router.get("/http/{status}")
async def raise_http_exception(status: int) -> None:
    raise HTTPException(status_code=status)


@errors_router.get("/http-detail")
async def raise_http_exception_with_structured_detail() -> None:
    raise HTTPException(status_code=409, detail={"reason": "locked"})


@errors_router.get("/boom")
async def boom() -> None:
    raise RuntimeError(f"could not connect with {LEAKED_SECRET}")


async def _rows_then_failure() -> AsyncIterator[str]:
    yield "id,name\r\n"
    raise RuntimeError(f"cursor lost: {LEAKED_SECRET}")


@errors_router.get("/export.csv")
async def broken_export() -> StreamingResponse:
    return StreamingResponse(_rows_then_failure(), media_type="text/csv")


@errors_router.post("/widgets")
async def create_widget(widget: Widget) -> Widget:
    return widget


@errors_router.get("/numbers/{number}")
async def number(number: int) -> dict[str, int]:
    return {"number": number}


@pytest.fixture
def app(infra_settings: InfraSettings) -> FastAPI:
    return library_app(infra_settings, routers=[errors_router])


@pytest.fixture
async def client(app: FastAPI, make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(app)


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the suite's error document with `status` and `code`; returns its `error` part."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) <= {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    return dict(body["error"])


@pytest.mark.parametrize("kind", sorted(API_ERRORS))
async def test_api_errors_render_their_status_code_and_message(client: httpx.AsyncClient, kind: str) -> None:
    raised, status, code = API_ERRORS[kind]

    response = await client.get(f"/errors/api/{kind}")

    error = assert_error_shape(response, status, code)
    assert error["message"] == raised.message
    if raised.details is None:
        assert "details" not in error
    else:
        assert error["details"] == raised.details


def test_a_body_id_naming_nothing_is_a_404_of_that_record_naming_the_field() -> None:
    single = MissingReferenceError("support group", 7, "support_group_id")
    listed = MissingReferenceError("machine", "'a', 'b'", "preferred_machines", machine_ids=["a", "b"])
    worded = MissingReferenceError("inspection type", "'x'", "inspection_type", message="add 'x' first")

    assert (single.status_code, single.code, single.message) == (
        404,
        "support_group_not_found",
        "there is no support group 7",
    )
    assert single.details == {"field": "support_group_id"}
    assert (listed.code, listed.details) == (
        "machine_not_found",
        {"field": "preferred_machines", "machine_ids": ["a", "b"]},
    )
    assert (worded.code, worded.message) == ("inspection_type_not_found", "add 'x' first")


async def test_referenced_adds_the_body_field_to_a_lookups_404() -> None:
    async def lookup(found: bool) -> str:
        if not found:
            raise NotFoundError("there is no floor 3", code="floor_not_found", details={"other": 1})
        return "floor 3"

    assert await referenced(lookup(True), "floor_id") == "floor 3"
    with pytest.raises(NotFoundError) as missing:
        await referenced(lookup(False), "floor_id")
    assert (missing.value.code, missing.value.message) == ("floor_not_found", "there is no floor 3")
    assert missing.value.details == {"field": "floor_id"}


async def test_api_error_headers_reach_the_client(client: httpx.AsyncClient) -> None:
    unauthorized = await client.get("/errors/api/unauthorized")
    limited = await client.get("/errors/api/rate_limited")

    assert unauthorized.headers["www-authenticate"] == "Bearer"
    assert limited.headers["retry-after"] == "7"


async def test_unknown_path_is_404_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/no-such-thing")

    error = assert_error_shape(response, 404, "not_found")
    assert error["message"] == "Not Found"


async def test_wrong_method_is_405_with_allow_header(client: httpx.AsyncClient) -> None:
    response = await client.delete("/errors/widgets")

    assert_error_shape(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "bad_request"),
        (401, "unauthorized"),
        (403, "forbidden"),
        (404, "not_found"),
        (409, "conflict"),
        (413, "payload_too_large"),
        (415, "unsupported_media_type"),
        (422, "validation_error"),
        (429, "rate_limited"),
    ],
)
async def test_framework_http_exceptions_use_the_same_codes_as_api_errors(
    client: httpx.AsyncClient, status: int, code: str
) -> None:
    response = await client.get(f"/errors/http/{status}")

    assert_error_shape(response, status, code)


async def test_structured_http_exception_detail_becomes_details(client: httpx.AsyncClient) -> None:
    response = await client.get("/errors/http-detail")

    error = assert_error_shape(response, 409, "conflict")
    assert error["message"] == "Conflict"
    assert error["details"] == {"reason": "locked"}


async def test_invalid_body_is_422_listing_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/errors/widgets", json={"name": "", "size": 0})

    error = assert_error_shape(response, 422, "validation_error")
    assert {detail["field"] for detail in error["details"]} == {"body.name", "body.size"}
    assert all(set(detail) == {"field", "message"} for detail in error["details"])
    assert "body.name" in error["message"]
    assert "body.size" in error["message"]


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/errors/widgets", content=b'{"name": ', headers={"Content-Type": "application/json"})

    error = assert_error_shape(response, 422, "validation_error")
    assert error["details"][0]["field"].startswith("body")


async def test_invalid_path_parameter_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/errors/numbers/seven")

    error = assert_error_shape(response, 422, "validation_error")
    assert [detail["field"] for detail in error["details"]] == ["path.number"]


async def test_valid_request_passes_untouched(client: httpx.AsyncClient) -> None:
    response = await client.post("/errors/widgets", json={"name": "gear", "size": 3})

    assert response.status_code == 200
    assert response.json() == {"name": "gear", "size": 3}


async def test_unhandled_exception_is_500_without_internals(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="mirante.web.errors"):
        response = await client.get("/errors/boom", headers={"X-Request-ID": "boom-request-1"})

    error = assert_error_shape(response, 500, "internal_error")
    assert error == {"code": "internal_error", "message": "internal server error"}
    assert response.json()["request_id"] == "boom-request-1"
    for leak in (LEAKED_SECRET, "RuntimeError", "Traceback", "boom.py", "test_web_errors"):
        assert leak not in response.text
    logged = [record for record in caplog.records if record.name == "mirante.web.errors"]
    assert len(logged) == 1
    assert "/errors/boom" in logged[0].getMessage()
    assert logged[0].exc_info is not None


async def test_an_error_inside_a_started_stream_leaves_the_body_incomplete_and_is_logged_once(
    app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Raw ASGI, because an HTTP client cannot tell "closed before the end" from a transport error.
    sent: list[dict[str, Any]] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the client stays connected: only the body's end matters here
        raise AssertionError("unreachable")

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/errors/export.csv",
        "raw_path": b"/errors/export.csv",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    with caplog.at_level(logging.ERROR, logger="mirante.web.errors"):
        await app(scope, receive, send)

    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    bodies = [message for message in sent if message["type"] == "http.response.body"]
    assert b"".join(message.get("body", b"") for message in bodies) == b"id,name\r\n"
    assert all(message.get("more_body") for message in bodies), "no end of body: the server closes the connection"
    logged = [record for record in caplog.records if record.name == "mirante.web.errors"]
    assert len(logged) == 1
    assert "/errors/export.csv" in logged[0].getMessage()
    assert logged[0].exc_info is not None

"""The OpenAPI description every service publishes: the suite's error envelope and readable operation ids.

FastAPI describes request validation failures with its own `HTTPValidationError`, while every error the suite
sends (422 included) is the envelope of `mirante.web.errors`. `describe_api` rewrites the generated document so
that clients and fuzzers read what the services really answer.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field

from mirante.types import INT64_MAX, INT64_MIN
from mirante.web.routing import is_slash_alias

ERROR_SCHEMA: Final = "Error"
ERROR_INFO_SCHEMA: Final = "ErrorInfo"
_ERROR_REF: Final = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
_FASTAPI_VALIDATION_SCHEMAS: Final = ("HTTPValidationError", "ValidationError")
HTTP_METHODS: Final = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})

Operation = tuple[str, str]
"""(path template, upper-case method), e.g. ("/api/v1/users/{user_id}", "GET")."""


class ErrorInfo(BaseModel):
    """What went wrong: a stable machine code, a sentence for people, and optional structured details."""

    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["job 42 not found"])
    details: Any = Field(default=None, description="present only when there is more to say, e.g. invalid fields")


class ErrorEnvelope(BaseModel):
    """The body of every 4xx and 5xx answer of the suite."""

    error: ErrorInfo
    request_id: str | None = Field(description="the `X-Request-ID` of the request, for finding its log lines")


def _error_response(status: int) -> dict[str, Any]:
    return {"description": HTTPStatus(status).phrase, "content": {"application/json": {"schema": dict(_ERROR_REF)}}}


def _error_components() -> dict[str, Any]:
    schema = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs")
    schema["title"] = ERROR_SCHEMA
    return {ERROR_SCHEMA: schema, ERROR_INFO_SCHEMA: definitions["ErrorInfo"]}


def _statuses_for(path: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses any operation of this shape can answer, whatever its handler does."""
    statuses: set[int] = set()
    if operation.get("security"):
        statuses |= {401, 403}
    if "{" in path:
        statuses.add(404)
    if "requestBody" in operation:
        statuses |= {400, 413}
    return statuses


def _declare_errors(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in _statuses_for(path, operation):
        responses.setdefault(str(status), {})
    for code, response in responses.items():
        if not code.isdigit() or int(code) < 400:
            continue
        content = response.get("content", {}).get("application/json", {})
        schema_ref = content.get("schema", {}).get("$ref", "")
        if not content or schema_ref.endswith("/HTTPValidationError"):
            response["content"] = _error_response(int(code))["content"]
            response.setdefault("description", HTTPStatus(int(code)).phrase)


_NUMERIC_BOUNDS: Final = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def _integer_bound(value: float) -> int:
    """The integer a bound of an integer schema stood for before FastAPI's document model made it a float.

    Below 2^53 the float holds it exactly. Beyond, it lost digits: the suite's only bounds out there are the
    int64 limits of `mirante.types`, and `float(2**63 - 1)` is 2^63, a value no `bigint` column holds.
    """
    return max(INT64_MIN, min(INT64_MAX, int(value)))


# Pydantic's names for bounds it checks after a wrapped type (`Annotated[Int32, Field(le=10)]`), and the JSON Schema
# keyword each stands for, with how it combines with a bound the type itself gives.
_PYDANTIC_BOUNDS: Final = {
    "ge": ("minimum", max),
    "gt": ("exclusiveMinimum", max),
    "le": ("maximum", min),
    "lt": ("exclusiveMaximum", min),
}


def _rename_pydantic_bounds(node: dict[str, Any]) -> None:
    for name, (keyword, tighter) in _PYDANTIC_BOUNDS.items():
        if name in node:
            value = node.pop(name)
            node[keyword] = tighter(node[keyword], value) if keyword in node else value
    if "multiple_of" in node:
        node["multipleOf"] = node.pop("multiple_of")


def json_schema_bounds(node: Any) -> None:
    """Give the numeric schemas in `node` (a document or any part of it) exact JSON Schema bounds, in place.

    FastAPI validates the document through models whose `maximum` and `minimum` are floats: an `Id64` column's
    9223372036854775807 came out as 9.223372036854776e+18, i.e. 2^63, and fuzzers generated ids past the column
    that the schema seemed to allow (each refused with a 422 on schema-valid input). Bounds pydantic left under
    its own names (`le` on a bounded `Int32`) become the JSON Schema keywords, which clients and fuzzers read.
    """
    if isinstance(node, dict):
        if node.get("type") in ("integer", "number"):
            _rename_pydantic_bounds(node)
        if node.get("type") == "integer":
            for key in _NUMERIC_BOUNDS:
                value = node.get(key)
                if isinstance(value, float) and value.is_integer():
                    node[key] = _integer_bound(value)
        for child in node.values():
            json_schema_bounds(child)
    elif isinstance(node, list):
        for child in node:
            json_schema_bounds(child)


def operation_names(app: FastAPI) -> dict[Operation, str]:
    """Documented operations and their ids: the route's name, suffixed by the method where names repeat."""
    named: list[tuple[Operation, str]] = []
    for route in iter_route_contexts(app.routes):
        path, name = route.path_format, route.name
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema or not path or not name:
            continue
        named.extend(((path, method), name) for method in sorted(route.methods or ()))
    repeated = Counter(name for _, name in named)
    return {
        operation: re.sub(r"\W", "_", f"{name}_{operation[1].lower()}" if repeated[name] > 1 else name)
        for operation, name in named
    }


def describe_api(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite FastAPI's document in place: the error envelope for every error status, readable operation ids,
    integer bounds as integers.

    Raises `ValueError` when two operations would share an id: clients generated from the document need them
    unique.
    """
    names = operation_names(app)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method.upper() not in HTTP_METHODS:
                continue
            operation["operationId"] = names.get((path, method.upper()), operation.get("operationId"))
            _declare_errors(path, operation)
    duplicates = [name for name, count in Counter(names.values()).items() if count > 1]
    if duplicates:
        raise ValueError(f"operation ids used more than once: {sorted(duplicates)}")
    json_schema_bounds(schema)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(_error_components())
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        if f'"#/components/schemas/{name}"' not in json.dumps(schema):
            components.pop(name, None)
    return schema


def documented_operations(schema: dict[str, Any]) -> set[Operation]:
    """Every (path, method) the document describes."""
    return {
        (path, method.upper())
        for path, item in schema.get("paths", {}).items()
        for method in item
        if method.upper() in HTTP_METHODS
    }


def _served(app: FastAPI) -> Iterator[tuple[Operation, bool]]:
    """Every served operation and whether the document has it; a slash alias serves its documented twin's."""
    for route in iter_route_contexts(app.routes):
        path = route.path_format
        if path is None or is_slash_alias(route.original_route):
            continue
        in_schema = isinstance(route.original_route, APIRoute) and bool(route.include_in_schema)
        for method in route.methods or ():
            yield (path, method), in_schema


def served_operations(app: FastAPI) -> set[Operation]:
    """Every (path, method) the app answers, documented or not (HEAD included where Starlette adds it)."""
    return {operation for operation, _ in _served(app)}


def undocumented_operations(app: FastAPI) -> set[Operation]:
    """The served operations left out of the document on purpose (`include_in_schema=False`, docs, pages)."""
    return {operation for operation, in_schema in _served(app) if not in_schema}


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods some route of the app serves at this concrete path, sorted: the `Allow` of a 405."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        regex = getattr(route, "path_regex", None)
        if route.methods and regex is not None and regex.match(path):
            methods |= set(route.methods)
    return sorted(methods)


def shadowed_paths(app: FastAPI) -> set[tuple[str, str]]:
    """Pairs (path, template) where another route's template also matches a route's path: `/webhooks/event-types`
    under `/webhooks/{subscription_id}`. Starlette takes the first route that matches, so the methods of the
    template leak onto the path: a PATCH to `/webhooks/event-types` reached the subscription's PATCH and answered
    422 for its id instead of 405. An integer id written `{subscription_id:int}` matches digits only.
    """
    routes = [
        (route.path_format, route.path_regex)
        for route in iter_route_contexts(app.routes)
        if route.path_format and getattr(route, "path_regex", None) is not None
    ]
    return {
        (path, template) for path, _ in routes for template, regex in routes if template != path and regex.match(path)
    }


class DescribedApp(FastAPI):
    """A FastAPI app whose `/openapi.json` is rewritten by `describe_api` (once per set of routes)."""

    _described: dict[str, Any] | None = None

    def openapi(self) -> dict[str, Any]:
        with warnings.catch_warnings():
            # FastAPI gives every method of a route the same provisional id and warns of it; `describe_api`
            # replaces those ids with one per method and refuses real duplicates itself.
            warnings.filterwarnings("ignore", message="Duplicate Operation ID", category=UserWarning)
            schema = super().openapi()
        if schema is not self._described:
            self._described = describe_api(self, schema)
        return schema

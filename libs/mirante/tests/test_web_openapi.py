"""The OpenAPI document describes what the services answer: the error envelope, readable ids, served methods."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from mirante.auth.principal import CurrentPrincipal
from mirante.settings import InfraSettings
from mirante.testing.apps import library_app
from mirante.testing.plugin import ClientFactory
from mirante.types import INT64_MAX, Id64, Int32
from mirante.web.openapi import documented_operations, served_operations, shadowed_paths, undocumented_operations
from mirante.web.schema import Omittable

ERROR_REF = {"$ref": "#/components/schemas/Error"}
gadgets = APIRouter(prefix="/api/v1/gadgets", tags=["gadgets"])


class Gadget(BaseModel):
    name: str


class GadgetChange(BaseModel):
    name: Omittable[str] = None
    note: str | None = None


@gadgets.get("")
async def list_gadgets(principal: CurrentPrincipal) -> list[Gadget]:
    return []


@gadgets.post("", status_code=201)
async def create_gadget(gadget: Gadget, principal: CurrentPrincipal) -> Gadget:
    return gadget


@gadgets.patch("/{gadget_id}")
async def update_gadget(gadget_id: int, change: GadgetChange, principal: CurrentPrincipal) -> Gadget:
    return Gadget(name=change.name or "unchanged")


@gadgets.get("/public/ping")
async def ping() -> str:
    return "pong"


@gadgets.get("/hidden", include_in_schema=False)
async def hidden() -> str:
    return "not described"


def _operation(schema: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = schema["paths"][path][method]
    return operation


def _error_statuses(operation: dict[str, Any]) -> set[str]:
    return {
        code
        for code, response in operation["responses"].items()
        if response.get("content", {}).get("application/json", {}).get("schema")
        == {"$ref": "#/components/schemas/Error"}
    }


@pytest.fixture
def gadget_app(infra_settings: InfraSettings) -> FastAPI:
    return library_app(infra_settings, routers=[gadgets])


def test_every_error_status_is_the_envelope_and_fastapi_validation_schemas_are_gone(gadget_app: FastAPI) -> None:
    schema = gadget_app.openapi()
    components = schema["components"]["schemas"]

    assert "HTTPValidationError" not in components
    assert "ValidationError" not in components
    assert set(components["Error"]["required"]) == {"error", "request_id"}
    assert set(components["ErrorInfo"]["required"]) == {"code", "message"}
    # Authenticated, with a path parameter and a body: every error it can answer is declared, all as the envelope.
    assert _error_statuses(_operation(schema, "/api/v1/gadgets/{gadget_id}", "patch")) >= {
        "400", "401", "403", "404", "413", "422"
    }  # fmt: skip
    created = _operation(schema, "/api/v1/gadgets", "post")
    assert _error_statuses(created) >= {"400", "401", "403", "413", "422"}
    assert "404" not in created["responses"]
    public = _operation(schema, "/api/v1/gadgets/public/ping", "get")
    assert not {"401", "403", "404", "413"} & set(public["responses"])


def test_login_and_signup_declare_rate_limiting_and_every_identity_error(gadget_app: FastAPI) -> None:
    schema = gadget_app.openapi()

    assert _error_statuses(_operation(schema, "/api/v1/auth/login", "post")) >= {"401", "415", "422", "429"}
    assert _error_statuses(_operation(schema, "/api/v1/auth/signup", "post")) >= {"404", "409", "422", "429"}
    assert _error_statuses(_operation(schema, "/api/v1/users", "post")) >= {"409"}
    assert _error_statuses(_operation(schema, "/api/v1/users/{user_id}", "delete")) >= {"404", "409"}


def test_operation_ids_are_route_names_and_unique(gadget_app: FastAPI) -> None:
    schema = gadget_app.openapi()
    ids = [operation["operationId"] for item in schema["paths"].values() for operation in item.values()]

    assert len(ids) == len(set(ids))
    assert _operation(schema, "/api/v1/gadgets", "get")["operationId"] == "list_gadgets"
    assert _operation(schema, "/api/v1/users/{user_id}", "get")["operationId"] == "get_user"


def test_a_handler_served_on_several_methods_gets_one_id_per_method(infra_settings: InfraSettings) -> None:
    router = APIRouter()

    async def answer() -> str:
        return "ok"

    router.add_api_route("/answer", answer, methods=["GET", "POST"])
    schema = library_app(infra_settings, routers=[router]).openapi()

    assert _operation(schema, "/answer", "get")["operationId"] == "answer_get"
    assert _operation(schema, "/answer", "post")["operationId"] == "answer_post"


def test_two_routes_with_one_name_are_refused(infra_settings: InfraSettings) -> None:
    router = APIRouter()

    async def first() -> str:
        return "1"

    router.add_api_route("/one", first, methods=["GET"], name="same")
    router.add_api_route("/two", first, methods=["GET"], name="same")
    app = library_app(infra_settings, routers=[router])

    with pytest.raises(ValueError, match="same_get"):
        app.openapi()


def test_omittable_fields_are_not_nullable_but_nullable_ones_stay(gadget_app: FastAPI) -> None:
    change = gadget_app.openapi()["components"]["schemas"]["GadgetChange"]["properties"]

    assert change["name"] == {"title": "Name", "type": "string"}
    assert {"type": "null"} in change["note"]["anyOf"]


def test_documented_operations_are_the_served_ones_but_the_explicitly_hidden(gadget_app: FastAPI) -> None:
    documented = documented_operations(gadget_app.openapi())

    assert undocumented_operations(gadget_app) == {
        ("/openapi.json", "GET"),
        ("/openapi.json", "HEAD"),
        ("/docs", "GET"),
        ("/docs/assets/{name}", "GET"),
        ("/metrics", "GET"),
        ("/api/v1/gadgets/hidden", "GET"),
    }
    assert served_operations(gadget_app) - undocumented_operations(gadget_app) == documented


async def test_405_allows_every_method_served_at_the_path(gadget_app: FastAPI, make_client: ClientFactory) -> None:
    client = await make_client(gadget_app)

    collection = await client.put("/api/v1/gadgets")
    item = await client.delete("/api/v1/gadgets/7")

    assert collection.status_code == 405
    assert collection.headers["allow"] == "GET, POST"
    assert collection.json()["error"]["code"] == "method_not_allowed"
    assert collection.json()["request_id"] == collection.headers["x-request-id"]
    assert item.status_code == 405
    assert item.headers["allow"] == "PATCH"


class Bounded(BaseModel):
    big: Id64
    small: Annotated[Int32, Field(ge=-5, le=5)]
    ratio: Annotated[float, Field(ge=0, le=1.5)]


def test_integer_bounds_are_integers_and_exact(infra_settings: InfraSettings) -> None:
    router = APIRouter()

    async def bounded(body: Bounded) -> Bounded:
        return body

    router.add_api_route("/bounded", bounded, methods=["POST"])
    properties = library_app(infra_settings, routers=[router]).openapi()["components"]["schemas"]["Bounded"]
    properties = properties["properties"]

    # FastAPI's document model made these floats: 2^63 - 1 became 9.223372036854776e+18, past any bigint. The
    # bounds given after `Int32` came as pydantic's `ge` and `le`, which JSON Schema does not know.
    assert (properties["big"]["minimum"], properties["big"]["maximum"]) == (1, INT64_MAX)
    assert (properties["small"]["minimum"], properties["small"]["maximum"]) == (-5, 5)
    assert all(type(properties[name][bound]) is int for name in ("big", "small") for bound in ("minimum", "maximum"))
    assert not {"ge", "le"} & set(properties["small"])
    assert properties["ratio"]["maximum"] == 1.5


def test_a_template_matching_another_routes_path_is_found(infra_settings: InfraSettings) -> None:
    def app_with(template: str) -> FastAPI:
        router = APIRouter(prefix="/things")

        async def special() -> str:
            return "special"

        async def thing(thing_id: Id64) -> int:
            return thing_id

        router.add_api_route("/special", special, methods=["GET"])
        router.add_api_route(template, thing, methods=["GET", "PATCH"])
        return library_app(infra_settings, routers=[router])

    assert shadowed_paths(app_with("/{thing_id}")) == {("/things/special", "/things/{thing_id}")}
    assert shadowed_paths(app_with("/{thing_id:int}")) == set()


async def test_an_integer_template_leaves_its_sibling_path_a_405(
    infra_settings: InfraSettings, make_client: ClientFactory
) -> None:
    router = APIRouter(prefix="/things")

    async def special() -> str:
        return "special"

    async def change(thing_id: Id64) -> int:
        return thing_id

    router.add_api_route("/special", special, methods=["GET"])
    router.add_api_route("/{thing_id:int}", change, methods=["PATCH"])
    client = await make_client(library_app(infra_settings, routers=[router]))

    refused = await client.patch("/things/special")
    changed = await client.patch("/things/7")

    assert refused.status_code == 405 and refused.headers["allow"] == "GET"
    assert changed.status_code == 200 and changed.json() == 7
    assert (await client.patch(f"/things/{2**63}")).status_code == 422

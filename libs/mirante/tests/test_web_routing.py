"""`SlashRouter`: a route ending in `/` answers without the slash too, with no redirect, and is documented once."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from mirante.settings import InfraSettings
from mirante.testing.apps import library_app
from mirante.testing.plugin import ClientFactory
from mirante.types import Int32, Text
from mirante.web.openapi import documented_operations, served_operations, undocumented_operations
from mirante.web.routing import SlashRouter

widgets = SlashRouter(prefix="/api/v1/widgets", tags=["widgets"])


class Widget(BaseModel):
    name: Text


@widgets.get("/")
async def list_widgets() -> list[Widget]:
    return [Widget(name="a")]


@widgets.post("/", status_code=201)
async def create_widget(widget: Widget) -> Widget:
    return widget


@widgets.get("/{widget_id}/")
async def get_widget(widget_id: Int32) -> Widget:
    return Widget(name=str(widget_id))


@widgets.get("/{widget_id}/parts")
async def widget_parts(widget_id: Int32) -> list[str]:
    return ["bolt"]


@pytest.fixture
def widget_app(infra_settings: InfraSettings) -> FastAPI:
    return library_app(infra_settings, routers=[widgets])


@pytest.mark.parametrize("path", ["/api/v1/widgets/", "/api/v1/widgets"])
async def test_both_spellings_answer_without_a_redirect(
    widget_app: FastAPI, make_client: ClientFactory, path: str
) -> None:
    client = await make_client(widget_app)

    listed = await client.get(path)
    created = await client.post(path, json={"name": "new"})
    item = await client.get(path.rstrip("/") + "/7" + ("/" if path.endswith("/") else ""))

    assert listed.status_code == 200
    assert listed.json() == [{"name": "a"}]
    assert created.status_code == 201
    assert created.json() == {"name": "new"}
    assert item.status_code == 200
    assert item.json() == {"name": "7"}


async def test_the_alias_validates_like_the_route(widget_app: FastAPI, make_client: ClientFactory) -> None:
    client = await make_client(widget_app)

    refused = await client.get("/api/v1/widgets/99999999999")

    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "validation_error"


async def test_a_route_without_a_slash_gets_no_alias(widget_app: FastAPI, make_client: ClientFactory) -> None:
    client = await make_client(widget_app)

    assert (await client.get("/api/v1/widgets/7/parts")).status_code == 200
    assert (await client.get("/api/v1/widgets/7/parts/", follow_redirects=False)).status_code == 307  # Starlette


def test_each_operation_is_documented_once_with_the_slash(widget_app: FastAPI) -> None:
    schema = widget_app.openapi()
    paths = {path for path in schema["paths"] if path.startswith("/api/v1/widgets")}

    assert paths == {"/api/v1/widgets/", "/api/v1/widgets/{widget_id}/", "/api/v1/widgets/{widget_id}/parts"}
    assert schema["paths"]["/api/v1/widgets/"]["get"]["operationId"] == "list_widgets"
    assert not {operation for operation in undocumented_operations(widget_app) if "widgets" in operation[0]}
    assert served_operations(widget_app) - undocumented_operations(widget_app) == documented_operations(schema)

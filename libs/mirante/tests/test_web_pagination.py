"""Lists paginate as `{count, next, previous, results}` with `page`, a capped `page_size`, and links that keep
the other query parameters."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query
from pydantic import BaseModel

from mirante.settings import CoreSettings, InfraSettings
from mirante.testing.apps import library_app
from mirante.testing.plugin import ClientFactory
from mirante.web.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, Pagination

TOTAL = 23
DEFAULT_SIZE = 5
MAX_SIZE = 10


class Thing(BaseModel):
    id: int
    colour: str


THINGS = [Thing(id=number, colour="red" if number % 2 else "blue") for number in range(1, TOTAL + 1)]

things_router = APIRouter()


@things_router.get("/things")
async def list_things(
    pagination: Pagination,
    colour: str | None = None,
    tag: Annotated[list[str] | None, Query()] = None,
) -> Page[Thing]:
    matching = [thing for thing in THINGS if colour is None or thing.colour == colour]
    window = matching[pagination.offset : pagination.offset + pagination.limit]
    return pagination.build(window, len(matching))


@things_router.get("/page-params")
async def page_parameters(pagination: Pagination) -> dict[str, int]:
    return {"page": pagination.page, "page_size": pagination.page_size, "offset": pagination.offset}


@pytest.fixture
async def client(infra_settings: InfraSettings, make_client: ClientFactory) -> httpx.AsyncClient:
    infra = infra_settings.model_copy(
        update={"core": CoreSettings(default_page_size=DEFAULT_SIZE, max_page_size=MAX_SIZE)}
    )
    return await make_client(library_app(infra, routers=[things_router]))


def query_of(link: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(link).query)


def ids(body: dict[str, object]) -> list[int]:
    results = body["results"]
    assert isinstance(results, list)
    return [item["id"] for item in results]


async def test_first_page_uses_the_default_size(client: httpx.AsyncClient) -> None:
    response = await client.get("/things")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == TOTAL
    assert ids(body) == [1, 2, 3, 4, 5]
    assert body["previous"] is None
    assert urlsplit(body["next"]).path == "/things"
    assert query_of(body["next"]) == {"page": ["2"], "page_size": [str(DEFAULT_SIZE)]}


async def test_middle_page_links_both_ways(client: httpx.AsyncClient) -> None:
    body = (await client.get("/things", params={"page": 3, "page_size": 4})).json()

    assert ids(body) == [9, 10, 11, 12]
    assert query_of(body["previous"]) == {"page": ["2"], "page_size": ["4"]}
    assert query_of(body["next"]) == {"page": ["4"], "page_size": ["4"]}


async def test_last_page_has_no_next(client: httpx.AsyncClient) -> None:
    body = (await client.get("/things", params={"page": 5})).json()

    assert ids(body) == [21, 22, 23]
    assert body["next"] is None
    assert query_of(body["previous"]) == {"page": ["4"], "page_size": [str(DEFAULT_SIZE)]}


async def test_page_past_the_end_is_empty_not_an_error(client: httpx.AsyncClient) -> None:
    body = (await client.get("/things", params={"page": 99})).json()

    assert body["count"] == TOTAL
    assert body["results"] == []
    assert body["next"] is None
    assert query_of(body["previous"])["page"] == ["98"]


async def test_page_size_above_the_cap_is_silently_capped(client: httpx.AsyncClient) -> None:
    response = await client.get("/things", params={"page_size": 500})

    assert response.status_code == 200
    body = response.json()
    assert ids(body) == list(range(1, MAX_SIZE + 1))
    assert query_of(body["next"]) == {"page": ["2"], "page_size": [str(MAX_SIZE)]}


async def test_a_default_above_the_cap_is_capped_too(infra_settings: InfraSettings, make_client: ClientFactory) -> None:
    infra = infra_settings.model_copy(update={"core": CoreSettings(default_page_size=50, max_page_size=4)})
    client = await make_client(library_app(infra, routers=[things_router]))

    body = (await client.get("/things")).json()

    assert ids(body) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "query.page"),
        ({"page": -1}, "query.page"),
        ({"page": "first"}, "query.page"),
        ({"page_size": 0}, "query.page_size"),
        ({"page_size": "all"}, "query.page_size"),
    ],
)
async def test_bad_page_parameters_are_422(client: httpx.AsyncClient, params: dict[str, str | int], field: str) -> None:
    response = await client.get("/things", params=params)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [detail["field"] for detail in error["details"]] == [field]


async def test_links_keep_the_other_query_parameters(client: httpx.AsyncClient) -> None:
    params = (("colour", "red"), ("tag", "a"), ("tag", "b"), ("page", "2"), ("page_size", "3"))

    body = (await client.get("/things", params=params)).json()

    assert body["count"] == 12
    assert ids(body) == [7, 9, 11]
    for link, page in ((body["next"], "3"), (body["previous"], "1")):
        assert query_of(link) == {"colour": ["red"], "tag": ["a", "b"], "page": [page], "page_size": ["3"]}


async def test_following_next_walks_every_item_once(client: httpx.AsyncClient) -> None:
    seen: list[int] = []
    link: str | None = "/things?page_size=4&colour=blue"
    pages = 0

    while link is not None:
        body = (await client.get(link)).json()
        seen.extend(ids(body))
        link = body["next"]
        pages += 1

    assert seen == [thing.id for thing in THINGS if thing.colour == "blue"]
    assert pages == 3


async def test_an_app_without_suite_settings_uses_the_library_defaults() -> None:
    app = FastAPI()
    app.include_router(things_router)
    transport = httpx.ASGITransport(app=app)

    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        default = (await client.get("/page-params")).json()
        capped = (await client.get("/page-params", params={"page": 2, "page_size": MAX_PAGE_SIZE + 1})).json()

    assert default == {"page": 1, "page_size": DEFAULT_PAGE_SIZE, "offset": 0}
    assert capped == {"page": 2, "page_size": MAX_PAGE_SIZE, "offset": MAX_PAGE_SIZE}


async def test_page_model_documents_the_item_type(client: httpx.AsyncClient) -> None:
    openapi = (await client.get("/openapi.json")).json()

    schema_ref = openapi["paths"]["/things"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    page_schema = openapi["components"]["schemas"][schema_ref["$ref"].rsplit("/", 1)[-1]]
    assert set(page_schema["required"]) == {"count", "next", "previous", "results"}
    assert page_schema["properties"]["results"]["items"]["$ref"].endswith("/Thing")

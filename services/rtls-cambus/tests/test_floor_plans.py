"""Floor plan uploads: what is taken, what is refused and why, and how the image is served."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio

from mirante.testing.plugin import HeadersFactory

ImageMaker = Callable[[int, int], bytes]
PLANS = "/api/v1/floor-plans"


@pytest_asyncio.fixture(loop_scope="session")
async def admin(auth_headers: HeadersFactory) -> dict[str, str]:
    return await auth_headers("admin")


@pytest_asyncio.fixture(loop_scope="session")
async def floor_id(client: httpx.AsyncClient, admin: dict[str, str]) -> int:
    building = await client.post("/api/v1/buildings", json={"name": f"b-{uuid.uuid4().hex[:8]}"}, headers=admin)
    floor = await client.post("/api/v1/floors", json={"building_id": building.json()["id"], "level": 2}, headers=admin)
    floor_id: int = floor.json()["id"]
    return floor_id


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    floor_id: int,
    data: bytes,
    filename: str = "plan.png",
    **form: str,
) -> httpx.Response:
    fields = {"floor_id": str(floor_id), "scale_px_per_m": "25", **form}
    return await client.post(PLANS, data=fields, files={"image": (filename, data, "image/png")}, headers=headers)


async def test_a_png_is_stored_with_its_size_and_served_to_signed_in_users(
    client: httpx.AsyncClient, admin: dict[str, str], auth_headers: HeadersFactory, floor_id: int, make_png: ImageMaker
) -> None:
    image = make_png(40, 30)
    response = await upload(client, admin, floor_id, image, origin_x_px="5", origin_y_px="7.5", filename="../../x.svg")
    assert response.status_code == 201, response.text
    plan: dict[str, Any] = response.json()
    assert (plan["content_type"], plan["width_px"], plan["height_px"], plan["size_bytes"]) == (
        "image/png",
        40,
        30,
        len(image),
    )
    assert (plan["scale_px_per_m"], plan["origin_x_px"], plan["origin_y_px"]) == (25.0, 5.0, 7.5)

    viewer = await auth_headers("viewer")
    served = await client.get(plan["image_url"], headers=viewer)
    assert served.status_code == 200 and served.content == image
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in served.headers["content-security-policy"]
    assert served.headers["etag"] == f'"{plan["sha256"]}"'
    unchanged = await client.get(plan["image_url"], headers={**viewer, "If-None-Match": served.headers["etag"]})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert (await client.get(plan["image_url"])).status_code == 401

    second = await upload(client, admin, floor_id, image)
    assert second.status_code == 409 and second.json()["error"]["code"] == "floor_has_plan"
    changed = await client.patch(f"{PLANS}/{plan['id']}", json={"scale_px_per_m": 10}, headers=admin)
    assert changed.status_code == 200 and changed.json()["scale_px_per_m"] == 10.0
    for bad in ({"scale_px_per_m": 0}, {"scale_px_per_m": None}, {"origin_x_px": "Infinity"}):
        assert (await client.patch(f"{PLANS}/{plan['id']}", json=bad, headers=admin)).status_code == 422
    listed = (await client.get(PLANS, params={"floor_id": floor_id}, headers=viewer)).json()
    assert [item["id"] for item in listed["results"]] == [plan["id"]] and "image" not in listed["results"][0]


async def test_a_jpeg_is_taken_by_its_magic_bytes(
    client: httpx.AsyncClient, admin: dict[str, str], floor_id: int, make_jpeg: ImageMaker
) -> None:
    response = await upload(client, admin, floor_id, make_jpeg(1024, 768), filename="plan.png")
    assert response.status_code == 201, response.text
    assert response.json()["content_type"] == "image/jpeg" and response.json()["width_px"] == 1024


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", 415, "image_type_refused"),
        (b"%PDF-1.7 this is not an image", 415, "image_type_refused"),
        (b"", 415, "image_type_refused"),
    ],
    ids=["svg", "not-an-image-named-png", "empty"],
)
async def test_what_is_not_a_png_or_jpeg_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str], floor_id: int, data: bytes, status: int, code: str
) -> None:
    response = await upload(client, admin, floor_id, data, filename="plan.png")
    assert response.status_code == status and response.json()["error"]["code"] == code


@pytest.mark.parametrize(("width", "height"), [(100_000, 10), (10, 0), (2**32 - 1, 2**32 - 1)])
async def test_absurd_dimensions_are_refused_before_decoding(
    client: httpx.AsyncClient, admin: dict[str, str], floor_id: int, make_png: ImageMaker, width: int, height: int
) -> None:
    response = await upload(client, admin, floor_id, make_png(width, height))
    assert response.status_code == 422 and response.json()["error"]["code"] == "image_dimensions_refused"


async def test_an_image_over_the_size_limit_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str], floor_id: int, make_png: ImageMaker
) -> None:
    too_big = make_png(8, 8) + b"\x00" * (64 * 1024)
    response = await upload(client, admin, floor_id, too_big)
    assert response.status_code == 413
    huge = await upload(client, admin, floor_id, b"\x00" * (2 * 1024 * 1024))
    assert huge.status_code == 413


async def test_bad_form_fields_are_422(
    client: httpx.AsyncClient, admin: dict[str, str], floor_id: int, make_png: ImageMaker
) -> None:
    for fields in (
        {"scale_px_per_m": "-1"},
        {"scale_px_per_m": "nan"},
        {"origin_x_px": "1e308"},
        {"name": "n" * 201},
        {"name": "a\x00"},
    ):
        response = await upload(client, admin, floor_id, make_png(4, 4), **fields)
        assert response.status_code == 422, (fields, response.text)
    missing_floor = await upload(client, admin, 2**62, make_png(4, 4))
    assert missing_floor.status_code == 404
    overflow = await upload(client, admin, 2**63, make_png(4, 4))  # type: ignore[arg-type]
    assert overflow.status_code == 422

"""The catalogue API against the real database: good paths, refusals, and what deleting referenced rows does."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.testing.plugin import HeadersFactory

ImageMaker = Callable[[int, int], bytes]
API = "/api/v1"


class Caller:
    def __init__(self, client: httpx.AsyncClient, admin: dict[str, str], operator: dict[str, str]) -> None:
        self.client = client
        self.admin = admin
        self.operator = operator

    async def made(self, path: str, body: dict[str, Any], *, as_operator: bool = False) -> dict[str, Any]:
        response = await self.client.post(
            f"{API}{path}", json=body, headers=self.operator if as_operator else self.admin
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def floor_with_plan(self, make_png: ImageMaker, *, width: int = 200, height: int = 100) -> dict[str, Any]:
        building = await self.made("/buildings", {"name": unique("b")})
        floor = await self.made("/floors", {"building_id": building["id"], "level": 0})
        response = await self.client.post(
            f"{API}/floor-plans",
            data={"floor_id": str(floor["id"]), "scale_px_per_m": "20"},
            files={"image": ("plan.png", make_png(width, height), "image/png")},
            headers=self.admin,
        )
        assert response.status_code == 201, response.text
        return floor


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture(loop_scope="session")
async def api(client: httpx.AsyncClient, auth_headers: HeadersFactory) -> Caller:
    return Caller(client, await auth_headers("admin"), await auth_headers("operator"))


async def test_buildings_and_floors_round_trip(api: Caller) -> None:
    name = unique("HQ")
    building = await api.made("/buildings", {"name": name, "code": "hq-1", "address": "  Rua A, 1  "})
    assert building["address"] == "Rua A, 1"
    listed = (await api.client.get(f"{API}/buildings", params={"q": name[:6]}, headers=api.operator)).json()
    assert [item["id"] for item in listed["results"]] == [building["id"]] and listed["count"] == 1

    again = await api.client.post(f"{API}/buildings", json={"name": name}, headers=api.admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "building_exists"

    ground = await api.made("/floors", {"building_id": building["id"], "level": 0, "name": "Térreo"})
    await api.made("/floors", {"building_id": building["id"], "level": -1})
    twin = await api.client.post(f"{API}/floors", json={"building_id": building["id"], "level": 0}, headers=api.admin)
    assert twin.status_code == 409 and twin.json()["error"]["code"] == "floor_exists"
    floors = (await api.client.get(f"{API}/floors", params={"building_id": building["id"]}, headers=api.admin)).json()
    assert [item["level"] for item in floors["results"]] == [-1, 0]

    moved = await api.client.patch(f"{API}/floors/{ground['id']}", json={"level": -1}, headers=api.admin)
    assert moved.status_code == 409
    renamed = await api.client.patch(f"{API}/floors/{ground['id']}", json={"name": None}, headers=api.admin)
    assert renamed.status_code == 200 and renamed.json()["name"] is None
    nulled = await api.client.patch(f"{API}/buildings/{building['id']}", json={"name": None}, headers=api.admin)
    assert nulled.status_code == 422

    in_use = await api.client.delete(f"{API}/buildings/{building['id']}", headers=api.admin)
    assert in_use.status_code == 409 and in_use.json()["error"]["details"]["referenced_by"] == "floors"

    missing = await api.client.post(f"{API}/floors", json={"building_id": 2**62, "level": 0}, headers=api.admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "building_not_found"


async def test_a_floor_with_zones_is_kept_and_its_plan_goes_with_it(api: Caller, make_png: ImageMaker) -> None:
    floor = await api.floor_with_plan(make_png)
    zone = await api.made(
        "/zones", {"floor_id": floor["id"], "name": "Lab", "restricted": True, "polygon": [[0, 0], [50, 0], [50, 50]]}
    )
    assert zone["restricted"] is True and zone["polygon"] == [[0, 0], [50, 0], [50, 50]]
    refused = await api.client.delete(f"{API}/floors/{floor['id']}", headers=api.admin)
    assert refused.status_code == 409 and refused.json()["error"]["details"]["referenced_by"] == "zones"

    assert (await api.client.delete(f"{API}/zones/{zone['id']}", headers=api.admin)).status_code == 204
    assert (await api.client.delete(f"{API}/floors/{floor['id']}", headers=api.admin)).status_code == 204
    plans = (await api.client.get(f"{API}/floor-plans", params={"floor_id": floor["id"]}, headers=api.admin)).json()
    assert plans["count"] == 0


async def test_zone_polygons_are_checked_against_the_plan(api: Caller, make_png: ImageMaker) -> None:
    floor = await api.floor_with_plan(make_png, width=200, height=100)
    cases = {
        "outside": [[0, 0], [300, 0], [0, 50]],
        "cross": [[0, 0], [100, 100], [100, 0], [0, 100]],
    }
    for words, polygon in cases.items():
        response = await api.client.post(
            f"{API}/zones", json={"floor_id": floor["id"], "name": words, "polygon": polygon}, headers=api.admin
        )
        assert response.status_code == 422 and words in response.json()["error"]["message"], response.text
    two_points = await api.client.post(
        f"{API}/zones", json={"floor_id": floor["id"], "name": "x", "polygon": [[0, 0], [1, 1]]}, headers=api.admin
    )
    assert two_points.status_code == 422

    bare_building = await api.made("/buildings", {"name": unique("bare")})
    bare_floor = await api.made("/floors", {"building_id": bare_building["id"], "level": 3})
    no_plan = await api.client.post(
        f"{API}/zones",
        json={"floor_id": bare_floor["id"], "name": "x", "polygon": [[0, 0], [5, 0], [5, 5]]},
        headers=api.admin,
    )
    assert no_plan.status_code == 409 and no_plan.json()["error"]["code"] == "floor_plan_required"
    plain = await api.made("/zones", {"floor_id": bare_floor["id"], "name": "Hall"})
    assert plain["polygon"] is None
    twin = await api.client.post(f"{API}/zones", json={"floor_id": bare_floor["id"], "name": "Hall"}, headers=api.admin)
    assert twin.status_code == 409


async def test_tags_normalise_macs_and_keep_one_holder_with_history(api: Caller, db_session: AsyncSession) -> None:
    ana = await api.made("/people", {"full_name": "Ana"}, as_operator=True)
    bruno = await api.made("/people", {"full_name": "Bruno", "external_id": unique("E")}, as_operator=True)
    tag = await api.made("/tags", {"mac": "aa-bb-cc-00-11-22", "person_id": ana["id"]}, as_operator=True)
    assert tag["mac"] == "AA:BB:CC:00:11:22" and tag["person_id"] == ana["id"]

    same = await api.client.post(f"{API}/tags", json={"mac": "aabb.cc00.1122"}, headers=api.operator)
    assert same.status_code == 409 and same.json()["error"]["code"] == "tag_exists"
    bad = await api.client.post(f"{API}/tags", json={"mac": "not-a-mac"}, headers=api.operator)
    assert bad.status_code == 422 and "MAC" in bad.text

    given = await api.client.put(
        f"{API}/tags/{tag['id']}/assignment", json={"person_id": bruno["id"]}, headers=api.operator
    )
    assert given.status_code == 200 and given.json()["person_id"] == bruno["id"]
    current = (await api.client.get(f"{API}/tags", params={"person_id": bruno["id"]}, headers=api.operator)).json()
    assert [item["id"] for item in current["results"]] == [tag["id"]]
    history = (await api.client.get(f"{API}/tags/{tag['id']}/assignments", headers=api.operator)).json()
    assert [item["person_id"] for item in history["results"]] == [bruno["id"], ana["id"]]
    assert history["results"][1]["assigned_to"] == history["results"][0]["assigned_from"]

    assert (await api.client.delete(f"{API}/tags/{tag['id']}", headers=api.operator)).status_code == 409
    assert (await api.client.delete(f"{API}/people/{bruno['id']}", headers=api.operator)).status_code == 409
    taken_back = await api.client.delete(f"{API}/tags/{tag['id']}/assignment", headers=api.operator)
    assert taken_back.status_code == 200 and taken_back.json()["assigned_to"] is not None
    again = await api.client.delete(f"{API}/tags/{tag['id']}/assignment", headers=api.operator)
    assert again.status_code == 404
    kept = await api.client.delete(f"{API}/people/{bruno['id']}", headers=api.operator)
    assert kept.status_code == 409 and kept.json()["error"]["code"] == "person_has_tag_history"

    events = await db_session.execute(
        text("SELECT type FROM rtls_cambus.outbox WHERE subject = :subject ORDER BY envelope->>'time'"),
        {"subject": f"tag/{tag['id']}"},
    )
    assert [row[0] for row in events] == [
        "rtls.tag.assigned",
        "rtls.tag.unassigned",
        "rtls.tag.assigned",
        "rtls.tag.unassigned",
    ]


async def test_a_role_is_bounded_by_its_column(api: Caller) -> None:
    # The column holds 100 characters; the schema once allowed 200, and a longer role was a 500 from the insert.
    person = await api.made("/people", {"full_name": "Dora", "role": "r" * 100}, as_operator=True)
    assert person["role"] == "r" * 100

    created = await api.client.post(f"{API}/people", json={"full_name": "Eva", "role": "r" * 101}, headers=api.operator)
    changed = await api.client.patch(f"{API}/people/{person['id']}", json={"role": "r" * 101}, headers=api.operator)

    for refused in (created, changed):
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"][0]["field"] == "body.role"


async def test_person_groups_hold_members(api: Caller) -> None:
    person = await api.made("/people", {"full_name": "Carla"}, as_operator=True)
    group = await api.made("/person-groups", {"name": unique("Visitors")}, as_operator=True)
    for _ in range(2):
        added = await api.client.post(
            f"{API}/person-groups/{group['id']}/members", json={"person_id": person["id"]}, headers=api.operator
        )
        assert added.status_code == 204
    members = (await api.client.get(f"{API}/people", params={"group_id": group["id"]}, headers=api.operator)).json()
    assert [item["id"] for item in members["results"]] == [person["id"]]
    assert (await api.client.delete(f"{API}/person-groups/{group['id']}", headers=api.operator)).status_code == 204
    assert (await api.client.get(f"{API}/people/{person['id']}", headers=api.operator)).status_code == 200
    assert (await api.client.delete(f"{API}/people/{person['id']}", headers=api.operator)).status_code == 204


async def test_gateways_are_placed_on_their_floor(api: Caller, make_png: ImageMaker) -> None:
    floor = await api.floor_with_plan(make_png, width=200, height=100)
    zone = await api.made("/zones", {"floor_id": floor["id"], "name": "Room 1"})
    mac = "0a:0b:0c:0d:0e:" + uuid.uuid4().hex[:2]
    gateway = await api.made(
        "/devices/gateways",
        {"mac": mac, "floor_id": floor["id"], "zone_id": zone["id"], "x_px": 20, "y_px": 30, "rssi_offset": -3},
    )
    assert gateway["mac"] == mac.upper() and gateway["building_id"] == floor["building_id"]
    assert gateway["status"] == "unknown" and gateway["last_seen_at"] is None

    off_plan = await api.client.patch(
        f"{API}/devices/gateways/{gateway['id']}", json={"x_px": 500, "y_px": 10}, headers=api.admin
    )
    assert off_plan.status_code == 422
    other = await api.floor_with_plan(make_png)
    wrong_zone = await api.client.patch(
        f"{API}/devices/gateways/{gateway['id']}",
        json={"floor_id": other["id"], "zone_id": zone["id"]},
        headers=api.admin,
    )
    assert wrong_zone.status_code == 409 and wrong_zone.json()["error"]["code"] == "zone_on_another_floor"
    unplaced = await api.client.patch(
        f"{API}/devices/gateways/{gateway['id']}", json={"floor_id": None}, headers=api.admin
    )
    assert unplaced.status_code == 200
    assert {key: unplaced.json()[key] for key in ("floor_id", "zone_id", "x_px", "building_id")} == dict.fromkeys(
        ("floor_id", "zone_id", "x_px", "building_id")
    )
    twin = await api.client.post(f"{API}/devices/gateways", json={"mac": mac.replace(":", "")}, headers=api.admin)
    assert twin.status_code == 409

    listed = (
        await api.client.get(f"{API}/devices/gateways", params={"assigned": "false", "q": mac[-5:]}, headers=api.admin)
    ).json()
    assert [item["id"] for item in listed["results"]] == [gateway["id"]]
    as_camera = await api.client.get(f"{API}/devices/cameras/{gateway['id']}", headers=api.admin)
    assert as_camera.status_code == 404


async def test_cameras_and_camera_groups(api: Caller) -> None:
    building = await api.made("/buildings", {"name": unique("B")})
    other = await api.made("/buildings", {"name": unique("B")})
    floor = await api.made("/floors", {"building_id": other["id"], "level": 1})
    camera = await api.made(
        "/devices/cameras", {"code": "cam-01", "building_id": building["id"], "info": {"model": "x"}}
    )
    wrong_floor = await api.client.patch(
        f"{API}/devices/cameras/{camera['id']}", json={"floor_id": floor["id"]}, headers=api.admin
    )
    assert wrong_floor.status_code == 409 and wrong_floor.json()["error"]["code"] == "floor_in_another_building"
    twin = await api.client.post(
        f"{API}/devices/cameras", json={"code": "cam-01", "building_id": building["id"]}, headers=api.admin
    )
    assert twin.status_code == 409
    hostile_info = await api.client.post(
        f"{API}/devices/cameras",
        json={"code": "cam-02", "building_id": building["id"], "info": {"a\u0000": 1}},
        headers=api.admin,
    )
    assert hostile_info.status_code == 422

    group = await api.made("/devices/camera-groups", {"name": unique("Entrances")})
    added = await api.client.post(
        f"{API}/devices/camera-groups/{group['id']}/members", json={"device_id": camera["id"]}, headers=api.admin
    )
    assert added.status_code == 204
    grouped = (
        await api.client.get(f"{API}/devices/cameras", params={"group_id": group["id"]}, headers=api.admin)
    ).json()
    assert [item["id"] for item in grouped["results"]] == [camera["id"]]
    everything = (
        await api.client.get(f"{API}/devices", params={"building_id": building["id"]}, headers=api.admin)
    ).json()
    assert [(item["kind"], item["code"]) for item in everything["results"]] == [("camera", "cam-01")]

    in_use = await api.client.delete(f"{API}/buildings/{building['id']}", headers=api.admin)
    assert in_use.status_code == 409 and in_use.json()["error"]["details"]["referenced_by"] == "devices"
    assert (await api.client.delete(f"{API}/devices/cameras/{camera['id']}", headers=api.admin)).status_code == 204
    gone = await api.client.delete(
        f"{API}/devices/camera-groups/{group['id']}/members/{camera['id']}", headers=api.admin
    )
    assert gone.status_code == 404


async def test_a_body_id_naming_nothing_is_a_404_naming_the_field(api: Caller) -> None:
    missing = 2**62
    building = await api.made("/buildings", {"name": unique("B")})
    floor = await api.made("/floors", {"building_id": building["id"], "level": 0})
    bare_floor = await api.made("/floors", {"building_id": building["id"], "level": 1})
    group = await api.made("/person-groups", {"name": unique("G")}, as_operator=True)
    camera_group = await api.made("/devices/camera-groups", {"name": unique("C")})
    tag = await api.made("/tags", {"mac": "0c:0d:0e:0f:10:" + uuid.uuid4().hex[:2]}, as_operator=True)
    cases = [
        ("POST", "/floors", {"building_id": missing, "level": 0}, "building_not_found", "building_id"),
        ("POST", "/zones", {"floor_id": missing, "name": "Z"}, "floor_not_found", "floor_id"),
        ("POST", "/devices/gateways", {"mac": "0e:00:00:00:00:01", "floor_id": missing}, "floor_not_found", "floor_id"),
        (
            "POST",
            "/devices/gateways",
            {"mac": "0e:00:00:00:00:01", "floor_id": floor["id"], "zone_id": missing},
            "zone_not_found",
            "zone_id",
        ),
        ("POST", "/devices/cameras", {"code": "c", "building_id": missing}, "building_not_found", "building_id"),
        (
            "POST",
            "/devices/cameras",
            {"code": "c", "building_id": building["id"], "floor_id": missing},
            "floor_not_found",
            "floor_id",
        ),
        ("POST", "/tags", {"mac": "0e:00:00:00:00:02", "person_id": missing}, "person_not_found", "person_id"),
        ("PUT", f"/tags/{tag['id']}/assignment", {"person_id": missing}, "person_not_found", "person_id"),
        ("POST", f"/person-groups/{group['id']}/members", {"person_id": missing}, "person_not_found", "person_id"),
        (
            "POST",
            f"/devices/camera-groups/{camera_group['id']}/members",
            {"device_id": missing},
            "camera_not_found",
            "device_id",
        ),
    ]
    for method, path, body, code, field in cases:
        response = await api.client.request(method, f"{API}{path}", json=body, headers=api.admin)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == code and response.json()["error"]["details"] == {"field": field}

    plan = await api.client.post(
        f"{API}/floor-plans",
        data={"floor_id": str(missing), "scale_px_per_m": "20"},
        files={"image": ("plan.png", b"not read", "image/png")},
        headers=api.admin,
    )
    assert plan.status_code == 404 and plan.json()["error"]["details"] == {"field": "floor_id"}
    placed_without_plan = await api.client.post(
        f"{API}/devices/gateways",
        json={"mac": "0e:00:00:00:00:03", "floor_id": bare_floor["id"], "x_px": 1, "y_px": 1},
        headers=api.admin,
    )
    assert placed_without_plan.status_code == 409
    assert placed_without_plan.json()["error"]["code"] == "floor_plan_required"


async def test_hostile_bodies_are_refused_with_422(api: Caller) -> None:
    bodies = [
        ("/buildings", {"name": "a\u0000b"}),
        ("/buildings", {"name": "x", "description": "\u0000"}),
        ("/buildings", {"name": " \u00a0 "}),
        ("/floors", {"building_id": 2**63, "level": 0}),
        ("/floors", {"building_id": 1, "level": 2**31}),
        ("/people", {"full_name": ""}),
        ("/people", {"full_name": "x", "unknown": 1}),
        ("/devices/gateways", {"mac": "aa:bb:cc:dd:ee:ff", "rssi_offset": 2**63}),
        ("/devices/gateways", {"mac": "aa:bb:cc:dd:ee:ff", "x_px": "NaN", "y_px": 1, "floor_id": 1}),
        ("/devices/cameras", {"code": "c", "building_id": 1, "info": {"n": "nul \u0000 inside"}}),
        # A code is what the topics carry, so the schema's pattern is the whole rule: no trimming into one.
        ("/devices/cameras", {"code": " cam-01", "building_id": 1}),
        ("/buildings", {"name": "x", "code": "hq "}),
        ("/zones", {"floor_id": 1, "name": "z", "polygon": [[0, 0], [1, 1], ["Infinity", 1]]}),
    ]
    for path, body in bodies:
        response = await api.client.post(f"{API}{path}", json=body, headers=api.admin)
        assert response.status_code == 422, (path, body, response.text)
        assert response.json()["error"]["code"] == "validation_error"


async def test_names_are_stored_trimmed(api: Caller) -> None:
    name = unique("Lobby")
    building = await api.made("/buildings", {"name": f"\u00a0 {name}  "})

    assert building["name"] == name
    fetched = await api.client.get(f"{API}/buildings/{building['id']}", headers=api.operator)
    assert fetched.json()["name"] == name


async def test_hostile_filters_are_refused_with_422(api: Caller) -> None:
    for path, params in [
        ("/buildings", {"q": "a\x00"}),
        ("/floors", {"building_id": str(2**63)}),
        ("/floors", {"level": str(2**31)}),
        ("/devices", {"kind": "printer"}),
        ("/devices/gateways", {"status": "asleep"}),
        ("/tags", {"assigned": "maybe"}),
        ("/people", {"page_size": "0"}),
    ]:
        response = await api.client.get(f"{API}{path}", params=params, headers=api.operator)
        assert response.status_code == 422, (path, params, response.text)


async def test_search_treats_wildcards_as_text(api: Caller) -> None:
    building = await api.made("/buildings", {"name": unique("100%_done")})
    await api.made("/buildings", {"name": unique("100 percent")})
    found = (await api.client.get(f"{API}/buildings", params={"q": "100%_"}, headers=api.operator)).json()
    assert building["id"] in [item["id"] for item in found["results"]]
    assert all("100%_" in item["name"] for item in found["results"])

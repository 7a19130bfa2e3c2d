"""The devices API: list with search, filters, sorting and pages; detail with sensors and latest values;
registration in advance; device and sensor metadata; roles and tenant isolation."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.settings import InfraSettings
from mirante.testing.plugin import HeadersFactory
from telemetry_ingest.config import Settings
from telemetry_ingest.devices.schemas import LABEL_VALUE_MAX_LENGTH, MAX_LABELS, is_label_key
from telemetry_ingest.main import create_app
from telemetry_ingest.tenancy.naming import schema_for

TenantFactory = Callable[..., Awaitable[str]]


@pytest.fixture
def settings(infra_settings: InfraSettings) -> Settings:
    """No MQTT ingest: these tests publish nothing, and a subscriber would take other runs' shared messages."""
    return Settings(infra=infra_settings, mqtt_ingest_enabled=False)


T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


async def add_device(
    session: AsyncSession,
    tenant: str,
    device_id: str,
    *,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    site: str | None = None,
    asset: str | None = None,
    first_seen: datetime = T0,
    last_seen: datetime = T0,
) -> None:
    """A device row as the ingest registers it."""
    await session.execute(
        text(
            f'INSERT INTO "{schema_for(tenant)}".devices (device_id, name, labels, site, asset, first_seen, last_seen) '
            "VALUES (:device_id, :name, CAST(:labels AS jsonb), :site, :asset, :first_seen, :last_seen)"
        ),
        {
            "device_id": device_id,
            "name": name,
            "labels": json.dumps(dict(labels or {})),
            "site": site,
            "asset": asset,
            "first_seen": first_seen,
            "last_seen": last_seen,
        },
    )


async def add_sensor(
    session: AsyncSession,
    tenant: str,
    device_id: str,
    sensor: str,
    *,
    unit: str | None = None,
    latest: tuple[datetime, float] | None = None,
) -> None:
    """A sensor row, and its latest reading when given."""
    schema = schema_for(tenant)
    await session.execute(
        text(
            f'INSERT INTO "{schema}".sensors (device_id, sensor, unit, first_seen, last_seen) '
            "VALUES (:device_id, :sensor, :unit, :seen, :seen)"
        ),
        {"device_id": device_id, "sensor": sensor, "unit": unit, "seen": T0},
    )
    if latest is not None:
        await session.execute(
            text(
                f'INSERT INTO "{schema}".latest_readings (device_id, sensor, ts, value, unit) '
                "VALUES (:device_id, :sensor, :ts, :value, :unit)"
            ),
            {"device_id": device_id, "sensor": sensor, "ts": latest[0], "value": latest[1], "unit": unit},
        )


def devices_url(tenant: str, suffix: str = "") -> str:
    return f"/api/v1/tenants/{tenant}/devices{suffix}"


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [device["device_id"] for device in response.json()["results"]]


@pytest.fixture
async def fleet(db_session: AsyncSession, make_tenant: TenantFactory) -> str:
    """A tenant with four devices of different sites, assets, labels and times."""
    tenant = await make_tenant()
    await add_device(
        db_session,
        tenant,
        "ahu-1",
        name="Air handler North",
        labels={"floor": "3", "zone": "north"},
        site="plant-a",
        asset="ahu",
        last_seen=T0 + timedelta(hours=3),
    )
    await add_device(
        db_session,
        tenant,
        "ahu-2",
        name="Air handler South",
        labels={"floor": "3", "zone": "south"},
        site="plant-a",
        asset="ahu",
        last_seen=T0 + timedelta(hours=1),
    )
    await add_device(
        db_session,
        tenant,
        "chiller_1",
        name="Chiller",
        labels={"floor": "0"},
        site="plant-b",
        asset="chiller",
        last_seen=T0 + timedelta(hours=2),
    )
    await add_device(db_session, tenant, "x100", last_seen=T0)
    await add_sensor(db_session, tenant, "ahu-1", "temperature", unit="celsius", latest=(T0, 21.5))
    await add_sensor(db_session, tenant, "ahu-1", "humidity")
    await add_sensor(db_session, tenant, "chiller_1", "pressure", unit="kPa")
    return tenant


async def test_list_pages_through_every_device_with_its_sensor_count(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, fleet: str
) -> None:
    headers = await auth_headers("viewer", tenant=fleet)

    first = await client.get(devices_url(fleet), params={"page_size": 3}, headers=headers)

    assert first.status_code == 200, first.text
    body = first.json()
    assert body["count"] == 4
    assert [device["device_id"] for device in body["results"]] == ["ahu-1", "ahu-2", "chiller_1"]
    assert body["previous"] is None
    ahu = body["results"][0]
    assert ahu == {
        "device_id": "ahu-1",
        "name": "Air handler North",
        "labels": {"floor": "3", "zone": "north"},
        "site": "plant-a",
        "asset": "ahu",
        "first_seen": "2026-11-20T08:00:00Z",
        "last_seen": "2026-11-20T11:00:00Z",
        "sensor_count": 2,
    }
    assert parse_qs(urlsplit(body["next"]).query)["page"] == ["2"]
    second = await client.get(body["next"], headers=headers)
    assert ids(second) == ["x100"]
    assert second.json()["results"][0]["sensor_count"] == 0
    assert second.json()["next"] is None


SEARCHES: list[tuple[dict[str, Any], list[str]]] = [
    ({"q": "AIR handler"}, ["ahu-1", "ahu-2"]),
    ({"q": "south"}, ["ahu-2"]),
    ({"q": "ahu-"}, ["ahu-1", "ahu-2"]),
    ({"q": "r_1"}, ["chiller_1"]),
    ({"q": "_"}, ["chiller_1"]),
    ({"q": "%"}, []),
    ({"q": "   "}, ["ahu-1", "ahu-2", "chiller_1", "x100"]),
    ({"site": "plant-a"}, ["ahu-1", "ahu-2"]),
    ({"asset": "chiller"}, ["chiller_1"]),
    ({"site": "plant-a", "asset": "chiller"}, []),
    ({"label": "floor:3"}, ["ahu-1", "ahu-2"]),
    ({"label": ["floor:3", "zone:south"]}, ["ahu-2"]),
    ({"label": "zone"}, ["ahu-1", "ahu-2"]),
    ({"label": "floor:"}, []),
    ({"label": "colour"}, []),
    ({"sort": "-last_seen"}, ["ahu-1", "chiller_1", "ahu-2", "x100"]),
    ({"sort": "name"}, ["ahu-1", "ahu-2", "chiller_1", "x100"]),
    ({"sort": "-name"}, ["chiller_1", "ahu-2", "ahu-1", "x100"]),
    ({"sort": "-device_id"}, ["x100", "chiller_1", "ahu-2", "ahu-1"]),
]


async def test_list_searches_filters_and_sorts(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, fleet: str
) -> None:
    headers = await auth_headers("viewer", tenant=fleet)
    for params, expected in SEARCHES:
        response = await client.get(devices_url(fleet), params=params, headers=headers)

        assert ids(response) == expected, params
        assert response.json()["count"] == len(expected), params


BAD_LIST_PARAMETERS: list[dict[str, Any]] = [
    {"sort": "colour"},
    {"label": "bad key:1"},
    {"label": ":value"},
    {"label": ["floor:1", "floor:2"]},
    {"label": [f"k{i}" for i in range(11)]},
    {"site": ""},
    {"q": "x" * 201},
    {"page": 0},
]


async def test_list_refuses_bad_parameters_with_422(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, fleet: str
) -> None:
    headers = await auth_headers("viewer", tenant=fleet)
    for params in BAD_LIST_PARAMETERS:
        response = await client.get(devices_url(fleet), params=params, headers=headers)

        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["code"] == "validation_error"


async def test_detail_shows_sensors_with_their_latest_values(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, fleet: str
) -> None:
    response = await client.get(devices_url(fleet, "/ahu-1"), headers=await auth_headers("viewer", tenant=fleet))

    assert response.status_code == 200, response.text
    device = response.json()
    assert device["device_id"] == "ahu-1"
    assert device["sensor_count"] == 2
    humidity, temperature = device["sensors"]
    assert humidity["sensor"] == "humidity"
    assert humidity["latest"] is None
    assert temperature["sensor"] == "temperature"
    assert temperature["unit"] == "celsius"
    assert temperature["labels"] == {}
    assert temperature["first_seen"] == "2026-11-20T08:00:00Z"
    assert temperature["latest"]["ts"] == "2026-11-20T08:00:00Z"
    assert temperature["latest"]["value"] == 21.5
    assert temperature["latest"]["unit"] == "celsius"
    assert temperature["latest"]["received_at"]


async def test_unknown_and_malformed_devices(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, fleet: str
) -> None:
    headers = await auth_headers("operator", tenant=fleet)

    missing = await client.get(devices_url(fleet, "/nope"), headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "device_not_found"
    for bad in ("bad%20id", "a+b", "x" * 129, "a%23b"):
        response = await client.get(devices_url(fleet, f"/{bad}"), headers=headers)
        assert response.status_code == 422, (bad, response.text)
    patch = await client.patch(devices_url(fleet, "/nope"), json={"name": "x"}, headers=headers)
    assert patch.status_code == 404


async def test_tenants_see_only_their_own_devices(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, fleet: str, make_tenant: TenantFactory
) -> None:
    other = await make_tenant()
    outsider = await auth_headers("admin", tenant=other)

    assert (await client.get(devices_url(fleet), headers=outsider)).status_code == 403
    assert (await client.get(devices_url(fleet, "/ahu-1"), headers=outsider)).status_code == 403
    assert (await client.get(devices_url(other, "/ahu-1"), headers=outsider)).status_code == 404
    assert ids(await client.get(devices_url(other), headers=outsider)) == []
    assert (await client.get(devices_url(fleet))).status_code == 401
    staff = await auth_headers("viewer", staff=True)
    assert len(ids(await client.get(devices_url(fleet), headers=staff))) == 4
    unknown = await client.get(devices_url("no-such-tenant"), headers=staff)
    assert unknown.status_code == 404


async def outbox_events(session: AsyncSession, event_type: str, tenant: str) -> list[dict[str, Any]]:
    rows = await session.scalars(
        text("SELECT envelope FROM telemetry_ingest.outbox WHERE type = :type AND tenant = :tenant"),
        {"type": event_type, "tenant": tenant},
    )
    return [row if isinstance(row, dict) else json.loads(row) for row in rows]


async def test_operators_register_devices_in_advance(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, make_tenant: TenantFactory, db_session: AsyncSession
) -> None:
    tenant = await make_tenant()
    headers = await auth_headers("operator", tenant=tenant)
    body = {"device_id": "d-001", "name": " Boiler ", "labels": {"floor": "2"}, "site": "plant-a"}

    created = await client.post(devices_url(tenant), json=body, headers=headers)

    assert created.status_code == 201, created.text
    assert created.headers["location"] == devices_url(tenant, "/d-001")
    device = created.json()
    assert device["name"] == "Boiler"
    assert device["labels"] == {"floor": "2"}
    assert device["site"] == "plant-a"
    assert device["asset"] is None
    assert device["sensors"] == []
    assert device["first_seen"] == device["last_seen"]
    assert ids(await client.get(devices_url(tenant), headers=headers)) == ["d-001"]
    events = await outbox_events(db_session, "telemetry.device.registered", tenant)
    assert len(events) == 1
    assert events[0]["data"]["device_id"] == "d-001"
    assert events[0]["data"]["registered_by"] == "api"
    assert events[0]["tenant"] == tenant

    again = await client.post(devices_url(tenant), json={"device_id": "d-001"}, headers=headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "device_exists"
    assert len(await outbox_events(db_session, "telemetry.device.registered", tenant)) == 1


BAD_REGISTRATIONS: list[dict[str, Any]] = [
    {},
    {"device_id": ""},
    {"device_id": "has space"},
    {"device_id": "a/b"},
    {"device_id": "a+"},
    {"device_id": "x" * 129},
    {"device_id": "d1", "colour": "red"},
    {"device_id": "d1", "name": ""},
    {"device_id": "d1", "name": "\u00a0 "},
    {"device_id": "d1", "name": "x" * 201},
    {"device_id": "d1", "labels": {"bad key": "1"}},
    {"device_id": "d1", "labels": {"floor": 3}},
    {"device_id": "d1", "labels": {f"k{i}": "v" for i in range(33)}},
    {"device_id": "d1", "labels": {"k": "v" * 257}},
    {"device_id": "d1", "labels": None},
]


async def test_registration_refuses_bad_bodies(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, make_tenant: TenantFactory
) -> None:
    tenant = await make_tenant()
    headers = await auth_headers("operator", tenant=tenant)
    for body in BAD_REGISTRATIONS:
        response = await client.post(devices_url(tenant), json=body, headers=headers)

        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["code"] == "validation_error"
    assert ids(await client.get(devices_url(tenant), headers=headers)) == []


async def test_viewers_cannot_change_anything(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, fleet: str
) -> None:
    viewer = await auth_headers("viewer", tenant=fleet)

    assert (await client.post(devices_url(fleet), json={"device_id": "new"}, headers=viewer)).status_code == 403
    assert (await client.patch(devices_url(fleet, "/ahu-1"), json={"name": "x"}, headers=viewer)).status_code == 403
    sensor = await client.patch(devices_url(fleet, "/ahu-1/sensors/humidity"), json={"unit": "%"}, headers=viewer)
    assert sensor.status_code == 403


async def test_operators_change_device_metadata(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, fleet: str
) -> None:
    headers = await auth_headers("operator", tenant=fleet)

    changed = await client.patch(
        devices_url(fleet, "/ahu-1"),
        json={"name": "AHU 1", "labels": {"floor": "4"}, "asset": None},
        headers=headers,
    )

    assert changed.status_code == 200, changed.text
    device = changed.json()
    assert (device["name"], device["labels"], device["site"], device["asset"]) == (
        "AHU 1",
        {"floor": "4"},
        "plant-a",
        None,
    )
    assert len(device["sensors"]) == 2
    assert ids(await client.get(devices_url(fleet), params={"label": "floor:4"}, headers=headers)) == ["ahu-1"]

    untouched = await client.patch(devices_url(fleet, "/ahu-1"), json={}, headers=headers)
    assert untouched.status_code == 200
    assert untouched.json()["name"] == "AHU 1"
    cleared = await client.patch(devices_url(fleet, "/ahu-1"), json={"name": None, "labels": {}}, headers=headers)
    assert (cleared.json()["name"], cleared.json()["labels"]) == (None, {})


async def test_device_changes_are_validated(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, fleet: str
) -> None:
    headers = await auth_headers("operator", tenant=fleet)
    bad_bodies: list[Any] = [
        {"labels": None},
        {"device_id": "other"},
        {"name": "  "},
        {"site": "x" * 201},
        {"first_seen": "2020-01-01"},
        ["name"],
    ]
    for body in bad_bodies:
        response = await client.patch(devices_url(fleet, "/ahu-1"), json=body, headers=headers)

        assert response.status_code == 422, (body, response.text)


async def test_operators_change_sensor_metadata(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, fleet: str
) -> None:
    headers = await auth_headers("operator", tenant=fleet)

    changed = await client.patch(
        devices_url(fleet, "/ahu-1/sensors/humidity"),
        json={"name": "Return air humidity", "unit": "%", "labels": {"duct": "return"}},
        headers=headers,
    )

    assert changed.status_code == 200, changed.text
    sensor = changed.json()
    assert (sensor["device_id"], sensor["sensor"]) == ("ahu-1", "humidity")
    assert (sensor["name"], sensor["unit"], sensor["labels"]) == ("Return air humidity", "%", {"duct": "return"})
    detail = await client.get(devices_url(fleet, "/ahu-1"), headers=headers)
    assert detail.json()["sensors"][0]["unit"] == "%"
    unit_cleared = await client.patch(
        devices_url(fleet, "/ahu-1/sensors/temperature"), json={"unit": None}, headers=headers
    )
    assert unit_cleared.json()["unit"] is None
    assert unit_cleared.json()["latest"]["value"] == 21.5


async def test_sensor_changes_are_validated(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, fleet: str
) -> None:
    headers = await auth_headers("operator", tenant=fleet)

    no_sensor = await client.patch(devices_url(fleet, "/ahu-1/sensors/co2"), json={"unit": "ppm"}, headers=headers)
    no_device = await client.patch(devices_url(fleet, "/nope/sensors/co2"), json={"unit": "ppm"}, headers=headers)
    empty_no_sensor = await client.patch(devices_url(fleet, "/ahu-1/sensors/co2"), json={}, headers=headers)

    assert no_sensor.status_code == 404
    assert no_sensor.json()["error"]["code"] == "sensor_not_found"
    assert no_device.status_code == 404
    assert no_device.json()["error"]["code"] == "device_not_found"
    assert empty_no_sensor.status_code == 404
    for body in ({"unit": "u" * 33}, {"labels": None}, {"sensor": "x"}, {"unit": ""}):
        response = await client.patch(devices_url(fleet, "/ahu-1/sensors/humidity"), json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
    bad_path = await client.patch(devices_url(fleet, "/ahu-1/sensors/a+b"), json={"unit": "x"}, headers=headers)
    assert bad_path.status_code == 422


@pytest.mark.parametrize("key", ["floor", "a.b-c_9", "", "a:b", "é", "k" * 65, "floor\n"])
def test_the_described_label_keys_are_the_keys_the_service_takes(key: str) -> None:
    labels = create_app(Settings()).openapi()["components"]["schemas"]["DeviceUpdate"]["properties"]["labels"]
    described = labels["propertyNames"]["pattern"]

    assert (re.fullmatch(described, key) is not None) == is_label_key(key)
    assert labels["maxProperties"] == MAX_LABELS
    assert labels["additionalProperties"]["maxLength"] == LABEL_VALUE_MAX_LENGTH


async def test_the_described_label_filter_is_the_filter_the_service_takes(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, fleet: str
) -> None:
    headers = await auth_headers("viewer", tenant=fleet)
    [parameter] = [
        parameter
        for parameter in create_app(Settings()).openapi()["paths"]["/api/v1/tenants/{tenant}/devices"]["get"][
            "parameters"
        ]
        if parameter["name"] == "label"
    ]
    described = parameter["schema"]["anyOf"][0]["items"]["pattern"]

    for label in ["floor", "floor:3", "floor:", "zone:a\nb", "", ":3", "bad key:1", "floor:3\x00", "k:" + "v" * 257]:
        response = await client.get(devices_url(fleet), params={"label": label}, headers=headers)

        assert response.status_code == (200 if re.fullmatch(described, label) else 422), (label, response.text)

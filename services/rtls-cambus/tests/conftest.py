"""Fixtures of the rtls-cambus tests: the app on this run's servers, a client on it, images to upload."""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory
from rtls_cambus.buildings.models import Building, Floor
from rtls_cambus.config import Settings
from rtls_cambus.devices.models import Device
from rtls_cambus.main import create_app
from rtls_cambus.people.models import Person
from rtls_cambus.tags.models import Tag, TagAssignment
from rtls_cambus.zones.models import Zone


@pytest.fixture
def settings(infra_settings: InfraSettings) -> Settings:
    return Settings(
        infra=infra_settings,
        floor_plan_max_bytes=64 * 1024,
        floor_plan_max_side_px=10_000,
        incident_attachment_max_bytes=4096,
        incident_rules_enabled=False,
        webhook_dispatch_enabled=False,
        # The MQTT ingest has tests of its own, each with a client id of its own: an API test's app subscribing
        # under the default one would take that session over from any other app using it on the broker.
        mqtt_ingest_enabled=False,
        alert_engine_enabled=False,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def client(make_client: ClientFactory, settings: Settings) -> httpx.AsyncClient:
    return await make_client(create_app(settings))


def _png_bytes(width: int, height: int) -> bytes:
    """A PNG of `width` x `height` grey pixels; past a million pixels only the header is true (no pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height)) if width * height <= 1_000_000 else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _jpeg_header(width: int, height: int) -> bytes:
    """The start of a baseline JPEG up to its frame header: what the size check reads."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


ImageMaker = Callable[[int, int], bytes]


@pytest.fixture
def make_png() -> ImageMaker:
    return _png_bytes


@pytest.fixture
def make_jpeg() -> ImageMaker:
    return _jpeg_header


T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Site:
    building: Building
    floor: Floor
    zones: list[Zone]
    gateways: list[Device]
    person: Person
    tag: Tag


def new_mac() -> str:
    digits = uuid.uuid4().hex[:12].upper()
    return ":".join(digits[index : index + 2] for index in range(0, 12, 2))


async def _make_site(session: AsyncSession) -> Site:
    """A floor with two zones (the second restricted), a gateway in each and one unzoned, a person with a tag."""
    building = Building(name=f"b-{uuid.uuid4().hex[:8]}")
    session.add(building)
    await session.flush()
    floor = Floor(building_id=building.id, level=0)
    session.add(floor)
    await session.flush()
    zones = [Zone(floor_id=floor.id, name="Lobby"), Zone(floor_id=floor.id, name="Lab", restricted=True)]
    session.add_all(zones)
    await session.flush()
    gateways = [
        Device(
            kind="gateway", mac=new_mac(), floor_id=floor.id, building_id=building.id, zone_id=zone_id, x_px=x, y_px=50
        )
        for zone_id, x in ((zones[0].id, 20.0), (zones[1].id, 180.0), (None, 100.0))
    ]
    person = Person(full_name="Ana Souza")
    tag = Tag(mac=new_mac())
    session.add_all([*gateways, person, tag])
    await session.flush()
    session.add(TagAssignment(tag_id=tag.id, person_id=person.id, assigned_from=T0 - timedelta(days=1)))
    await session.flush()
    for row in (*gateways, building, floor, *zones):
        await session.refresh(row)
    return Site(building, floor, zones, gateways, person, tag)


SiteMaker = Callable[[AsyncSession], Awaitable[Site]]


_GATEWAYS = (
    "INSERT INTO rtls_cambus.devices (kind, mac, status) SELECT 'gateway', :prefix || n, 'online' "
    "FROM generate_series(1, :count) AS n RETURNING id, mac"
)


async def _gateways_after_stale_statistics(connection: AsyncConnection, *, forgotten: bool) -> list[Any]:
    """3,000 gateways added after `ANALYZE` took the devices' statistics with 20 more (with those 20 deleted first
    when `forgotten`: the statistics of an emptied table); their (id, mac) rows, for a plan test in `connection`'s
    rolled-back transaction."""
    prefix = uuid.uuid4().hex[:8]
    before = (await connection.execute(text(_GATEWAYS), {"prefix": f"{prefix}h", "count": 20})).all()
    if forgotten:
        ids = [row.id for row in before]
        await connection.execute(text("DELETE FROM rtls_cambus.devices WHERE id = ANY(:ids)"), {"ids": ids})
    await connection.execute(text("ANALYZE rtls_cambus.devices"))
    return list((await connection.execute(text(_GATEWAYS), {"prefix": f"{prefix}s", "count": 3000})).all())


StaleGateways = Callable[..., Awaitable[list[Any]]]


@pytest.fixture(scope="session")
def gateways_after_stale_statistics() -> StaleGateways:
    """`await gateways_after_stale_statistics(connection, forgotten=...)`: see `_gateways_after_stale_statistics`."""
    return _gateways_after_stale_statistics


@pytest.fixture(scope="session")
def make_site() -> SiteMaker:
    """`await make_site(session)`: a small site (see `_make_site`) written in `session`."""
    return _make_site


class SimulatedBuilding(Protocol):
    """What placing needs of `scripts/simulators/gateways.py`'s `Building`."""

    rooms: int
    gateways: list[str]
    tags: list[str]


@dataclass
class PlacedBuilding:
    """The simulator's building as the catalogue knows it: room `i` is `zones[i]`, heard by `gateways[i]`."""

    building_id: int
    floor_id: int
    zones: list[int]
    gateways: list[int]
    tags: dict[str, int]
    """tag MAC → tag id"""
    people: dict[str, int]
    """tag MAC → id of the person carrying it"""


async def _place_building(session: AsyncSession, simulated: SimulatedBuilding) -> PlacedBuilding:
    """A building with one floor, a zone per room with the simulator's gateway placed in it, and a person carrying
    each of the simulator's tags; flushed, not committed."""
    building = Building(name=f"sim-{uuid.uuid4().hex[:8]}")
    session.add(building)
    await session.flush()
    floor = Floor(building_id=building.id, level=0)
    session.add(floor)
    await session.flush()
    zones = [Zone(floor_id=floor.id, name=f"Room {room + 1}") for room in range(simulated.rooms)]
    session.add_all(zones)
    await session.flush()
    gateways = [
        Device(
            kind="gateway",
            mac=mac,
            floor_id=floor.id,
            building_id=building.id,
            zone_id=zones[room].id,
            x_px=40.0 + 80 * room,
            y_px=50.0,
        )
        for room, mac in enumerate(simulated.gateways)
    ]
    tags = [Tag(mac=mac) for mac in simulated.tags]
    people = [Person(full_name=f"Walker {index + 1}") for index in range(len(tags))]
    session.add_all([*gateways, *tags, *people])
    await session.flush()
    session.add_all(
        TagAssignment(tag_id=tag.id, person_id=person.id, assigned_from=datetime.now(UTC) - timedelta(days=1))
        for tag, person in zip(tags, people, strict=True)
    )
    await session.flush()
    return PlacedBuilding(
        building.id,
        floor.id,
        [zone.id for zone in zones],
        [gateway.id for gateway in gateways],
        {tag.mac: tag.id for tag in tags},
        {tag.mac: person.id for tag, person in zip(tags, people, strict=True)},
    )


BuildingPlacer = Callable[[AsyncSession, SimulatedBuilding], Awaitable[PlacedBuilding]]


@pytest.fixture(scope="session")
def place_building() -> BuildingPlacer:
    """`await place_building(session, Building(...))`: the simulator's building in the catalogue (see
    `_place_building`)."""
    return _place_building

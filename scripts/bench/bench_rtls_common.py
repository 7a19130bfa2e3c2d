"""What the rtls-cambus benchmarks share: a site in the bench database (a floor of rooms with a gateway each, people
carrying tags, and a floor of probe gateways and tags), the service in a child process, and publishing.

The site's gateways and tags are those of `scripts/simulators/gateways.py`'s `Building`, so the simulator's
traffic is traffic of placed gateways and registered, assigned tags: every reading moves a position.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from bench_process import ServiceServer
from bench_telemetry_common import BenchStack, bench_stack

from mirante.auth.commands import create_user
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import StackUrls
from mirante.devstack.redis_server import EmbeddedRedis
from mirante.mqtt import Publisher
from rtls_cambus.buildings.models import Building as BuildingRow
from rtls_cambus.buildings.models import Floor
from rtls_cambus.devices.models import Device
from rtls_cambus.people.models import Person
from rtls_cambus.tags.models import Tag, TagAssignment
from rtls_cambus.zones.models import Zone

SIMULATORS = Path(__file__).resolve().parents[1] / "simulators"
if str(SIMULATORS) not in sys.path:
    sys.path.insert(0, str(SIMULATORS))

# Found through the path set just above; re-exported for the rtls benchmarks.
from gateways import Building as Building  # type: ignore[import-not-found]  # noqa: E402

API = "/api/v1"
PASSWORD = "bench-password-1234"
Message = tuple[str, bytes]


@asynccontextmanager
async def rtls_stack(urls: StackUrls) -> AsyncIterator[BenchStack]:
    """The telemetry benchmarks' stack (a bench database, a Mosquitto of its own) and a Redis of its own too: the
    service's stream consumers read every service's stream, and on a shared Redis they would also be reading
    whatever other work on the machine publishes, and the live feed would carry it."""
    with tempfile.TemporaryDirectory(prefix="mirante-bench-rtls-") as folder:
        redis = EmbeddedRedis(Path(folder))
        redis_url = await asyncio.to_thread(redis.start, 30.0)
        try:
            async with bench_stack(urls) as stack:
                yield replace(stack, redis_url=redis_url)
        finally:
            await asyncio.to_thread(redis.stop)


@dataclass
class Site:
    """What the benchmark placed: the simulator's building on one floor, and a probe floor beside it."""

    building: Building
    floor_id: int
    probe_floor_id: int
    probe_gateway: str
    probe_gateway_id: int
    probe_tags: dict[str, int]
    """MAC → tag id of tags carried by someone and never heard: the first reading places each at once."""
    probe_people: dict[str, int]
    """MAC → id of the person carrying that probe tag."""
    username: str


def mac(prefix: int, number: int) -> str:
    digits = [prefix, *number.to_bytes(5, "big")]
    return ":".join(f"{byte:02X}" for byte in digits)


async def make_site(stack: BenchStack, building: Building, probes: int) -> Site:
    """Write `building`'s rooms (a zone and a placed gateway each), its people with their tags, a probe floor with one
    gateway and `probes` people with tags, and a viewer account; commit."""
    engine = create_engine(stack.database_url)
    run = uuid.uuid4().hex[:8]
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            site_row = BuildingRow(name=f"Bench {run}", code=f"bench{run}")
            session.add(site_row)
            await session.flush()
            floor, probe_floor = Floor(building_id=site_row.id, level=0), Floor(building_id=site_row.id, level=1)
            session.add_all([floor, probe_floor])
            await session.flush()
            zones = [Zone(floor_id=floor.id, name=f"Room {index + 1}") for index in range(building.rooms)]
            probe_zone = Zone(floor_id=probe_floor.id, name="Probe room")
            session.add_all([*zones, probe_zone])
            await session.flush()
            for index, gateway in enumerate(building.gateways):
                session.add(
                    Device(
                        kind="gateway",
                        mac=gateway,
                        building_id=site_row.id,
                        floor_id=floor.id,
                        zone_id=zones[index].id,
                        x_px=50.0 + 100 * index,
                        y_px=50.0,
                    )
                )
            probe_gateway = Device(
                kind="gateway",
                mac=mac(0x0C, int(run, 16)),
                building_id=site_row.id,
                floor_id=probe_floor.id,
                zone_id=probe_zone.id,
                x_px=50.0,
                y_px=50.0,
            )
            session.add(probe_gateway)
            probe_macs = [mac(0x0D, (int(run[:5], 16) << 16) + index) for index in range(probes)]
            tags = [Tag(mac=tag) for tag in [*building.tags, *probe_macs]]
            people = [Person(full_name=f"Person {index + 1}") for index in range(len(tags))]
            session.add_all([*tags, *people])
            await session.flush()
            since = datetime.now(UTC) - timedelta(days=1)
            session.add_all(
                TagAssignment(tag_id=tag.id, person_id=person.id, assigned_from=since)
                for tag, person in zip(tags, people, strict=True)
            )
            user = await create_user(session, username=f"bench-viewer-{run}", password=PASSWORD, role="viewer")
            await session.flush()
            return Site(
                building=building,
                floor_id=floor.id,
                probe_floor_id=probe_floor.id,
                probe_gateway=probe_gateway.mac or "",
                probe_gateway_id=probe_gateway.id,
                probe_tags={tag.mac: tag.id for tag in tags[len(building.tags) :]},
                probe_people={
                    tag.mac: person.id for tag, person in zip(tags, people, strict=True) if tag.mac in probe_macs
                },
                username=user.username,
            )
    finally:
        await engine.dispose()


def traffic(building: Building, readings: int, per_message: int, first_tick: int = 0) -> tuple[list[Message], int]:
    """The simulator's beacon messages of `per_message` readings (the last of a gateway's tick may hold fewer) until
    `readings` readings; (messages, the next tick)."""
    out: list[Message] = []
    count, tick = 0, first_tick
    while count < readings:
        for topic, payload in building.messages(tick, None, per_message):
            heard = payload.count(b'"tag_mac"')
            if not heard:
                continue
            out.append((topic, payload))
            count += heard
        tick += 1
    return out, tick


def readings_in(messages: Sequence[Message]) -> int:
    return sum(payload.count(b'"tag_mac"') for _, payload in messages)


async def publish(url: str, messages: Sequence[Message], connections: int = 2, in_flight: int = 500) -> float:
    """Publish at QoS 1 over `connections` connections as fast as the broker acknowledges; the seconds it took."""
    started = time.perf_counter()

    async def one(part: Sequence[Message]) -> None:
        async with Publisher(url, max_in_flight=in_flight) as publisher:
            await publisher.publish_many(part)

    await asyncio.gather(*(one(messages[index::connections]) for index in range(connections)))
    return time.perf_counter() - started


class RtlsProcess(ServiceServer):
    """rtls-cambus under uvicorn on 127.0.0.1 in a child process, configured as in production through its
    environment, but for a run-specific MQTT client id; ready once its subscriber holds its subscription."""

    def __init__(self, stack: BenchStack, client_id: str, **settings: str) -> None:
        super().__init__(
            "rtls-cambus",
            "rtls_cambus.main:create_app",
            stack.urls,
            env_prefix="RTLS_CAMBUS_",
            settings={"mqtt_client_id": client_id, **settings},
            ready_metric="rtls_mqtt_subscriber_connected 1.0",
        )
        self.client_id = client_id

    async def readings_stored(self, client: httpx.AsyncClient) -> int:
        """The service's own count of readings committed (`rtls_ingest_readings_stored_total`)."""
        for line in (await client.get(f"{self.base_url}/metrics")).text.splitlines():
            if line.startswith("rtls_ingest_readings_stored_total "):
                return int(float(line.split()[1]))
        return 0

    async def token(self, username: str) -> str:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as client:
            answer = await client.post(f"{API}/auth/login", json={"username": username, "password": PASSWORD})
            answer.raise_for_status()
            token: str = answer.json()["access_token"]
            return token

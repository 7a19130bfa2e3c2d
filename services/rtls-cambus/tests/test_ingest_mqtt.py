"""MQTT ingest end to end: the app's worker subscribed to the real broker, storing into the real database.

Each test runs its own worker under a unique client id (a persistent session on a shared broker would otherwise
carry messages from one run to the next) and removes its broker session afterwards. Workers receive whatever
other tests publish meanwhile, so every test uses MACs and building codes of its own and looks only at those.
"""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.devstack import StackUrls
from mirante.devstack.mqtt_broker import EmbeddedMqttBroker
from mirante.mqtt import Publisher, discard_session
from mirante.settings import InfraSettings
from mirante.testing.mqtt import MqttSessions, running, unique_client_id, wait_for_scalar
from mirante.testing.plans import plan_of, rolled_back, scans_of
from mirante.testing.plugin import ClientFactory
from mirante.testing.streams import wait_until
from rtls_cambus.config import Settings
from rtls_cambus.ingest import repository
from rtls_cambus.ingest.payloads import Reading
from rtls_cambus.ingest.positions import GatewayReadings
from rtls_cambus.ingest.repository import GatewaySeen
from rtls_cambus.ingest.worker import sweep_once
from rtls_cambus.main import create_app

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.cameras import CameraFleet  # noqa: E402
from scripts.simulators.gateways import Building, PublishResult  # noqa: E402

AppFactory = Callable[..., FastAPI]


pytestmark = pytest.mark.usefixtures("mqtt5_broker")
CLIENT_PREFIX = "rtls-cambus-test"


@pytest.fixture
def make_app(mqtt_sessions: MqttSessions) -> AppFactory:
    """`make_app(**settings)`: an app whose MQTT worker has a client id of this test's own (its broker session is
    removed after the test), small batches, and no presence sweep or maintenance running in the background."""

    def make(client_id: str | None = None, **overrides: Any) -> FastAPI:
        options: dict[str, Any] = {
            "mqtt_client_id": mqtt_sessions.track(client_id or unique_client_id(CLIENT_PREFIX)),
            "ingest_batch_size": 200,
            "ingest_batch_interval_seconds": 0.05,
            "presence_check_interval_seconds": 3600,
            "maintenance_interval_seconds": 3600,
        }
        options.update(overrides)
        return create_app(Settings(infra=mqtt_sessions.infra, **options))

    return make


def unique_mac() -> str:
    return ":".join(f"{random.randrange(256):02X}" for _ in range(6))


def beacon(*readings: tuple[Any, Any]) -> bytes:
    return orjson.dumps({"readings": [{"tag_mac": mac, "rssi": rssi} for mac, rssi in readings]})


async def add_building(db_engine: AsyncEngine, code: str, levels: Sequence[int] = (0,)) -> int:
    async with db_engine.begin() as connection:
        building_id = int(
            await connection.scalar(
                text("INSERT INTO rtls_cambus.buildings (name, code) VALUES (:name, :code) RETURNING id"),
                {"name": f"Building {code}", "code": code},
            )
        )
        for level in levels:
            await connection.execute(
                text("INSERT INTO rtls_cambus.floors (building_id, level) VALUES (:b, :l)"),
                {"b": building_id, "l": level},
            )
    return building_id


async def outbox_events(engine: AsyncEngine, kind: str, subject: str) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        rows = await connection.scalars(
            text(
                "SELECT envelope->'data' FROM rtls_cambus.outbox WHERE type = :t AND subject = :s"
                " ORDER BY created_at, envelope->>'time'"
            ),
            {"t": kind, "s": subject},
        )
        return list(rows)


async def test_an_unknown_gateway_registers_itself_and_its_readings_are_logged(
    make_app: AppFactory, mqtt_publisher: Publisher, db_engine: AsyncEngine
) -> None:
    gateway, tag_a, tag_b = unique_mac(), unique_mac(), unique_mac()
    forwarded: list[tuple[GatewaySeen, list[Reading], datetime]] = []

    async def record(session: AsyncSession, heard: Sequence[GatewayReadings], at: datetime) -> int:
        forwarded.extend((seen, list(readings), at) for seen, readings in heard)
        return 0

    app = make_app()
    async with running(app) as runner:
        app.state.ingest_pipeline.forward = record
        lower = gateway.lower().replace(":", "-")
        await mqtt_publisher.publish(f"rtls/gateways/{lower}/beacon", beacon((tag_a, -60), (tag_b.lower(), -71)))
        await mqtt_publisher.publish(f"rtls/gateways/{gateway}/beacon", beacon((tag_a, -58.0)))
        await wait_for_scalar(
            db_engine, "SELECT count(*) FROM rtls_cambus.gateway_readings WHERE gateway_mac = :m", 3, m=gateway
        )
        await wait_until(lambda: runner.acked >= 2, within=15)

    async with db_engine.connect() as connection:
        device = (
            await connection.execute(
                text(
                    "SELECT id, kind, floor_id, building_id, status, last_seen_at FROM rtls_cambus.devices"
                    " WHERE mac = :m"
                ),
                {"m": gateway},
            )
        ).one()
        readings = (
            await connection.execute(
                text(
                    "SELECT tag_mac, rssi, gateway_id FROM rtls_cambus.gateway_readings WHERE gateway_mac = :m"
                    " ORDER BY id"
                ),
                {"m": gateway},
            )
        ).all()
    assert (device.kind, device.floor_id, device.building_id, device.status) == ("gateway", None, None, "online")
    assert [(row.tag_mac, row.rssi) for row in readings] == [(tag_a, -60), (tag_b, -71), (tag_a, -58)]
    assert {row.gateway_id for row in readings} == {device.id}
    registered = await outbox_events(db_engine, "rtls.gateway.registered", f"gateway/{device.id}")
    assert [event["mac"] for event in registered] == [gateway]

    # The positions call site got each gateway's parsed readings, in order.
    ours = [(seen, readings) for seen, readings, _ in forwarded if seen.mac == gateway]
    got = [reading for _, readings in ours for reading in readings]
    assert got == [Reading(tag_a, -60), Reading(tag_b, -71), Reading(tag_a, -58)]
    assert all(seen.id == device.id for seen, _ in ours)


async def test_a_batch_whose_positions_fail_keeps_no_readings_and_its_redelivery_stores_them_once(
    make_app: AppFactory, mqtt_publisher: Publisher, db_engine: AsyncEngine
) -> None:
    """The readings go in on a second connection while the positions are worked out: a batch that fails there
    must take its readings with it, or the broker's redelivery would store them twice."""
    gateway, tag_a, tag_b = unique_mac(), unique_mac(), unique_mac()
    attempts = 0

    async def fail_first(session: AsyncSession, heard: Sequence[GatewayReadings], at: datetime) -> int:
        nonlocal attempts
        if any(seen.mac == gateway for seen, _ in heard):
            attempts += 1
            if attempts == 1:
                await asyncio.sleep(0.3)  # the readings' insert has run by now, uncommitted
                raise RuntimeError("the positions step failed")
        return 0

    count = "SELECT count(*) FROM rtls_cambus.gateway_readings WHERE gateway_mac = :m"
    app = make_app()
    async with running(app) as runner:
        app.state.ingest_pipeline.forward = fail_first
        await mqtt_publisher.publish(f"rtls/gateways/{gateway}/beacon", beacon((tag_a, -60), (tag_b, -70)))
        await wait_until(lambda: attempts >= 2, within=20)
        await wait_for_scalar(db_engine, count, 2, m=gateway)
        await asyncio.sleep(0.5)
        assert runner.handler_failures >= 1
    async with db_engine.connect() as connection:
        assert await connection.scalar(text(count), {"m": gateway}) == 2


async def test_bad_payloads_are_counted_and_kept_and_never_stop_the_consumer(
    make_app: AppFactory, mqtt_publisher: Publisher, db_engine: AsyncEngine
) -> None:
    gateway, tag = unique_mac(), unique_mac()
    bad_topic_mac = f"zz{uuid.uuid4().hex[:8]}"
    app = make_app()
    async with running(app) as runner:
        base = f"rtls/gateways/{gateway}"
        await mqtt_publisher.publish(f"{base}/beacon", b"{broken")
        await mqtt_publisher.publish(f"{base}/beacon", orjson.dumps({"tags": []}))
        await mqtt_publisher.publish(
            f"{base}/beacon", beacon((tag, -60), ("not-a-mac", -50), (tag, 12), (tag, -200), (tag, "loud"))
        )
        await mqtt_publisher.publish(f"rtls/gateways/{bad_topic_mac}/beacon", beacon((tag, -60)))
        await mqtt_publisher.publish(f"{base}/status", b"sleepy")
        await mqtt_publisher.publish(f"{base}/beacon", beacon((tag, -61)))
        await wait_for_scalar(
            db_engine, "SELECT count(*) FROM rtls_cambus.gateway_readings WHERE gateway_mac = :m", 2, m=gateway
        )
        await wait_until(lambda: runner.acked >= 6, within=15)
        assert runner.handler_failures == 0

    async with db_engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT reason_class, reading_index, reason FROM rtls_cambus.rejected_messages"
                    " WHERE topic LIKE :p OR topic LIKE :q ORDER BY id"
                ),
                {"p": f"rtls/gateways/{gateway}/%", "q": f"rtls/gateways/{bad_topic_mac}/%"},
            )
        ).all()
    assert [(row.reason_class, row.reading_index) for row in rows] == [
        ("malformed_json", None),
        ("bad_payload", None),
        ("bad_tag_mac", 1),
        ("rssi_range", 2),
        ("rssi_range", 3),
        ("bad_rssi", 4),
        ("bad_gateway_mac", None),
        ("bad_status", None),
    ]
    assert "outside -127..0" in rows[3].reason
    registry: CollectorRegistry = app.state.metrics_registry
    assert (registry.get_sample_value("rtls_ingest_rejected_total", {"reason": "rssi_range"}) or 0) >= 2
    assert (registry.get_sample_value("rtls_ingest_readings_stored_total") or 0) >= 2


async def test_a_silent_gateway_goes_offline_and_comes_back_with_its_next_message(
    make_app: AppFactory, mqtt_publisher: Publisher, db_engine: AsyncEngine
) -> None:
    gateway, tag = unique_mac(), unique_mac()
    app = make_app(gateway_offline_after_seconds=1)
    query = "SELECT status FROM rtls_cambus.devices WHERE kind = 'gateway' AND mac = :m"
    async with running(app):
        await mqtt_publisher.publish(f"rtls/gateways/{gateway}/beacon", beacon((tag, -60)))
        await wait_for_scalar(db_engine, query, "online", m=gateway)
        async with db_engine.begin() as connection:
            gateway_id = await connection.scalar(
                text(
                    "UPDATE rtls_cambus.devices SET last_seen_at = now() - interval '1 hour' WHERE mac = :m"
                    " RETURNING id"
                ),
                {"m": gateway},
            )
        # Two sweeps at once, as two replicas would: the gateway turns offline once.
        settings: Settings = app.state.settings
        swept = await asyncio.gather(*(sweep_once(app.state.sessionmaker, settings) for _ in range(2)))
        assert sorted(gateway in macs for macs in swept) == [False, True]
        await wait_for_scalar(db_engine, query, "offline", m=gateway)

        await mqtt_publisher.publish(f"rtls/gateways/{gateway}/status", b'{"status": "online", "uptime": 12}')
        await wait_for_scalar(db_engine, query, "online", m=gateway)
        await mqtt_publisher.publish(f"rtls/gateways/{gateway}/status", b"offline")
        await wait_for_scalar(db_engine, query, "offline", m=gateway)

    subject = f"gateway/{gateway_id}"
    offline = await outbox_events(db_engine, "rtls.gateway.offline", subject)
    online = await outbox_events(db_engine, "rtls.gateway.online", subject)
    assert [event["reason"] for event in offline] == ["silent", "reported"]
    assert len(online) == 1


async def test_cameras_register_and_their_events_keep_one_id_from_new_to_end(
    make_app: AppFactory,
    mqtt_publisher: Publisher,
    db_engine: AsyncEngine,
    make_client: ClientFactory,
    auth_headers: Any,
) -> None:
    code = f"b{uuid.uuid4().hex[:8]}"
    building_id = await add_building(db_engine, code, levels=(0, 2))
    base = f"rtls/cameras/acme/{code}/2/camera/cam-7"
    app = make_app()
    async with running(app):
        await mqtt_publisher.publish(f"{base}/info", orjson.dumps({"model": "XNV-8080", "fw": "2.1"}))
        await mqtt_publisher.publish(f"{base}/status", b"online")
        event = {"id": "1607123955.47-abc", "label": "person", "score": 0.7, "start_time": 1_700_000_000.5}
        await mqtt_publisher.publish(
            f"{base}/intrusion/events", orjson.dumps({"type": "new", "after": {**event, "current_zones": ["lobby"]}})
        )
        await mqtt_publisher.publish(
            f"{base}/intrusion/events",
            orjson.dumps(
                {"type": "update", "after": {**event, "score": 0.9, "current_zones": ["lab"], "entered_zones": ["lab"]}}
            ),
        )
        await mqtt_publisher.publish(
            f"{base}/intrusion/events",
            orjson.dumps({"type": "end", "after": {**event, "score": 0.8, "end_time": 1_700_000_030.0}}),
        )
        # Late and out of order: it must not reopen the event.
        await mqtt_publisher.publish(f"{base}/intrusion/events", orjson.dumps({"type": "update", "after": event}))
        await mqtt_publisher.publish(f"rtls/cameras/acme/{code}/collector/status", b"online")
        await mqtt_publisher.publish(
            f"rtls/cameras/acme/{code}/1/camera/cam-8/intrusion/events", orjson.dumps({"type": "new"})
        )
        await mqtt_publisher.publish(f"rtls/cameras/acme/nowhere{code}/0/camera/cam-9/status", b"online")
        await wait_for_scalar(
            db_engine, "SELECT messages FROM rtls_cambus.camera_events WHERE event_id = :e", 4, e=event["id"]
        )
        await wait_for_scalar(
            db_engine, "SELECT status FROM rtls_cambus.cambus_collectors WHERE building_code = :c", "online", c=code
        )
        # The last two messages are refused: stored as rejected, possibly in a later batch than the rest.
        await wait_for_scalar(
            db_engine,
            "SELECT count(*) FROM rtls_cambus.rejected_messages WHERE topic LIKE :p",
            2,
            p=f"rtls/cameras/acme/%{code}/%",
        )

    async with db_engine.connect() as connection:
        camera = (
            await connection.execute(
                text(
                    "SELECT id, floor_id, status, info, topic FROM rtls_cambus.devices"
                    " WHERE kind = 'camera' AND building_id = :b AND code = 'cam-7'"
                ),
                {"b": building_id},
            )
        ).one()
        floor_2 = await connection.scalar(
            text("SELECT id FROM rtls_cambus.floors WHERE building_id = :b AND level = 2"), {"b": building_id}
        )
        reasons = list(
            await connection.scalars(
                text("SELECT reason_class FROM rtls_cambus.rejected_messages WHERE topic LIKE :p ORDER BY id"),
                {"p": f"rtls/cameras/acme/%{code}/%"},
            )
        )
    assert (camera.floor_id, camera.status, camera.info, camera.topic) == (
        floor_2,
        "online",
        {"model": "XNV-8080", "fw": "2.1"},
        base,
    )
    assert reasons == ["bad_event", "unknown_building"]
    published = await outbox_events(db_engine, "rtls.camera.event", f"camera/{camera.id}")
    assert [(item["message_type"], item["type"], item["event_id"]) for item in published] == [
        ("new", "new", event["id"]),
        ("update", "update", event["id"]),
        ("end", "end", event["id"]),
        ("update", "end", event["id"]),
    ]

    client = await make_client(make_app(mqtt_ingest_enabled=False))
    headers = await auth_headers("viewer")
    answer = await client.get(f"/api/v1/devices/cameras/{camera.id}/events", headers=headers)
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert page["count"] == 1
    [stored] = page["results"]
    assert stored["event_id"] == event["id"]
    assert (stored["type"], stored["label"], stored["score"], stored["top_score"]) == ("end", "person", 0.8, 0.9)
    assert stored["zones"] == []  # where the object was when it ended: the end message named no zone
    assert stored["entered_zones"] == ["lab"]
    assert stored["started_at"].startswith("2023-11-14T22:13:20.5")
    assert stored["ended_at"].startswith("2023-11-14T22:13:50")
    for query, expected in (
        ({"label": "person"}, 1),
        ({"label": "car"}, 0),
        ({"type": "end"}, 1),
        ({"type": "new"}, 0),
        ({"analytic": "intrusion"}, 1),
        ({"since": "2023-11-14T22:13:40Z"}, 1),
        ({"since": "2023-11-14T22:14:00Z"}, 0),
        ({"until": "2023-11-14T22:13:00Z"}, 0),
    ):
        answer = await client.get(f"/api/v1/devices/cameras/{camera.id}/events", params=query, headers=headers)
        assert answer.json()["count"] == expected, query
    bad = await client.get(
        f"/api/v1/devices/cameras/{camera.id}/events",
        params={"since": "2023-11-14T22:14:00Z", "until": "2023-11-14T22:13:00Z"},
        headers=headers,
    )
    assert bad.status_code == 422
    assert (await client.get("/api/v1/devices/cameras/999999999/events", headers=headers)).status_code == 404


async def test_gateway_traffic_published_while_the_service_and_the_broker_restart_is_all_stored(
    own_mosquitto: EmbeddedMqttBroker, make_app: AppFactory, infra_settings: InfraSettings, db_engine: AsyncEngine
) -> None:
    url = await asyncio.to_thread(own_mosquitto.start, 30.0)
    infra = infra_settings.model_copy(
        update={"mqtt": infra_settings.mqtt.model_copy(update={"url": url, "session_expiry_seconds": 600})}
    )
    client_id = unique_client_id(CLIENT_PREFIX)

    def app() -> FastAPI:
        return create_app(
            Settings(
                infra=infra,
                mqtt_client_id=client_id,
                ingest_batch_size=100,
                ingest_batch_interval_seconds=0.05,
                presence_check_interval_seconds=3600,
            )
        )

    gateways = [unique_mac() for _ in range(3)]
    tags = [unique_mac() for _ in range(5)]
    messages = [
        (f"rtls/gateways/{gateways[index % 3]}/beacon", beacon(*((tag, -40 - index % 80) for tag in tags)))
        for index in range(300)
    ]

    async with running(app()) as first:
        assert first.subscriptions[0] == "rtls/gateways/+/+"
        async with Publisher(url) as publisher:
            await publisher.publish_many(messages[:100])
        await wait_until(lambda: first.acked >= 20, within=15)
    # The service is down: these wait in its session, across the broker's restart.
    async with Publisher(url) as publisher:
        await publisher.publish_many(messages[100:200])
    await asyncio.to_thread(own_mosquitto.stop)
    assert await asyncio.to_thread(own_mosquitto.start, 30.0) == url
    async with Publisher(url) as publisher:
        await publisher.publish_many(messages[200:])

    async with running(app()) as resumed:
        assert resumed.session_present is True
        await wait_for_scalar(
            db_engine,
            "SELECT count(*) FROM rtls_cambus.gateway_readings WHERE gateway_mac = ANY(:g)",
            len(messages) * len(tags),
            within=30,
            g=gateways,
        )
    await discard_session(url, client_id)


async def test_simulated_traffic_is_ingested(
    make_app: AppFactory, mirante_urls: StackUrls, db_engine: AsyncEngine
) -> None:
    building = Building(rooms=3, people=2, dwell=2, seed=uuid.uuid4().int % 10_000, silent_gateway=True)
    code = f"s{uuid.uuid4().hex[:8]}"
    await add_building(db_engine, code)
    cameras = CameraFleet(code, tenant="sim", cameras=2, seed=3)
    async with running(make_app()):
        sent = await building.publish(mirante_urls.mqtt_url, ticks=6)
        assert sent.silent_from_tick == 3
        published = await cameras.publish(mirante_urls.mqtt_url, events=2, updates=1)
        await wait_for_scalar(
            db_engine,
            "SELECT count(*) FROM rtls_cambus.gateway_readings WHERE gateway_mac = ANY(:g)",
            sent.readings,
            g=building.gateways,
        )
        await wait_for_scalar(
            db_engine,
            "SELECT count(*) FROM rtls_cambus.camera_events e JOIN rtls_cambus.devices d ON d.id = e.camera_id"
            " JOIN rtls_cambus.buildings b ON b.id = d.building_id WHERE b.code = :c AND e.type = 'end'",
            published["events"],
            c=code,
        )
    async with db_engine.connect() as connection:
        registered = await connection.scalar(
            text("SELECT count(*) FROM rtls_cambus.devices WHERE kind = 'gateway' AND mac = ANY(:g)"),
            {"g": building.gateways},
        )
    assert registered == 3


async def test_a_beacon_heard_over_mqtt_places_the_tag_in_the_gateways_zone(
    make_app: AppFactory, mqtt_publisher: Publisher, db_engine: AsyncEngine, make_site: Any
) -> None:
    async with AsyncSession(db_engine, expire_on_commit=False) as session:
        site = await make_site(session)
        await session.commit()
    lobby, lab = site.gateways[0], site.gateways[1]
    app = make_app()
    async with running(app):
        await mqtt_publisher.publish(f"rtls/gateways/{lobby.mac}/beacon", beacon((site.tag.mac, -55)))
        await wait_for_scalar(
            db_engine,
            "SELECT zone_id FROM rtls_cambus.tag_positions WHERE tag_id = :t",
            site.zones[0].id,
            t=site.tag.id,
        )
        await mqtt_publisher.publish(f"rtls/gateways/{lab.mac}/beacon", beacon((site.tag.mac, -90)))
        await wait_for_scalar(
            db_engine,
            "SELECT count(*) FROM rtls_cambus.gateway_readings WHERE gateway_mac = :m",
            1,
            m=lab.mac,
        )
    entered = await outbox_events(db_engine, "rtls.person.zone_entered", f"person/{site.person.id}")
    assert [event["zone_id"] for event in entered] == [site.zones[0].id], "a far weaker gateway takes nobody over"


async def test_a_person_walking_room_to_room_over_the_broker_switches_once_per_room_change_under_noise(
    make_app: AppFactory, mirante_urls: StackUrls, db_engine: AsyncEngine, place_building: Any
) -> None:
    # Four stays of ten ticks in a row of three rooms, with 4 dB of RSSI noise; the next tick is published once the
    # last one is stored and a quarter of a second later, so the engine's clock (when a batch was received) runs
    # at least that fast and the 0.6 s dwell time passes within a stay.
    # Starting in room 0, gateway 0 (the strongest) is published first, however the broker's deliveries split a tick
    # into batches; a first reading from a neighbour would place the tag there and count a switch too many.
    building = Building(rooms=3, people=1, dwell=10, noise_db=4.0, seed=uuid.uuid4().int % 10**6, start_room=0)
    async with AsyncSession(db_engine, expire_on_commit=False) as session:
        placed = await place_building(session, building)
        await session.commit()
    tag = building.tags[0]
    stored = "SELECT count(*) FROM rtls_cambus.gateway_readings WHERE gateway_mac = ANY(:g)"

    async def tick_stored(tick: int, sent: PublishResult) -> None:
        await wait_for_scalar(db_engine, stored, sent.readings, g=building.gateways)

    async with running(make_app(position_dwell_seconds=0.6)):
        walk = await building.publish(mirante_urls.mqtt_url, ticks=40, interval=0.25, after_tick=tick_stored)

    visited = walk.visits(tag)
    assert len(visited) == 4
    async with db_engine.connect() as connection:
        changes = list(
            await connection.scalars(
                text("SELECT zone_id FROM rtls_cambus.position_changes WHERE tag_id = :t ORDER BY at, id"),
                {"t": placed.tags[tag]},
            )
        )
    assert changes == [placed.zones[room] for room in visited]
    person = f"person/{placed.people[tag]}"
    entered = await outbox_events(db_engine, "rtls.person.zone_entered", person)
    exited = await outbox_events(db_engine, "rtls.person.zone_exited", person)
    assert [event["zone_id"] for event in entered] == changes
    assert [event["zone_id"] for event in exited] == changes[:-1]


@pytest.mark.parametrize("forgotten", [False, True], ids=["statistics-of-a-history", "statistics-of-an-emptied-table"])
async def test_a_batch_marks_its_gateways_seen_by_mac_and_id_whatever_the_statistics_say(
    db_engine: AsyncEngine, gateways_after_stale_statistics: Any, forgotten: bool
) -> None:
    """Statistics taken before a site's gateways came (autovacuum has not come by yet) must not turn the marking
    of a batch's gateways into a read of every gateway: each is found through the index of gateways' MACs, then
    locked and updated by the primary key."""
    async with rolled_back(db_engine) as connection:
        burst = await gateways_after_stale_statistics(connection, forgotten=forgotten)
        macs = sorted(row.mac for row in burst)[:4]
        now = datetime.now(UTC)
        batch = repository._MARK_SEEN.bindparams(macs=macs, states=["online"] * 4, times=[now] * 4)
        plan = await plan_of(connection, batch)
    scans = scans_of(plan, "devices")
    assert {scan.index for scan in scans} == {"pk_devices", "uq_devices_gateway_mac"}
    assert all(scan.condition for scan in scans), scans

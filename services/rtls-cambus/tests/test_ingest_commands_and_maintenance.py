"""Camera commands published on the real broker, and the maintenance of the collection logs."""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.db import create_sessionmaker
from mirante.devstack import StackUrls
from mirante.mqtt import parse_mqtt_url
from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory
from rtls_cambus.config import Settings
from rtls_cambus.ingest.partitions import day_partitions
from rtls_cambus.ingest.worker import maintain
from rtls_cambus.main import create_app


async def add_camera(session: AsyncSession, topic: str | None) -> int:
    code = f"b{uuid.uuid4().hex[:8]}"
    building_id = await session.scalar(
        text("INSERT INTO rtls_cambus.buildings (name, code) VALUES (:n, :c) RETURNING id"), {"n": code, "c": code}
    )
    camera_id = await session.scalar(
        text(
            "INSERT INTO rtls_cambus.devices (kind, building_id, code, topic) VALUES ('camera', :b, 'cam-1', :t)"
            " RETURNING id"
        ),
        {"b": building_id, "t": topic},
    )
    return int(camera_id or 0)


def app_settings(infra: InfraSettings, **overrides: Any) -> Settings:
    # Only the API and the MQTT publisher are tested here: no stream readers in the background.
    return Settings(
        infra=infra,
        mqtt_ingest_enabled=False,
        webhook_dispatch_enabled=False,
        incident_rules_enabled=False,
        alert_engine_enabled=False,
        **overrides,
    )


async def test_a_command_is_published_on_the_cameras_topic_and_answered_with_the_acknowledgement(
    make_client: ClientFactory,
    infra_settings: InfraSettings,
    mirante_urls: StackUrls,
    db_session: AsyncSession,
    auth_headers: Any,
) -> None:
    base = f"rtls/cameras/acme/{uuid.uuid4().hex[:8]}/0/camera/cam-1"
    camera_id = await add_camera(db_session, base)
    silent_id = await add_camera(db_session, None)
    client = await make_client(create_app(app_settings(infra_settings)))
    endpoint = parse_mqtt_url(mirante_urls.mqtt_url)
    body = {"command": "ptz.goto_preset", "params": {"preset": 3}}

    async with aiomqtt.Client(
        endpoint.host, endpoint.port, username=endpoint.username, password=endpoint.password
    ) as listener:
        await listener.subscribe(f"{base}/command", qos=1)
        answer = await client.post(
            f"/api/v1/devices/cameras/{camera_id}/commands", json=body, headers=await auth_headers("operator")
        )
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert (result["topic"], result["qos"], result["acknowledged"]) == (f"{base}/command", 1, True)
        async with asyncio.timeout(10):
            message = await anext(listener.messages)
    sent = orjson.loads(message.payload)
    assert (sent["id"], sent["command"], sent["params"]) == (result["command_id"], "ptz.goto_preset", {"preset": 3})

    viewer = await client.post(
        f"/api/v1/devices/cameras/{camera_id}/commands", json=body, headers=await auth_headers("viewer")
    )
    assert viewer.status_code == 403
    operator = await auth_headers("operator")
    not_heard = await client.post(f"/api/v1/devices/cameras/{silent_id}/commands", json=body, headers=operator)
    assert (not_heard.status_code, not_heard.json()["error"]["code"]) == (409, "camera_not_on_bus")
    bad = await client.post(f"/api/v1/devices/cameras/{camera_id}/commands", json={"command": "a/b"}, headers=operator)
    assert bad.status_code == 422


async def test_a_command_the_broker_cannot_take_is_a_502(
    make_client: ClientFactory, infra_settings: InfraSettings, db_session: AsyncSession, auth_headers: Any
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    infra = infra_settings.model_copy(
        update={"mqtt": infra_settings.mqtt.model_copy(update={"url": f"mqtt://127.0.0.1:{closed_port}"})}
    )
    camera_id = await add_camera(db_session, "rtls/cameras/acme/x/0/camera/cam-1")
    client = await make_client(create_app(app_settings(infra, command_timeout_seconds=2)))
    answer = await client.post(
        f"/api/v1/devices/cameras/{camera_id}/commands",
        json={"command": "reboot"},
        headers=await auth_headers("operator"),
    )
    assert answer.status_code in (502, 504)
    assert answer.json()["error"]["code"] in ("command_not_delivered", "command_timeout")


async def test_maintenance_creates_days_ahead_moves_stranded_rows_and_applies_retention(
    db_engine: AsyncEngine, infra_settings: InfraSettings
) -> None:
    # A day long past: retention then drops only partitions of that time, never those other tests write into.
    now = datetime(2001, 3, 10, 12, tzinfo=UTC)
    sessionmaker = create_sessionmaker(db_engine)
    stranded_at = now + timedelta(days=1)
    mac = ":".join(f"{byte:02X}" for byte in uuid.uuid4().bytes[:6])
    async with db_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO rtls_cambus.gateway_readings (received_at, gateway_id, gateway_mac, tag_mac, rssi)"
                " VALUES (:at, 1, :m, :m, -50)"
            ),
            {"at": stranded_at, "m": mac},
        )
    settings = app_settings(infra_settings, reading_partitions_ahead_days=2, reading_retention_days=5)
    created, _, _ = await maintain(sessionmaker, settings, now=now)
    assert created == [f"gateway_readings_p2001031{day}" for day in (0, 1, 2)]
    async with db_engine.connect() as connection:
        where = await connection.scalar(
            text("SELECT tableoid::regclass::text FROM rtls_cambus.gateway_readings WHERE gateway_mac = :m"),
            {"m": mac},
        )
    assert where == "rtls_cambus.gateway_readings_p20010311"

    _, dropped, _ = await maintain(sessionmaker, settings, now=now + timedelta(days=8))
    assert {"gateway_readings_p20010310", "gateway_readings_p20010311"} <= set(dropped)
    async with sessionmaker() as session:
        remaining = await day_partitions(session)
    assert all(day >= (now + timedelta(days=3)).date() for day in remaining if day.year == 2001)
    async with sessionmaker() as session, session.begin():
        # Leave nothing of 2001 behind for other tests' partition listings.
        for day, name in remaining.items():
            if day.year == 2001:
                await session.execute(text(f'DROP TABLE rtls_cambus."{name}"'))

"""What holds the suite together: one login for every service, and each service's events reaching its stream."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.auth.commands import create_api_key, create_user
from mirante.bus import Event, emit
from mirante.bus.tables import outbox_table
from mirante.service import ServiceSpec, discover_services
from mirante.settings import InfraSettings
from mirante.testing.apps import service_app
from mirante.testing.plugin import ClientFactory

SERVICES = discover_services()


def test_all_five_services_are_installed() -> None:
    assert [spec.name for spec in SERVICES] == [
        "cvat-sync",
        "telemetry-ingest",
        "vision-orchestrator",
        "rtls-cambus",
        "recording-storage",
    ]
    assert [spec.default_port for spec in SERVICES] == [8001, 8002, 8003, 8004, 8005]


async def test_a_token_from_one_service_works_on_every_service(
    make_client: ClientFactory, infra_settings: InfraSettings, db_session: AsyncSession
) -> None:
    await create_user(db_session, username="everywhere", password="everywhere-password", role="viewer")
    clients = [await make_client(service_app(spec, infra_settings)) for spec in SERVICES]
    credentials = {"username": "everywhere", "password": "everywhere-password"}
    login = await clients[0].post("/api/v1/auth/login", json=credentials)
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    for spec, client in zip(SERVICES, clients, strict=True):
        me = await client.get("/api/v1/auth/me", headers=headers)
        assert me.status_code == 200, f"{spec.name}: {me.text}"
        assert me.json()["name"] == "everywhere"


async def test_an_api_key_works_on_every_service_as_x_api_key_and_as_bearer(
    make_client: ClientFactory, infra_settings: InfraSettings, db_session: AsyncSession
) -> None:
    _key, plaintext = await create_api_key(db_session, "uploader", ["recordings:write"])
    _revoked, revoked = await create_api_key(db_session, "retired uploader", ["recordings:write"])
    _revoked.revoked_at = datetime.now(UTC)
    await db_session.flush()
    for spec in SERVICES:
        client = await make_client(service_app(spec, infra_settings))
        for headers in ({"X-API-Key": plaintext}, {"Authorization": f"Bearer {plaintext}"}):
            me = await client.get("/api/v1/auth/me", headers=headers)
            assert me.status_code == 200, f"{spec.name} {list(headers)}: {me.text}"
            assert (me.json()["kind"], me.json()["name"]) == ("api_key", "uploader")
        refused = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {revoked}"})
        assert refused.status_code == 401, f"{spec.name}: {refused.text}"
        assert refused.json()["error"]["message"] == "API key has been revoked"


@pytest.mark.parametrize("spec", SERVICES, ids=[spec.name for spec in SERVICES])
async def test_an_event_committed_to_the_outbox_reaches_the_service_stream(
    spec: ServiceSpec, make_client: ClientFactory, infra_settings: InfraSettings, redis_client: Redis
) -> None:
    app = service_app(spec, infra_settings)
    await make_client(app)  # runs the lifespan, and with it the outbox relay
    sessionmaker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    event = Event(source=f"mirante/{spec.name}", type="test.wiring.checked", data={"service": spec.name})
    async with sessionmaker() as session, session.begin():
        await emit(session, spec.schema, event)
    try:
        found = None
        for _ in range(200):
            entries = await redis_client.xrevrange(spec.stream, count=100)
            found = next((entry for entry in entries if _as_text(entry[1][b"id"]) == event.id), None)
            if found:
                break
            await asyncio.sleep(0.05)
        assert found is not None, f"{spec.name} did not publish the event to {spec.stream}"
        assert Event.from_fields(found[1]) == event
    finally:
        if found:
            await redis_client.xdel(spec.stream, found[0])
        async with sessionmaker() as session, session.begin():
            await session.execute(delete(outbox_table(spec.schema)).where(outbox_table(spec.schema).c.id == event.id))


def _as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

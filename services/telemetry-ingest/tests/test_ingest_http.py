"""`POST /ingest` with EMQX rule-engine bodies: single and batched messages, idempotent retries, rejections per
message and reading, tenant-bound API keys, authentication, and the 400/401/403/413/415 answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.commands import create_api_key
from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory, HeadersFactory
from telemetry_ingest.config import Settings
from telemetry_ingest.ingest import service as ingest_service
from telemetry_ingest.main import create_app
from telemetry_ingest.tenancy.naming import schema_for

TenantFactory = Callable[..., Awaitable[str]]
KeyFactory = Callable[..., Awaitable[dict[str, str]]]

NOW = datetime.now(UTC).replace(microsecond=0)
NOW_MS = int(NOW.timestamp() * 1000)


def topic(tenant: str, device: str = "dev-1", sensor: str = "temperature") -> str:
    return f"tenants/{tenant}/devices/{device}/sensors/{sensor}"


def emqx(message_topic: str, payload: Any, ts: Any = NOW_MS, client_id: str = "dev-1") -> dict[str, Any]:
    """One message as EMQX's HTTP action sends it: the payload as a JSON string unless given decoded."""
    return {
        "client_id": client_id,
        "topic": message_topic,
        "payload": payload if isinstance(payload, str) else orjson.dumps(payload).decode(),
        "ts": ts,
    }


def reading(value: Any, minutes_ago: float | None = None, unit: str = "celsius") -> dict[str, Any]:
    document: dict[str, Any] = {"value": value, "unit": unit}
    if minutes_ago is not None:
        document["timestamp"] = (NOW - timedelta(minutes=minutes_ago)).isoformat()
    return document


@pytest.fixture
def settings(infra_settings: InfraSettings) -> Settings:
    return Settings(
        infra=infra_settings,
        mqtt_ingest_enabled=False,
        ingest_max_body_bytes=64 * 1024,
        ingest_max_messages_per_request=50,
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(make_client: ClientFactory, app: FastAPI) -> httpx.AsyncClient:
    return await make_client(app)


@pytest.fixture
def api_key(db_session: AsyncSession) -> KeyFactory:
    """`await api_key(tenant=None, scopes=("telemetry:ingest",))`: headers carrying a new API key."""

    async def make(tenant: str | None = None, scopes: tuple[str, ...] = ("telemetry:ingest",)) -> dict[str, str]:
        _key, plaintext = await create_api_key(db_session, "emqx", list(scopes), tenant=tenant)
        return {"X-API-Key": plaintext}

    return make


async def post(client: httpx.AsyncClient, headers: dict[str, str], body: Any) -> httpx.Response:
    return await client.post(
        "/ingest", content=orjson.dumps(body), headers={**headers, "Content-Type": "application/json"}
    )


async def readings_of(session: AsyncSession, slug: str) -> list[tuple[Any, ...]]:
    rows = await session.execute(
        text(f'SELECT device_id, sensor, ts, value FROM "{schema_for(slug)}".readings ORDER BY device_id, ts')
    )
    return [tuple(row) for row in rows]


async def test_a_single_message_is_stored(
    client: httpx.AsyncClient, db_session: AsyncSession, make_tenant: TenantFactory, api_key: KeyFactory
) -> None:
    slug = await make_tenant()
    response = await post(client, await api_key(), emqx(topic(slug), reading(23.5, 1)))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "messages": 1,
        "readings": {"received": 1, "written": 1, "duplicate": 0, "rejected": 0},
        "tenants": {slug: {"received": 1, "written": 1, "duplicate": 0, "rejected": 0}},
        "unrouted": 0,
        "rejections": [],
        "rejections_truncated": False,
    }
    assert await readings_of(db_session, slug) == [("dev-1", "temperature", NOW - timedelta(minutes=1), 23.5)]


async def test_a_batch_for_several_tenants_is_stored_and_a_retry_changes_nothing(
    client: httpx.AsyncClient, db_session: AsyncSession, make_tenant: TenantFactory, api_key: KeyFactory
) -> None:
    first, second = await make_tenant(), await make_tenant()
    body = [
        emqx(topic(first, "ahu-1"), reading(20.5, 2)),
        emqx(topic(first, "ahu-1"), [reading(21.0, 1), reading(21.5)]),  # a list; the second has no time
        {"clientid": "ahu-2", "topic": topic(second, "ahu-2"), "payload": reading(30, 3), "timestamp": str(NOW_MS)},
    ]
    headers = await api_key()
    first_answer = await post(client, headers, body)
    retry = await post(client, headers, body)

    assert first_answer.status_code == retry.status_code == 200
    assert first_answer.json()["readings"] == {"received": 4, "written": 4, "duplicate": 0, "rejected": 0}
    assert retry.json()["readings"] == {"received": 4, "written": 0, "duplicate": 4, "rejected": 0}
    assert retry.json()["tenants"][second] == {"received": 1, "written": 0, "duplicate": 1, "rejected": 0}
    # The reading without a time took the broker's arrival time `ts`, so the retry found it again.
    assert await readings_of(db_session, first) == [
        ("ahu-1", "temperature", NOW - timedelta(minutes=2), 20.5),
        ("ahu-1", "temperature", NOW - timedelta(minutes=1), 21.0),
        ("ahu-1", "temperature", NOW, 21.5),
    ]
    assert await readings_of(db_session, second) == [("ahu-2", "temperature", NOW - timedelta(minutes=3), 30.0)]


async def test_refused_messages_and_readings_are_listed_and_the_good_ones_kept(
    client: httpx.AsyncClient, db_session: AsyncSession, make_tenant: TenantFactory, api_key: KeyFactory
) -> None:
    slug = await make_tenant()
    body = [
        emqx(topic(slug), [reading(1, 3), {"value": "n/a"}, reading(3, 2)]),
        emqx(topic(slug, "dev-2"), "{not json"),
        "not an object",
        {"payload": "{}", "ts": NOW_MS},
        emqx(topic(slug, "dev-3"), reading(1), ts="last tuesday"),
        emqx(topic(f"{slug}-gone"), reading(5, 1)),
        emqx(f"tenants/{slug}/devices/bad device/sensors/t", reading(6, 1)),
    ]
    response = await post(client, await api_key(), body)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["messages"] == 7
    assert answer["readings"] == {"received": 5, "written": 2, "duplicate": 0, "rejected": 3}
    assert answer["unrouted"] == 4
    listed = [(item["message"], item["reading"], item["stored_in"]) for item in answer["rejections"]]
    assert listed == [
        (0, 1, "rejected_readings"),
        (1, None, "rejected_readings"),
        (2, None, "unrouted"),
        (3, None, "unrouted"),
        (4, None, "unrouted"),
        (5, None, "unrouted"),
        (6, None, "rejected_readings"),
    ]
    reasons = [item["reason"] for item in answer["rejections"]]
    assert "numbers in quotes" in reasons[0] or "got the string" in reasons[0]
    assert reasons[1].startswith("malformed JSON")
    assert reasons[2] == "message must be a JSON object, got a string"
    assert reasons[3] == "message has no topic"
    assert reasons[4].startswith("invalid ts")
    assert reasons[5] == f"unknown tenant '{slug}-gone'"
    assert "invalid device id" in reasons[6]
    assert [row[3] for row in await readings_of(db_session, slug)] == [1.0, 3.0]
    stored = await db_session.execute(
        text(f'SELECT source, reason FROM "{schema_for(slug)}".rejected_readings ORDER BY id')
    )
    assert [row.source for row in stored] == ["http"] * 3


async def test_a_key_bound_to_a_tenant_writes_only_that_tenant(
    client: httpx.AsyncClient, db_session: AsyncSession, make_tenant: TenantFactory, api_key: KeyFactory
) -> None:
    own, other = await make_tenant(), await make_tenant()
    body = [
        emqx(topic(own), reading(1, 1)),
        emqx(topic(other), reading(2, 1)),
        emqx(topic(f"{other}-nope"), reading(3, 1)),
        emqx("devices/x", reading(4, 1)),
    ]
    response = await post(client, await api_key(tenant=own), body)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["tenants"] == {own: {"received": 1, "written": 1, "duplicate": 0, "rejected": 0}}
    assert answer["unrouted"] == 3
    reasons = {item["message"]: item["reason"] for item in answer["rejections"]}
    assert reasons[1] == f"forbidden tenant '{other}': this API key writes only tenant '{own}'"
    # Whether the other tenant exists is not disclosed.
    assert reasons[2] == f"forbidden tenant '{other}-nope': this API key writes only tenant '{own}'"
    assert reasons[3].startswith("forbidden tenant: the topic names no tenant")
    assert await readings_of(db_session, other) == []
    assert len(await readings_of(db_session, own)) == 1
    unrouted = await db_session.scalar(
        text("SELECT count(*) FROM telemetry_ingest.unrouted_messages WHERE reason LIKE :reason"),
        {"reason": f"forbidden tenant '{other}'%"},
    )
    assert unrouted == 1


async def test_a_message_with_a_nul_in_its_unit_is_rejected_without_failing_the_request(
    client: httpx.AsyncClient, db_session: AsyncSession, make_tenant: TenantFactory, api_key: KeyFactory
) -> None:
    slug = await make_tenant()
    body = [emqx(topic(slug, "ok-1"), reading(1, 1)), emqx(topic(slug, "bad"), '{"value": 2, "unit": "c\\u0000"}')]
    body.append(emqx(topic(slug, "ok-2"), reading(3, 1)))
    response = await post(client, await api_key(), body)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert [(item["message"], item["stored_in"]) for item in answer["rejections"]] == [(1, "rejected_readings")]
    assert answer["readings"]["written"] == 2
    assert sorted(row[0] for row in await readings_of(db_session, slug)) == ["ok-1", "ok-2"]


async def test_the_rejection_list_is_capped_but_everything_is_counted(
    client: httpx.AsyncClient, make_tenant: TenantFactory, api_key: KeyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = await make_tenant()
    monkeypatch.setattr(ingest_service, "MAX_LISTED_REJECTIONS", 2)
    response = await post(client, await api_key(), emqx(topic(slug), [{"value": None}] * 5))

    answer = response.json()
    assert answer["readings"]["rejected"] == 5
    assert [item["reading"] for item in answer["rejections"]] == [0, 1]
    assert answer["rejections_truncated"] is True


async def test_credentials_are_checked(
    client: httpx.AsyncClient, make_tenant: TenantFactory, api_key: KeyFactory, auth_headers: HeadersFactory
) -> None:
    slug = await make_tenant()
    body = emqx(topic(slug), reading(1, 1))

    missing = await post(client, {}, body)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = await post(client, {"X-API-Key": "mk_abcdefgh_" + "x" * 43}, body)
    assert wrong.status_code == 401
    no_scope = await post(client, await api_key(scopes=("telemetry:read",)), body)
    assert no_scope.status_code == 403
    assert "telemetry:ingest" in no_scope.json()["error"]["message"]
    user = await post(client, await auth_headers("admin", staff=True), body)
    assert user.status_code == 403
    assert "API key" in user.json()["error"]["message"]
    wildcard = await post(client, await api_key(scopes=("*",)), body)
    assert wildcard.status_code == 200
    as_bearer = {"Authorization": f"Bearer {(await api_key())['X-API-Key']}"}
    assert (await post(client, as_bearer, body)).status_code == 200
    no_scope_bearer = {"Authorization": f"Bearer {(await api_key(scopes=('telemetry:read',)))['X-API-Key']}"}
    assert (await post(client, no_scope_bearer, body)).status_code == 403


async def test_bodies_that_cannot_be_read_are_refused(client: httpx.AsyncClient, api_key: KeyFactory) -> None:
    headers = {**(await api_key()), "Content-Type": "application/json"}

    for body, wording in [
        (b"", "empty body"),
        (b"{oops", "malformed JSON body"),
        (b"[]", "empty list"),
        (b"42", "body must be a JSON object or a list"),
    ]:
        response = await client.post("/ingest", content=body, headers=headers)
        assert response.status_code == 400, body
        assert wording in response.json()["error"]["message"]

    form = await client.post("/ingest", content=b"topic=x", headers={**headers, "Content-Type": "text/plain"})
    assert form.status_code == 415
    untyped = await client.post("/ingest", content=b"{}", headers={"X-API-Key": headers["X-API-Key"]})
    assert untyped.status_code == 415

    too_many = await client.post("/ingest", content=orjson.dumps([{}] * 51), headers=headers)
    assert too_many.status_code == 413
    assert too_many.json()["error"]["details"] == {"messages": 51, "limit": 50}
    too_big = await client.post("/ingest", content=b" " * (64 * 1024 + 1), headers=headers)
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "payload_too_large"


async def test_metrics_count_what_requests_stored(
    client: httpx.AsyncClient, app: FastAPI, make_tenant: TenantFactory, api_key: KeyFactory
) -> None:
    slug = await make_tenant()
    headers = await api_key()
    body = [emqx(topic(slug), [reading(1, 2), reading(2, 1), {"value": True}]), emqx(topic(f"{slug}q"), reading(1))]
    await post(client, headers, body)
    await post(client, headers, body)
    await client.post("/ingest", content=b"{oops", headers={**headers, "Content-Type": "application/json"})

    registry: CollectorRegistry = app.state.metrics_registry
    assert registry.get_sample_value("telemetry_readings_received_total", {"tenant": slug}) == 6
    assert registry.get_sample_value("telemetry_readings_written_total", {"tenant": slug}) == 2
    assert registry.get_sample_value("telemetry_readings_duplicate_total", {"tenant": slug}) == 2
    rejected = {"tenant": slug, "reason": "invalid_value"}
    assert registry.get_sample_value("telemetry_readings_rejected_total", rejected) == 2
    unrouted = {"source": "http", "reason": "unknown_tenant"}
    assert registry.get_sample_value("telemetry_messages_unrouted_total", unrouted) == 2
    malformed = {"source": "http", "reason": "malformed_json"}
    assert registry.get_sample_value("telemetry_messages_unrouted_total", malformed) == 1
    exposed = (await client.get("/metrics")).text
    assert f'telemetry_readings_written_total{{tenant="{slug}"}} 2.0' in exposed

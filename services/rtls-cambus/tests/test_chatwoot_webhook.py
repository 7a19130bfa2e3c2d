"""The Chatwoot webhook endpoint: signatures over timestamp and raw body, the 5-minute window, the token of older
servers, de-duplication on X-Chatwoot-Delivery, the log of every request and the limits of an anonymous route."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus.tables import outbox_table
from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory, HeadersFactory
from mirante.webhooks.audit import REJECTED_BODY_KEPT_BYTES
from rtls_cambus.chatwoot.models import ChatwootDelivery
from rtls_cambus.chatwoot.receiver import DELIVERY_EVENT
from rtls_cambus.config import Settings
from rtls_cambus.identifiers import SCHEMA
from rtls_cambus.main import create_app

URL = "/api/v1/integrations/chatwoot/webhook"
SECRET = "chatwoot-webhook-secret"
TOKEN = "old-server-token-0123456789"


def chatwoot_settings(infra: InfraSettings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "infra": infra,
        "chatwoot_enabled": True,
        "chatwoot_url": "http://127.0.0.1:9",
        "chatwoot_api_token": "unused",
        "chatwoot_account_id": 1,
        "chatwoot_inbox_id": 1,
        "chatwoot_webhook_secret": SECRET,
        "chatwoot_sync_enabled": False,
        "chatwoot_webhook_max_body_bytes": 16 * 1024,
        "chatwoot_webhook_rejected_rate_limit": "1000/minute",
        "notifications_enabled": False,
        "incident_rules_enabled": False,
        "webhook_dispatch_enabled": False,
        "mqtt_ingest_enabled": False,
    }
    values.update(overrides)
    return Settings(**values)


def message_body(**fields: Any) -> bytes:
    payload = {
        "event": "message_created",
        "id": 4242,
        "content": "On my way",
        "message_type": "outgoing",
        "private": False,
        "conversation": {"id": 7},
        "account": {"id": 1},
        "sender": {"id": 3, "name": "Bruno", "type": "user"},
    }
    payload.update(fields)
    return orjson.dumps(payload)


def signed(
    body: bytes, *, secret: str = SECRET, timestamp: int | None = None, delivery: str | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Chatwoot-Signature": f"sha256={digest}",
        "X-Chatwoot-Timestamp": stamp,
        "X-Chatwoot-Delivery": delivery or str(uuid.uuid4()),
    }


async def log_row(session: AsyncSession, log_id: int) -> ChatwootDelivery:
    row = await session.get(ChatwootDelivery, log_id)
    assert row is not None
    return row


async def queued_events(session: AsyncSession, log_id: int) -> list[str]:
    table = outbox_table(SCHEMA)
    query = select(table.c.type).where(table.c.subject == f"chatwoot-delivery/{log_id}")
    return list((await session.scalars(query)).all())


@pytest_asyncio.fixture(loop_scope="session")
async def client(make_client: ClientFactory, infra_settings: InfraSettings) -> httpx.AsyncClient:
    return await make_client(create_app(chatwoot_settings(infra_settings)))


async def test_a_signed_message_is_logged_and_queued_once(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    body = message_body()
    headers = signed(body)
    answer = await client.post(URL, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    receipt = answer.json()
    assert receipt["status"] == "queued"
    row = await log_row(db_session, receipt["log_id"])
    assert (row.status, row.authenticated_by, row.event, row.http_status) == (
        "queued",
        "signature",
        "message_created",
        200,
    )
    assert row.body == body.decode() and not row.body_truncated
    assert row.delivery_id == headers["X-Chatwoot-Delivery"]
    assert row.headers["x-chatwoot-signature"] == headers["X-Chatwoot-Signature"]
    assert await queued_events(db_session, row.id) == [DELIVERY_EVENT]

    # Chatwoot retries with the same delivery id, a fresh timestamp and signature: logged, answered 200, not queued.
    again = await client.post(URL, content=body, headers=signed(body, delivery=headers["X-Chatwoot-Delivery"]))
    assert again.status_code == 200
    duplicate = again.json()
    assert duplicate["status"] == "duplicate" and f"log {row.id}" in duplicate["message"]
    assert (await log_row(db_session, duplicate["log_id"])).status == "duplicate"
    assert await queued_events(db_session, duplicate["log_id"]) == []


async def test_events_that_are_not_mirrored_are_logged_ignored(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    body = orjson.dumps({"event": "conversation_typing_on", "conversation": {"id": 7}})
    answer = await client.post(URL, content=body, headers=signed(body))
    assert answer.status_code == 200 and answer.json()["status"] == "ignored"
    row = await log_row(db_session, answer.json()["log_id"])
    assert row.status == "ignored" and "not mirrored" in (row.note or "")
    assert await queued_events(db_session, row.id) == []


async def test_bad_signatures_and_stale_timestamps_are_refused_and_logged_short(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    big = message_body(content="x" * (3 * REJECTED_BODY_KEPT_BYTES))
    now = int(time.time())
    cases = {
        "wrong secret": signed(big, secret="not-the-secret"),
        "stale": signed(big, timestamp=now - 400),
        "from the future": signed(big, timestamp=now + 400),
        "no signature": {"Content-Type": "application/json", "X-Chatwoot-Timestamp": str(now)},
        "altered body": signed(message_body()),
    }
    for case, headers in cases.items():
        answer = await client.post(URL, content=big, headers=headers)
        assert answer.status_code == 401, (case, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid_signature"
        row = await log_row(db_session, error["details"]["log_id"])
        assert (row.status, row.authenticated_by, row.http_status) == ("rejected", None, 401), case
        assert row.body_truncated and len(row.body.encode()) <= REJECTED_BODY_KEPT_BYTES, case
        assert row.body_size == len(big) and row.body_sha256 == hashlib.sha256(big).hexdigest()
        assert await queued_events(db_session, row.id) == []
    stale = await client.post(URL, content=big, headers=signed(big, timestamp=now - 400))
    assert "in the past" in stale.json()["error"]["message"]
    # A timestamp just inside the window passes.
    fresh = await client.post(URL, content=big, headers=signed(big, timestamp=now - 200))
    assert fresh.status_code == 200 and fresh.json()["status"] == "queued"


async def test_what_is_not_a_json_event_is_refused(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    not_json = b"event=message_created"
    wrong_type = signed(not_json) | {"Content-Type": "application/x-www-form-urlencoded"}
    answer = await client.post(URL, content=not_json, headers=wrong_type)
    assert answer.status_code == 415
    assert (await log_row(db_session, answer.json()["error"]["details"]["log_id"])).status == "rejected"
    broken = b'{"event": "message_created",'
    assert (await client.post(URL, content=broken, headers=signed(broken))).status_code == 400
    no_event = orjson.dumps({"id": 1})
    assert (await client.post(URL, content=no_event, headers=signed(no_event))).status_code == 400
    a_list = b"[1, 2]"
    assert (await client.post(URL, content=a_list, headers=signed(a_list))).status_code == 400


async def test_a_body_over_the_limit_is_refused(client: httpx.AsyncClient) -> None:
    body = message_body(content="y" * (20 * 1024))
    answer = await client.post(URL, content=body, headers=signed(body))
    assert answer.status_code == 413


async def test_older_servers_authenticate_with_the_token_in_the_url(
    make_client: ClientFactory, infra_settings: InfraSettings, db_session: AsyncSession
) -> None:
    client = await make_client(
        create_app(chatwoot_settings(infra_settings, chatwoot_webhook_secret=None, chatwoot_webhook_token=TOKEN))
    )
    body = message_body()
    plain = {"Content-Type": "application/json"}
    accepted = await client.post(URL, params={"token": TOKEN}, content=body, headers=plain)
    assert accepted.status_code == 200 and accepted.json()["status"] == "queued"
    row = await log_row(db_session, accepted.json()["log_id"])
    assert row.authenticated_by == "token" and row.delivery_id is None
    assert TOKEN not in str(row.headers) and TOKEN not in row.body
    for params in ({"token": TOKEN[:-1] + "x"}, {}, {"token": ""}):
        assert (await client.post(URL, params=params, content=body, headers=plain)).status_code == 401
    # A signature proves nothing in token mode: the token is what is configured.
    assert (await client.post(URL, content=body, headers=signed(body))).status_code == 401


async def test_with_a_secret_the_token_is_not_enough(make_client: ClientFactory, infra_settings: InfraSettings) -> None:
    client = await make_client(create_app(chatwoot_settings(infra_settings, chatwoot_webhook_token=TOKEN)))
    body = message_body()
    answer = await client.post(URL, params={"token": TOKEN}, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 401


async def test_without_a_secret_or_token_everything_is_refused(
    make_client: ClientFactory, infra_settings: InfraSettings, db_session: AsyncSession
) -> None:
    for settings in (
        chatwoot_settings(infra_settings, chatwoot_webhook_secret=None),
        chatwoot_settings(infra_settings, chatwoot_enabled=False),
    ):
        client = await make_client(create_app(settings))
        body = message_body()
        answer = await client.post(URL, content=body, headers=signed(body))
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "chatwoot_not_configured"
        assert (await log_row(db_session, answer.json()["error"]["details"]["log_id"])).status == "rejected"


async def test_failed_authentication_is_throttled_per_address_and_not_logged_past_it(
    make_client: ClientFactory, infra_settings: InfraSettings, db_session: AsyncSession
) -> None:
    rate = f"3/{17 + uuid.uuid4().int % 40} minutes"  # a bucket of this test alone
    client = await make_client(create_app(chatwoot_settings(infra_settings, chatwoot_webhook_rejected_rate_limit=rate)))
    body = message_body()
    before = len((await db_session.scalars(select(ChatwootDelivery.id))).all())
    statuses = [
        (await client.post(URL, content=body, headers=signed(body, secret="wrong"))).status_code for _ in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
    assert len((await db_session.scalars(select(ChatwootDelivery.id))).all()) == before + 3
    # Signed requests do not count against the limit of failures.
    assert (await client.post(URL, content=body, headers=signed(body))).status_code == 200


async def test_the_log_is_for_admins(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    body = message_body()
    receipt = (await client.post(URL, content=body, headers=signed(body))).json()
    refused = (await client.post(URL, content=body, headers=signed(body, secret="nope"))).json()
    admin = await auth_headers("admin")
    listed = await client.get("/api/v1/integrations/chatwoot/deliveries", params={"status": "queued"}, headers=admin)
    assert listed.status_code == 200
    assert receipt["log_id"] in [item["id"] for item in listed.json()["results"]]
    assert all(item["status"] == "queued" for item in listed.json()["results"])
    detail = await client.get(f"/api/v1/integrations/chatwoot/deliveries/{receipt['log_id']}", headers=admin)
    assert detail.status_code == 200 and detail.json()["body"] == body.decode()
    rejected = await client.get(
        f"/api/v1/integrations/chatwoot/deliveries/{refused['error']['details']['log_id']}", headers=admin
    )
    assert rejected.json()["status"] == "rejected" and rejected.json()["authenticated_by"] is None
    missing = await client.get(f"/api/v1/integrations/chatwoot/deliveries/{2**62}", headers=admin)
    assert missing.status_code == 404

"""The webhook audit log API: admins list (newest first, filtered, paginated) and read single requests."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from cvat_sync.config import Settings
from cvat_sync.main import create_app
from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory, HeadersFactory
from mirante.webhooks import sign_sha256_hex

SECRET = "logs-secret"
WEBHOOK = "/api/v1/webhooks/cvat"
LOGS = "/api/v1/webhook-logs"


def job_object(job_id: int) -> dict[str, Any]:
    return {
        "id": job_id,
        "task_id": 15,
        "task_name": "street-batch-01",
        "project_id": 7,
        "project_name": "Street scenes",
        "assignee": None,
        "stage": "annotation",
        "state": "new",
        "updated_date": "2025-03-04T08:00:00.000000Z",
    }


async def send(client: httpx.AsyncClient, payload: dict[str, Any], *, secret: str = SECRET) -> int:
    """Deliver a webhook and return the id of its log row."""
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-Signature-256": sign_sha256_hex(secret, body)}
    response = await client.post(WEBHOOK, content=body, headers=headers)
    document = response.json()
    log_id: int = document["log_id"] if "log_id" in document else document["error"]["details"]["log_id"]
    return log_id


@pytest.fixture
async def client(make_client: ClientFactory, infra_settings: InfraSettings) -> httpx.AsyncClient:
    return await make_client(create_app(Settings(infra=infra_settings, webhook_secret=SecretStr(SECRET))))


@pytest.fixture
async def admin(auth_headers: HeadersFactory) -> dict[str, str]:
    return await auth_headers("admin")


async def test_only_admins_see_the_log(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, admin: dict[str, str]
) -> None:
    log_id = await send(client, {"event": "ping", "webhook": {"id": 1}})
    for path in (LOGS, f"{LOGS}/{log_id}"):
        assert (await client.get(path)).status_code == 401
        for role in ("viewer", "operator"):
            response = await client.get(path, headers=await auth_headers(role))
            assert response.status_code == 403, (path, role)
        assert (await client.get(path, headers=admin)).status_code == 200


async def test_list_is_newest_first_filtered_and_paginated(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    kind = f"test:{uuid.uuid4().hex[:8]}"
    job_id = random.randint(10**9, 2**40)
    ignored = [await send(client, {"event": kind, "n": n}) for n in range(3)]
    middle = datetime.now(UTC)
    created = await send(client, {"event": "create:job", "job": job_object(job_id), "webhook_id": 4})
    rejected = await send(client, {"event": kind, "n": 99}, secret="forged")

    page = (await client.get(LOGS, params={"event_type": kind, "page_size": 2}, headers=admin)).json()
    assert page["count"] == 4
    assert [row["id"] for row in page["results"]] == [rejected, ignored[2]]
    assert page["next"] is not None and page["previous"] is None
    second = (await client.get(page["next"], headers=admin)).json()
    assert [row["id"] for row in second["results"]] == [ignored[1], ignored[0]]
    assert second["next"] is None
    assert "body" not in second["results"][0], "the list leaves bodies to the detail"

    async def rows(**params: Any) -> list[dict[str, Any]]:
        response = await client.get(LOGS, params=params, headers=admin)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["results"]
        return found

    async def ids(**params: Any) -> list[int]:
        return [row["id"] for row in await rows(**params)]

    assert await ids(event_type=kind, status="ignored") == ignored[::-1]
    assert await ids(event_type=kind, status=["ignored", "rejected"]) == [rejected, *ignored[::-1]]
    [row] = await rows(job_id=job_id)
    assert (row["id"], row["status"], row["event_type"], row["webhook_id"]) == (created, "success", "create:job", 4)
    assert await ids(event_type=kind, received_after=middle.isoformat()) == [rejected]
    assert await ids(event_type=kind, received_before=middle.isoformat()) == ignored[::-1]
    in_brasilia = middle.astimezone(timezone(timedelta(hours=-3))).isoformat()
    assert await ids(event_type=kind, received_after=in_brasilia) == [rejected], "an offset is converted to UTC"


async def test_bad_filters_are_422(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    later, earlier = "2025-03-02T10:00:00Z", "2025-03-01T10:00:00Z"
    for params in (
        {"status": "lost"},
        {"received_after": later, "received_before": earlier},
        {"job_id": 0},
        {"received_after": "yesterday"},
    ):
        response = await client.get(LOGS, params=params, headers=admin)
        assert response.status_code == 422, params
        assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("value", ["0.5", "1700000000", "", "2025-03-01", "2025-03-01T10:00:00"])
@pytest.mark.parametrize("name", ["received_after", "received_before"])
async def test_a_time_filter_takes_only_an_rfc_3339_date_time(
    client: httpx.AsyncClient, admin: dict[str, str], name: str, value: str
) -> None:
    response = await client.get(LOGS, params={name: value}, headers=admin)

    assert response.status_code == 422, response.text
    assert [detail["field"] for detail in response.json()["error"]["details"]] == [f"query.{name}"]


async def test_detail_has_body_headers_and_payload(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    job_id = random.randint(10**9, 2**40)
    payload = {"event": "create:job", "job": job_object(job_id), "webhook_id": 9}
    log_id = await send(client, payload)

    response = await client.get(f"{LOGS}/{log_id}", headers=admin)
    assert response.status_code == 200
    detail = response.json()
    assert detail["body"] == json.dumps(payload)
    assert detail["payload"] == payload
    assert detail["status"] == "success"
    assert (detail["event_type"], detail["job_id"], detail["webhook_id"]) == ("create:job", job_id, 9)
    assert detail["signature_valid"] is True
    assert detail["headers"]["content-type"] == "application/json"
    assert detail["headers"]["x-signature-256"] == sign_sha256_hex(SECRET, json.dumps(payload).encode())
    assert "authorization" not in detail["headers"]
    assert detail["received_at"] <= detail["processed_at"]


async def test_detail_of_a_non_json_body_and_unknown_ids(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    body = b"not json at all"
    response = await client.post(
        WEBHOOK,
        content=body,
        headers={"Content-Type": "application/json", "X-Signature-256": sign_sha256_hex(SECRET, body)},
    )
    log_id = response.json()["error"]["details"]["log_id"]
    detail = (await client.get(f"{LOGS}/{log_id}", headers=admin)).json()
    assert (detail["body"], detail["payload"], detail["status"]) == ("not json at all", None, "rejected")

    missing = await client.get(f"{LOGS}/{2**62}", headers=admin)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert (await client.get(f"{LOGS}/0", headers=admin)).status_code == 422

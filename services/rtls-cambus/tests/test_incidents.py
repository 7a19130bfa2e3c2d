"""Incidents over HTTP: CRUD, the status flow, assignees and support groups, messages and attachments."""

from __future__ import annotations

import itertools
import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.commands import create_user
from mirante.bus.tables import outbox_table
from mirante.testing.plugin import HeadersFactory
from rtls_cambus.identifiers import SCHEMA
from rtls_cambus.incidents.service import TRANSITIONS

STATUSES = ["open", "acknowledged", "in_progress", "resolved", "closed"]
PATH_TO = {
    "open": [],
    "acknowledged": ["acknowledged"],
    "in_progress": ["acknowledged", "in_progress"],
    "resolved": ["acknowledged", "in_progress", "resolved"],
    "closed": ["acknowledged", "in_progress", "resolved", "closed"],
}


async def new_user(db_session: AsyncSession, *, active: bool = True) -> int:
    user = await create_user(
        db_session, username=f"u-{uuid.uuid4().hex[:10]}", password="test-password-1234", role="operator"
    )
    if not active:
        user.is_active = False
        await db_session.flush()
    return user.id


async def open_incident(client: httpx.AsyncClient, headers: dict[str, str], **extra: object) -> dict[str, object]:
    response = await client.post(
        "/api/v1/incidents", json={"title": "Smoke", "severity": "high", **extra}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_incident_crud_and_events(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    operator = await auth_headers("operator")
    building = await client.post(
        "/api/v1/buildings", json={"name": f"B-{uuid.uuid4().hex[:6]}"}, headers=await auth_headers("admin")
    )
    assert building.status_code == 201, building.text
    incident = await open_incident(client, operator, building_id=building.json()["id"], description="in the hall")
    assert incident["status"] == "open" and incident["building_id"] == building.json()["id"]

    changed = await client.patch(f"/api/v1/incidents/{incident['id']}", json={"severity": "critical"}, headers=operator)
    assert changed.status_code == 200 and changed.json()["severity"] == "critical"
    assert (
        await client.patch(f"/api/v1/incidents/{incident['id']}", json={"title": None}, headers=operator)
    ).status_code == 422
    unknown = await client.post(
        "/api/v1/incidents", json={"title": "x", "severity": "low", "zone_id": 2**62}, headers=operator
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "zone_not_found", unknown.text
    assert unknown.json()["error"]["details"] == {"field": "zone_id"}
    no_group = await client.patch(
        f"/api/v1/incidents/{incident['id']}", json={"support_group_id": 2**62}, headers=operator
    )
    assert no_group.status_code == 404 and no_group.json()["error"]["code"] == "support_group_not_found"
    assert no_group.json()["error"]["details"] == {"field": "support_group_id"}
    bad = await client.post("/api/v1/incidents", json={"title": "x", "severity": "urgent"}, headers=operator)
    assert bad.status_code == 422

    listed = await client.get("/api/v1/incidents", params={"severity": "critical"}, headers=operator)
    assert incident["id"] in [item["id"] for item in listed.json()["results"]]

    types = (
        await db_session.scalars(
            select(outbox_table(SCHEMA).c.type).where(outbox_table(SCHEMA).c.subject == f"incident/{incident['id']}")
        )
    ).all()
    assert sorted(types) == ["rtls.incident.created", "rtls.incident.updated"]

    admin = await auth_headers("admin")
    assert (await client.delete(f"/api/v1/incidents/{incident['id']}", headers=admin)).status_code == 204
    assert (await client.get(f"/api/v1/incidents/{incident['id']}", headers=operator)).status_code == 404


async def test_status_flow_keeps_history_and_allows_reopen(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    operator = await auth_headers("operator")
    incident = await open_incident(client, operator)
    url = f"/api/v1/incidents/{incident['id']}/status"
    for wanted in ["acknowledged", "in_progress", "resolved", "in_progress", "resolved", "closed"]:
        response = await client.post(url, json={"status": wanted, "note": f"to {wanted}"}, headers=operator)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == wanted
    final = response.json()
    assert final["acknowledged_at"] and final["in_progress_at"] and final["resolved_at"] and final["closed_at"]
    history = (await client.get(f"/api/v1/incidents/{incident['id']}/history", headers=operator)).json()
    assert [(item["from_status"], item["to_status"]) for item in history] == [
        (None, "open"),
        ("open", "acknowledged"),
        ("acknowledged", "in_progress"),
        ("in_progress", "resolved"),
        ("resolved", "in_progress"),
        ("in_progress", "resolved"),
        ("resolved", "closed"),
    ]
    assert all(item["changed_by_kind"] == "user" and item["changed_by_name"] for item in history)


@pytest.mark.parametrize(
    ("current", "wanted"),
    [pair for pair in itertools.product(STATUSES, STATUSES) if pair[1] not in TRANSITIONS[pair[0]]],  # type: ignore[index]
)
async def test_every_impossible_transition_is_409(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, current: str, wanted: str
) -> None:
    operator = await auth_headers("operator")
    incident = await open_incident(client, operator)
    url = f"/api/v1/incidents/{incident['id']}/status"
    for step in PATH_TO[current]:
        assert (await client.post(url, json={"status": step}, headers=operator)).status_code == 200
    response = await client.post(url, json={"status": wanted}, headers=operator)
    assert response.status_code == 409, response.text
    message = response.json()["error"]["message"]
    assert current in message and wanted in message


async def test_assignees_and_support_groups_take_active_users_only(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    operator, admin = await auth_headers("operator"), await auth_headers("admin")
    alice, bob, gone = await new_user(db_session), await new_user(db_session), await new_user(db_session, active=False)

    group = await client.post(
        "/api/v1/support-groups", json={"name": f"Desk {uuid.uuid4().hex[:6]}", "member_ids": [alice]}, headers=admin
    )
    assert group.status_code == 201 and group.json()["member_ids"] == [alice]
    group_id = group.json()["id"]
    again = await client.post("/api/v1/support-groups", json={"name": group.json()["name"]}, headers=admin)
    assert again.status_code == 409
    refused = await client.post(f"/api/v1/support-groups/{group_id}/members", json={"user_id": gone}, headers=admin)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "user_inactive"
    unknown = await client.post(f"/api/v1/support-groups/{group_id}/members", json={"user_id": 2**62}, headers=admin)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "user_not_found"
    assert (
        await client.post(f"/api/v1/support-groups/{group_id}/members", json={"user_id": bob}, headers=admin)
    ).status_code == 204
    assert (await client.get(f"/api/v1/support-groups/{group_id}", headers=operator)).json()["member_ids"] == sorted(
        [alice, bob]
    )
    assert (await client.delete(f"/api/v1/support-groups/{group_id}/members/{bob}", headers=admin)).status_code == 204
    assert (await client.delete(f"/api/v1/support-groups/{group_id}/members/{bob}", headers=admin)).status_code == 404

    incident = await open_incident(client, operator, support_group_id=group_id, assignee_ids=[alice])
    assert incident["assignee_ids"] == [alice] and incident["support_group_id"] == group_id
    url = f"/api/v1/incidents/{incident['id']}/assignees"
    assert (await client.put(url, json={"user_ids": [bob, alice, bob]}, headers=operator)).json()[
        "assignee_ids"
    ] == sorted([alice, bob])
    for user_ids, status in (([gone], 409), ([2**62], 404)):
        response = await client.put(url, json={"user_ids": user_ids}, headers=operator)
        assert response.status_code == status and response.json()["error"]["details"] == {
            "field": "user_ids",
            "user_ids": user_ids,
        }
    mine = await client.get("/api/v1/incidents", params={"assignee_id": bob}, headers=operator)
    assert [item["id"] for item in mine.json()["results"]] == [incident["id"]]


async def test_messages_form_a_paginated_thread(client: httpx.AsyncClient, auth_headers: HeadersFactory) -> None:
    operator, viewer = await auth_headers("operator"), await auth_headers("viewer")
    incident = await open_incident(client, operator)
    url = f"/api/v1/incidents/{incident['id']}/messages"
    for number in range(3):
        posted = await client.post(url, json={"body": f"note {number}"}, headers=operator)
        assert posted.status_code == 201 and posted.json()["author_name"]
    assert (await client.post(url, json={"body": "  "}, headers=operator)).status_code == 422
    assert (await client.post(url, json={"body": "hi"}, headers=viewer)).status_code == 403
    page = (await client.get(url, params={"page": 2, "page_size": 2}, headers=viewer)).json()
    assert page["count"] == 3 and [item["body"] for item in page["results"]] == ["note 2"]
    assert (await client.get("/api/v1/incidents/999999999/messages", headers=viewer)).status_code == 404


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png"),
        ("photo.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 40, "image/jpeg"),
        ("report.pdf", PDF, "application/pdf"),
        ("notes.txt", "Câmera 3 sem imagem\n".encode(), "text/plain; charset=utf-8"),
    ],
)
async def test_attachments_of_accepted_types_are_stored_and_served_as_downloads(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, name: str, data: bytes, content_type: str
) -> None:
    operator, viewer = await auth_headers("operator"), await auth_headers("viewer")
    incident = await open_incident(client, operator)
    url = f"/api/v1/incidents/{incident['id']}/attachments"
    uploaded = await client.post(
        url, files={"file": (f"../../{name}", data, "application/x-anything")}, headers=operator
    )
    assert uploaded.status_code == 201, uploaded.text
    attachment = uploaded.json()
    assert attachment["content_type"] == content_type and attachment["original_name"] == name
    assert name not in attachment["stored_name"]

    served = await client.get(f"{url}/{attachment['id']}", headers=viewer)
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == content_type
    described = (await client.get("/openapi.json")).json()["paths"]
    download = described["/api/v1/incidents/{incident_id}/attachments/{attachment_id}"]["get"]
    assert content_type in download["responses"]["200"]["content"]
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"] == f'attachment; filename="{attachment["stored_name"]}"'
    assert (await client.get(f"{url}/{attachment['id']}")).status_code == 401
    listed = (await client.get(url, headers=viewer)).json()
    assert [item["id"] for item in listed["results"]] == [attachment["id"]]
    assert (await client.delete(f"{url}/{attachment['id']}", headers=operator)).status_code == 204
    assert (await client.get(f"{url}/{attachment['id']}", headers=viewer)).status_code == 404


async def test_attachments_refuse_executables_html_and_oversize(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    operator, viewer = await auth_headers("operator"), await auth_headers("viewer")
    incident = await open_incident(client, operator)
    url = f"/api/v1/incidents/{incident['id']}/attachments"
    for name, data in [
        ("invoice.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 64),
        ("photo.png", b"\x7fELF\x02\x01\x01" + b"\x00" * 64),
        ("notes.txt", b"PK\x03\x04\x14\x00" + b"\x00" * 40),
    ]:
        response = await client.post(url, files={"file": (name, data, "image/png")}, headers=operator)
        assert response.status_code == 415, (name, response.text)
    empty = await client.post(url, files={"file": ("empty.txt", b"", "text/plain")}, headers=operator)
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "attachment_empty", empty.text
    too_big = await client.post(url, files={"file": ("big.txt", b"a" * 4097, "text/plain")}, headers=operator)
    assert too_big.status_code == 413, too_big.text
    refused = await client.post(url, files={"file": ("a.txt", b"hello", "text/plain")}, headers=viewer)
    assert refused.status_code == 403
    assert (await client.get(url, headers=viewer)).json()["count"] == 0

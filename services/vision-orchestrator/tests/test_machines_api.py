"""Machines over HTTP: every field of the contract, validation, availability, credentials shown once."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory, HeadersFactory
from vision_orchestrator.config import Settings
from vision_orchestrator.machines.deps import MachineCaller
from vision_orchestrator.main import create_app
from vision_orchestrator.tables import Machine, MachineCredential

MACHINES = "/api/v1/machines/"


def machine_body(**fields: Any) -> dict[str, Any]:
    return {
        "name": f"MV-{uuid.uuid4().hex[:8]}",
        "location": "Linha de Produção B",
        "ip_address": "192.168.1.101",
        "port": 5000,
        "max_concurrent_inspections": 3,
        "supported_inspection_types": ["blob_detection", "color_filter"],
        "hardware_specs": {"gpu": "RTX 3070", "cpu": "Intel i5-10600K", "memory": "16GB"},
        **fields,
    }


async def register(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await client.post(MACHINES, json=machine_body(**fields), headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_register_returns_every_field_and_the_credential_once(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    admin = await auth_headers("admin")

    response = await client.post(MACHINES, json=machine_body(name="MV-Factory-B"), headers=admin)

    assert response.status_code == 201, response.text
    body = response.json()
    assert re.fullmatch(r"mv_[0-9a-f]{12}", body["id"])
    assert response.headers["location"] == f"/api/v1/machines/{body['id']}/"
    assert response.headers["cache-control"] == "no-store"
    assert body["name"] == "MV-Factory-B"
    assert body["ip_address"] == "192.168.1.101"
    assert body["status"] == "offline"
    assert body["last_heartbeat"] is None
    assert body["current_inspections"] == 0
    assert body["is_available"] is False
    assert body["maintenance"] is False
    assert body["hardware_specs"]["gpu"] == "RTX 3070"
    credential = body["credential"]
    assert body["webhook_secret"].startswith("whsec_")
    assert credential.startswith("mvc_" + body["id"].removeprefix("mv_") + "_")
    stored = (
        await db_session.scalars(select(MachineCredential).where(MachineCredential.machine_id == body["id"]))
    ).one()
    assert credential not in stored.secret_hash
    assert stored.webhook_secret == body["webhook_secret"]
    detail = await client.get(f"{MACHINES}{body['id']}/", headers=await auth_headers("viewer"))
    assert detail.status_code == 200
    assert "credential" not in detail.json()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ip_address", "999.1.1.1"),
        ("ip_address", "machine.local"),
        ("ip_address", 0),
        ("ip_address", 3232235877),
        ("port", 0),
        ("port", 65536),
        ("max_concurrent_inspections", 0),
        ("max_concurrent_inspections", -1),
        ("name", ""),
        ("name", "a\x00b"),
        ("hardware_specs", {"gpu": "a\x00"}),
        ("maintenance", 0),
    ],
)
async def test_invalid_fields_are_422_naming_them(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, field: str, value: object
) -> None:
    response = await client.post(MACHINES, json=machine_body(**{field: value}), headers=await auth_headers("admin"))

    assert response.status_code == 422, response.text
    assert [detail["field"] for detail in response.json()["error"]["details"]] == [f"body.{field}"]


async def test_an_unknown_inspection_type_is_404_naming_the_field_and_the_types(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    admin = await auth_headers("admin")
    types = ["blob_detection", "x_ray", "sonar"]
    registered = await client.post(MACHINES, json=machine_body(supported_inspection_types=types), headers=admin)
    existing = await register(client, admin)
    changed = await client.patch(
        f"{MACHINES}{existing['id']}/", json={"supported_inspection_types": types}, headers=admin
    )

    for response in (registered, changed):
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert error["code"] == "inspection_type_not_found"
        assert error["details"] == {"field": "supported_inspection_types", "names": ["sonar", "x_ray"]}
        assert "'sonar', 'x_ray'" in error["message"]


async def test_a_taken_name_is_409(client: httpx.AsyncClient, auth_headers: HeadersFactory) -> None:
    admin = await auth_headers("admin")
    first = await register(client, admin)
    other = await register(client, admin)

    again = await client.post(MACHINES, json=machine_body(name=first["name"]), headers=admin)
    renamed = await client.patch(f"{MACHINES}{other['id']}/", json={"name": first["name"]}, headers=admin)

    assert again.status_code == 409
    assert renamed.status_code == 409
    assert renamed.json()["error"]["code"] == "machine_name_taken"


async def test_is_available_is_online_below_capacity_and_not_in_maintenance(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    admin = await auth_headers("admin")
    machine = await register(client, admin, max_concurrent_inspections=2)
    row = await db_session.get(Machine, machine["id"])
    assert row is not None

    async def available() -> bool:
        response = await client.get(f"{MACHINES}{machine['id']}/", headers=admin)
        result: bool = response.json()["is_available"]
        return result

    row.status = "online"
    await db_session.flush()
    assert await available()
    filtered = await client.get(MACHINES, params={"is_available": "true", "page_size": 200}, headers=admin)
    assert machine["id"] in {item["id"] for item in filtered.json()["results"]}

    assert (
        await client.patch(f"{MACHINES}{machine['id']}/", json={"maintenance": True}, headers=admin)
    ).status_code == 200
    assert not await available()
    assert (
        await client.patch(f"{MACHINES}{machine['id']}/", json={"maintenance": False}, headers=admin)
    ).status_code == 200
    row.current_inspections = 2
    await db_session.flush()
    assert not await available()
    row.current_inspections = 1
    row.status = "busy"
    await db_session.flush()
    assert not await available()


async def test_put_replaces_and_patch_changes_some_fields(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    admin = await auth_headers("admin")
    machine = await register(client, admin, line="L1")
    path = f"{MACHINES}{machine['id']}/"

    patched = await client.patch(path, json={"port": 6000, "location": None}, headers=admin)
    put = await client.put(path.rstrip("/"), json=machine_body(name=machine["name"], port=7000), headers=admin)
    nulled = await client.patch(path, json={"port": None}, headers=admin)
    no_types = await client.patch(path, json={"supported_inspection_types": None}, headers=admin)

    assert patched.status_code == 200
    assert patched.json()["port"] == 6000
    assert patched.json()["location"] is None
    assert patched.json()["line"] == "L1"
    assert put.status_code == 200, put.text
    assert put.json()["port"] == 7000
    assert put.json()["line"] is None
    assert nulled.status_code == 422
    assert no_types.status_code == 422


async def test_list_paginates_with_absolute_links(client: httpx.AsyncClient, auth_headers: HeadersFactory) -> None:
    admin = await auth_headers("admin")
    location = f"Hall {machine_body()['name']}"
    for _ in range(3):
        await register(client, admin, location=location)

    first = await client.get(MACHINES, params={"location": location, "page_size": 2}, headers=admin)
    second = await client.get(first.json()["next"], headers=admin)

    assert first.json()["count"] == 3
    assert first.json()["next"].startswith("http://testserver/api/v1/machines/?")
    assert first.json()["previous"] is None
    assert len(second.json()["results"]) == 1
    assert second.json()["next"] is None
    assert second.json()["previous"].startswith("http://testserver/api/v1/machines/?")


async def test_delete_removes_the_machine(client: httpx.AsyncClient, auth_headers: HeadersFactory) -> None:
    admin = await auth_headers("admin")
    machine = await register(client, admin)

    deleted = await client.delete(f"{MACHINES}{machine['id']}/", headers=admin)
    missing = await client.get(f"{MACHINES}{machine['id']}/", headers=admin)

    assert deleted.status_code == 204
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "machine_not_found"


async def test_the_machine_credential_authenticates_until_rotated_or_revoked(
    make_client: ClientFactory, infra_settings: InfraSettings, auth_headers: HeadersFactory
) -> None:
    app = create_app(Settings(infra=infra_settings))
    probe = APIRouter()

    @probe.get("/probe/whoami")
    async def whoami(machine: MachineCaller) -> dict[str, str]:
        return {"machine_id": machine.id}

    app.include_router(probe)
    client = await make_client(app)
    admin = await auth_headers("admin")
    machine = await register(client, admin)
    first = machine["credential"]

    async def whoami_with(credential: str) -> httpx.Response:
        return await client.get("/probe/whoami", headers={"Authorization": f"Bearer {credential}"})

    assert (await whoami_with(first)).json() == {"machine_id": machine["id"]}
    assert (await whoami_with(first[:-1] + ("A" if first[-1] != "A" else "B"))).status_code == 401
    assert (await whoami_with("mvc_000000000000_" + "a" * 43)).status_code == 401
    assert (await client.get("/probe/whoami")).status_code == 401

    rotated = await client.post(f"{MACHINES}{machine['id']}/credentials/", headers=admin)
    assert rotated.status_code == 201
    assert rotated.json()["replaced_active"] is True
    second = rotated.json()["credential"]
    assert rotated.json()["webhook_secret"].startswith("whsec_")
    assert rotated.json()["webhook_secret"] != machine["webhook_secret"]
    assert (await whoami_with(first)).status_code == 401
    assert (await whoami_with(second)).status_code == 200
    shown = await client.get(f"{MACHINES}{machine['id']}/credentials/", headers=admin)
    assert shown.json()["active"] is True
    assert shown.json()["last_used_at"] is not None
    assert second not in shown.text

    assert (await client.delete(f"{MACHINES}{machine['id']}/credentials/", headers=admin)).status_code == 204
    refused = await whoami_with(second)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_machine_credential"
    assert (await client.delete(f"{MACHINES}{machine['id']}/credentials/", headers=admin)).status_code == 404
    assert (await client.get(f"{MACHINES}{machine['id']}/credentials/", headers=admin)).json()["active"] is False

"""Device MQTT credentials: issued once with a random secret stored as SHA-256, rotated, shown without the
secret, revoked; only admins of the tenant (or staff admins) manage them."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.settings import InfraSettings
from mirante.testing.plugin import HeadersFactory
from telemetry_ingest.config import Settings
from telemetry_ingest.devices.service import new_device_secret
from telemetry_ingest.tenancy.models import DeviceCredential

TenantFactory = Callable[..., Awaitable[str]]


@pytest.fixture
def settings(infra_settings: InfraSettings) -> Settings:
    """No MQTT ingest: these tests publish nothing, and a subscriber would take other runs' shared messages."""
    return Settings(infra=infra_settings, mqtt_ingest_enabled=False)


def credentials_url(tenant: str, device_id: str) -> str:
    return f"/api/v1/tenants/{tenant}/devices/{device_id}/credentials"


async def register(client: httpx.AsyncClient, headers: dict[str, str], tenant: str, device_id: str) -> None:
    response = await client.post(f"/api/v1/tenants/{tenant}/devices", json={"device_id": device_id}, headers=headers)
    assert response.status_code == 201, response.text


async def stored(session: AsyncSession, username: str) -> list[DeviceCredential]:
    rows = await session.scalars(
        select(DeviceCredential).where(DeviceCredential.username == username).execution_options(populate_existing=True)
    )
    return list(rows)


@pytest.fixture
async def tenant(make_tenant: TenantFactory) -> str:
    return await make_tenant()


@pytest.fixture
async def admin(auth_headers: HeadersFactory, tenant: str) -> dict[str, str]:
    return await auth_headers("admin", tenant=tenant)


def test_secrets_are_long_random_and_url_safe() -> None:
    secrets = {new_device_secret() for _ in range(50)}

    assert len(secrets) == 50
    for secret in secrets:
        assert len(secret) == 43
        assert set(secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


async def test_issue_returns_the_secret_once_and_stores_only_its_hash(
    client: httpx.AsyncClient, admin: dict[str, str], tenant: str, db_session: AsyncSession
) -> None:
    await register(client, admin, tenant, "d-001")

    issued = await client.post(credentials_url(tenant, "d-001"), headers=admin)

    assert issued.status_code == 201, issued.text
    assert issued.headers["cache-control"] == "no-store"
    body = issued.json()
    assert body["tenant"] == tenant
    assert body["device_id"] == "d-001"
    assert body["username"] == f"{tenant}:d-001"
    assert body["replaced_active"] is False
    assert body["publish_topic"] == f"tenants/{tenant}/devices/d-001/sensors/{{sensor_type}}"
    secret = body["secret"]
    [row] = await stored(db_session, f"{tenant}:d-001")
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in (row.secret_hash, row.username)
    assert (row.tenant_slug, row.device_id, row.revoked_at, row.last_used_at) == (tenant, "d-001", None, None)

    shown = await client.get(credentials_url(tenant, "d-001"), headers=admin)
    assert shown.status_code == 200, shown.text
    assert "secret" not in shown.json()
    assert secret not in shown.text
    assert shown.json() == {
        "tenant": tenant,
        "device_id": "d-001",
        "username": f"{tenant}:d-001",
        "active": True,
        "created_at": body["created_at"],
        "last_used_at": None,
        "revoked_at": None,
    }


async def test_issuing_again_rotates_the_secret(
    client: httpx.AsyncClient, admin: dict[str, str], tenant: str, db_session: AsyncSession
) -> None:
    await register(client, admin, tenant, "d-001")
    first = (await client.post(credentials_url(tenant, "d-001"), headers=admin)).json()

    second = await client.post(credentials_url(tenant, "d-001"), headers=admin)

    assert second.status_code == 201
    assert second.json()["replaced_active"] is True
    assert second.json()["secret"] != first["secret"]
    [row] = await stored(db_session, f"{tenant}:d-001")
    assert row.secret_hash == hashlib.sha256(second.json()["secret"].encode()).hexdigest()
    assert row.revoked_at is None


async def test_revoke_then_issue_again(
    client: httpx.AsyncClient, admin: dict[str, str], tenant: str, db_session: AsyncSession
) -> None:
    await register(client, admin, tenant, "d-001")
    await client.post(credentials_url(tenant, "d-001"), headers=admin)

    revoked = await client.delete(credentials_url(tenant, "d-001"), headers=admin)

    assert revoked.status_code == 204
    assert revoked.content == b""
    shown = (await client.get(credentials_url(tenant, "d-001"), headers=admin)).json()
    assert shown["active"] is False
    assert shown["revoked_at"] is not None
    again = await client.delete(credentials_url(tenant, "d-001"), headers=admin)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "credentials_not_found"

    reissued = await client.post(credentials_url(tenant, "d-001"), headers=admin)
    assert reissued.status_code == 201
    assert reissued.json()["replaced_active"] is False
    assert (await client.get(credentials_url(tenant, "d-001"), headers=admin)).json()["active"] is True
    assert len(await stored(db_session, f"{tenant}:d-001")) == 1


async def test_unknown_devices_and_missing_credentials(
    client: httpx.AsyncClient, admin: dict[str, str], tenant: str
) -> None:
    for method in ("POST", "GET", "DELETE"):
        response = await client.request(method, credentials_url(tenant, "ghost"), headers=admin)
        assert response.status_code == 404, (method, response.text)
        assert response.json()["error"]["code"] == "device_not_found"
        malformed = await client.request(method, credentials_url(tenant, "a+b"), headers=admin)
        assert malformed.status_code == 422, (method, malformed.text)
    await register(client, admin, tenant, "d-002")
    for method in ("GET", "DELETE"):
        response = await client.request(method, credentials_url(tenant, "d-002"), headers=admin)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "credentials_not_found"


async def test_only_admins_of_the_tenant_or_staff_admins_manage_credentials(
    client: httpx.AsyncClient,
    auth_headers: HeadersFactory,
    admin: dict[str, str],
    tenant: str,
    make_tenant: TenantFactory,
) -> None:
    await register(client, admin, tenant, "d-001")
    other_tenant = await make_tenant()
    refused = {
        "operator": await auth_headers("operator", tenant=tenant),
        "viewer": await auth_headers("viewer", tenant=tenant),
        "staff operator": await auth_headers("operator", staff=True),
        "admin of another tenant": await auth_headers("admin", tenant=other_tenant),
    }
    for who, headers in refused.items():
        for method in ("POST", "GET", "DELETE"):
            response = await client.request(method, credentials_url(tenant, "d-001"), headers=headers)
            assert response.status_code == 403, (who, method, response.text)
    assert (await client.post(credentials_url(tenant, "d-001"))).status_code == 401

    staff_admin = await auth_headers("admin", staff=True)
    issued = await client.post(credentials_url(tenant, "d-001"), headers=staff_admin)
    assert issued.status_code == 201, issued.text
    assert (await client.delete(credentials_url(tenant, "d-001"), headers=staff_admin)).status_code == 204


async def test_the_same_device_id_in_two_tenants_gets_two_usernames(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, make_tenant: TenantFactory
) -> None:
    first, second = await make_tenant(), await make_tenant()
    staff = await auth_headers("admin", staff=True)
    await register(client, staff, first, "shared-id")
    await register(client, staff, second, "shared-id")

    one = (await client.post(credentials_url(first, "shared-id"), headers=staff)).json()
    two = (await client.post(credentials_url(second, "shared-id"), headers=staff)).json()

    assert (one["username"], two["username"]) == (f"{first}:shared-id", f"{second}:shared-id")
    assert (await client.delete(credentials_url(first, "shared-id"), headers=staff)).status_code == 204
    assert (await client.get(credentials_url(second, "shared-id"), headers=staff)).json()["active"] is True

"""Checks every service must pass: the operations surface, the identity router, its own schema."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.commands import create_user
from mirante.service import ServiceSpec


async def check_service_basics(client: httpx.AsyncClient, spec: ServiceSpec, session: AsyncSession) -> None:
    health = await client.get("/health")
    assert health.status_code == 200, health.text
    assert health.json() == {"status": "ok", "service": spec.name}
    assert health.headers["x-request-id"]

    ready = await client.get("/ready")
    assert ready.status_code == 200, ready.text
    expected_checks = {"database", "redis"} | ({"mqtt"} if spec.uses_mqtt else set())
    assert set(ready.json()["checks"]) == expected_checks
    assert all(check["ok"] for check in ready.json()["checks"].values())

    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'http_requests_total{method="GET",route="/health",service="' + spec.name in metrics.text

    openapi = (await client.get("/openapi.json")).json()
    assert openapi["info"]["title"] == spec.title
    assert "/api/v1/auth/login" in openapi["paths"]
    assert (await client.get("/docs")).status_code == 200

    missing = await client.get("/api/v1/no-such-thing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"

    username = f"contract-{spec.package}"
    await create_user(session, username=username, password="contract-password-1", role="operator")
    login = await client.post("/api/v1/auth/login", data={"username": username, "password": "contract-password-1"})
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json()["name"] == username
    assert (await client.get("/api/v1/auth/me")).status_code == 401

    tables = await session.execute(
        text("SELECT table_name FROM information_schema.tables WHERE table_schema = :schema"),
        {"schema": spec.schema},
    )
    assert {"outbox", "inbox", "alembic_version"} <= set(tables.scalars())

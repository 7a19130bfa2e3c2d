"""`/api/v1/tenants`: staff admins create and change tenants, everyone sees only what they may."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.db import create_sessionmaker
from mirante.testing.plugin import ClientFactory, HeadersFactory
from telemetry_ingest.config import Settings
from telemetry_ingest.main import create_app
from telemetry_ingest.tenancy import service
from telemetry_ingest.tenancy.errors import TenantAlreadyExistsError
from telemetry_ingest.tenancy.naming import InvalidTenantSlugError, check_new_slug
from telemetry_ingest.tenancy.worker import tenant_upgrade_worker

TenantFactory = Callable[..., Awaitable[str]]
TENANTS = "/api/v1/tenants"


def new_slug(prefix: str = "api-") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def staff_admin(auth_headers: HeadersFactory) -> dict[str, str]:
    return await auth_headers("admin", staff=True)


async def tables_of(session: AsyncSession, schema: str) -> set[str]:
    rows = await session.scalars(
        text("SELECT table_name FROM information_schema.tables WHERE table_schema = :schema"), {"schema": schema}
    )
    return set(rows)


async def test_a_staff_admin_creates_a_tenant_with_its_schema_and_event(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    slug = new_slug()

    response = await client.post(
        TENANTS,
        json={"slug": slug, "name": "  North Plant  ", "retention_days": 90},
        headers=await staff_admin(auth_headers),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert {key: body[key] for key in ("slug", "name", "schema_name", "retention_days")} == {
        "slug": slug,
        "name": "North Plant",
        "schema_name": f"tenant_{slug}",
        "retention_days": 90,
    }
    assert body["created_at"] and body["updated_at"]
    assert response.headers["location"] == f"{TENANTS}/{slug}"
    assert {"devices", "sensors", "readings", "latest_readings", "rejected_readings"} <= await tables_of(
        db_session, f"tenant_{slug}"
    )
    events = (
        await db_session.execute(
            text("SELECT type, tenant, subject, envelope FROM telemetry_ingest.outbox WHERE tenant = :slug"),
            {"slug": slug},
        )
    ).all()
    assert len(events) == 1
    event_type, tenant, subject, envelope = events[0]
    assert (event_type, tenant, subject) == ("telemetry.tenant.created", slug, f"tenant/{slug}")
    assert envelope["source"] == "mirante/telemetry-ingest" and envelope["tenant"] == slug
    assert envelope["data"] == {
        "slug": slug,
        "name": "North Plant",
        "schema_name": f"tenant_{slug}",
        "retention_days": 90,
    }


async def test_retention_defaults_to_the_setting(
    make_client: ClientFactory, infra_settings: Any, auth_headers: HeadersFactory
) -> None:
    client = await make_client(
        create_app(Settings(infra=infra_settings, default_retention_days=30, mqtt_ingest_enabled=False))
    )
    slug = new_slug()

    response = await client.post(TENANTS, json={"slug": slug, "name": "Acme"}, headers=await staff_admin(auth_headers))

    assert response.status_code == 201, response.text
    assert response.json()["retention_days"] == 30


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"slug": "Acme", "name": "x"}, "body.slug", "invalid tenant slug 'Acme'"),
        ({"slug": "1acme", "name": "x"}, "body.slug", "lower-case letter"),
        ({"slug": "ac me", "name": "x"}, "body.slug", "invalid tenant slug"),
        ({"slug": "a" * 49, "name": "x"}, "body.slug", "up to 47"),
        ({"slug": "tenant_acme", "name": "x"}, "body.slug", "must not start with 'tenant_'"),
        ({"slug": "", "name": "x"}, "body.slug", "invalid tenant slug"),
        ({"name": "x"}, "body.slug", "Field required"),
        ({"slug": "okslug", "name": "   "}, "body.name", "must not be empty or only white space"),
        ({"slug": "okslug", "name": "\u00a0"}, "body.name", "must not be empty or only white space"),
        ({"slug": "okslug", "name": "x" * 201}, "body.name", "at most 200"),
        ({"slug": "okslug", "name": "x", "retention_days": 0}, "body.retention_days", "greater than or equal to 1"),
        ({"slug": "okslug", "name": "x", "retention_days": 3651}, "body.retention_days", "less than or equal to 3650"),
        ({"slug": "okslug", "name": "x", "retention_days": "6"}, "body.retention_days", "must be a number"),
        ({"slug": "okslug", "name": "x", "retention_days": True}, "body.retention_days", "must be a number"),
        ({"slug": "okslug", "name": "x", "retention_days": 6.5}, "body.retention_days", "valid integer"),
        ({"slug": "okslug", "name": "x", "schema_name": "public"}, "body.schema_name", "Extra inputs"),
    ],
)
async def test_bad_tenant_fields_get_422_saying_what_is_wrong(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, body: dict[str, Any], field: str, fragment: str
) -> None:
    response = await client.post(TENANTS, json=body, headers=await staff_admin(auth_headers))

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert fragment in error["message"]
    assert [item["field"] for item in error["details"]] == [field]


async def test_a_taken_slug_gets_409_and_changes_nothing(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, make_tenant: TenantFactory, db_session: AsyncSession
) -> None:
    slug = await make_tenant(name="First")

    response = await client.post(
        TENANTS, json={"slug": slug, "name": "Second"}, headers=await staff_admin(auth_headers)
    )

    assert response.status_code == 409, response.text
    assert response.json()["error"] == {
        "code": "tenant_exists",
        "message": f"tenant {slug!r} already exists",
        "details": {"slug": slug},
    }
    names = await db_session.scalars(text("SELECT name FROM telemetry_ingest.tenants WHERE slug = :s"), {"s": slug})
    assert list(names) == ["First"]
    events = await db_session.scalar(
        text("SELECT count(*) FROM telemetry_ingest.outbox WHERE tenant = :s"), {"s": slug}
    )
    assert events == 1


async def test_a_leftover_schema_is_never_adopted(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    slug = new_slug()
    await db_session.execute(text(f'CREATE SCHEMA "tenant_{slug}"'))

    response = await client.post(TENANTS, json={"slug": slug, "name": "x"}, headers=await staff_admin(auth_headers))

    assert response.status_code == 409, response.text
    assert "already exists without a tenant" in response.json()["error"]["message"]
    assert (
        await db_session.scalar(text("SELECT count(*) FROM telemetry_ingest.tenants WHERE slug = :s"), {"s": slug}) == 0
    )


@pytest.mark.parametrize(
    ("role", "staff", "tenant", "status"),
    [
        ("admin", False, None, 403),
        ("admin", False, "acme", 403),
        ("operator", True, None, 403),
        ("viewer", True, None, 403),
    ],
)
async def test_only_staff_admins_create_tenants(
    client: httpx.AsyncClient,
    auth_headers: HeadersFactory,
    role: str,
    staff: bool,
    tenant: str | None,
    status: int,
) -> None:
    headers = await auth_headers(role, staff=staff, tenant=tenant)

    response = await client.post(TENANTS, json={"slug": new_slug(), "name": "x"}, headers=headers)

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == "forbidden"
    assert (await client.post(TENANTS, json={"slug": new_slug(), "name": "x"})).status_code == 401


async def test_staff_list_every_tenant_and_tenant_users_only_their_own(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, make_tenant: TenantFactory
) -> None:
    slugs = sorted([await make_tenant(), await make_tenant(), await make_tenant()])

    everything = await client.get(TENANTS, params={"page_size": 200}, headers=await auth_headers(staff=True))
    assert everything.status_code == 200, everything.text
    listed = [tenant["slug"] for tenant in everything.json()["results"]]
    assert set(slugs) <= set(listed)
    assert listed == sorted(listed)
    assert everything.json()["count"] >= 3

    own = await client.get(TENANTS, headers=await auth_headers("viewer", tenant=slugs[1]))
    assert own.status_code == 200
    assert own.json()["count"] == 1
    assert [tenant["slug"] for tenant in own.json()["results"]] == [slugs[1]]

    unknown_claim = await client.get(TENANTS, headers=await auth_headers("viewer", tenant="nobody-here"))
    assert unknown_claim.json() == {"count": 0, "next": None, "previous": None, "results": []}

    no_claim = await client.get(TENANTS, headers=await auth_headers("admin"))
    assert no_claim.status_code == 403
    assert (await client.get(TENANTS)).status_code == 401


async def test_the_list_is_paginated(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, make_tenant: TenantFactory
) -> None:
    for _ in range(3):
        await make_tenant()
    headers = await auth_headers(staff=True)

    first = (await client.get(TENANTS, params={"page_size": 2}, headers=headers)).json()
    second = (await client.get(TENANTS, params={"page": 2, "page_size": 2}, headers=headers)).json()

    assert len(first["results"]) == 2 and first["count"] >= 3
    assert first["previous"] is None and "page=2" in first["next"]
    assert second["previous"] is not None
    assert {t["slug"] for t in first["results"]}.isdisjoint({t["slug"] for t in second["results"]})
    bad = await client.get(TENANTS, params={"page": 0}, headers=headers)
    assert bad.status_code == 422


async def test_reading_one_tenant(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, make_tenant: TenantFactory
) -> None:
    mine, other = await make_tenant(name="Mine"), await make_tenant()
    tenant_user = await auth_headers("viewer", tenant=mine)

    own = await client.get(f"{TENANTS}/{mine}", headers=tenant_user)
    assert own.status_code == 200, own.text
    assert (own.json()["slug"], own.json()["name"]) == (mine, "Mine")

    assert (await client.get(f"{TENANTS}/{other}", headers=tenant_user)).status_code == 403
    assert (await client.get(f"{TENANTS}/{other}", headers=await auth_headers(staff=True))).status_code == 200
    missing = await client.get(f"{TENANTS}/nope-{uuid.uuid4().hex[:6]}", headers=await auth_headers(staff=True))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "tenant_not_found"
    assert (await client.get(f"{TENANTS}/{mine}")).status_code == 401


async def test_staff_admins_rename_and_change_retention(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, make_tenant: TenantFactory, db_session: AsyncSession
) -> None:
    slug = await make_tenant(name="Old name")
    headers = await staff_admin(auth_headers)

    renamed = await client.patch(f"{TENANTS}/{slug}", json={"name": "New name"}, headers=headers)
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["retention_days"]) == ("New name", 365)

    shorter = await client.patch(f"{TENANTS}/{slug}", json={"retention_days": 30}, headers=headers)
    assert (shorter.json()["name"], shorter.json()["retention_days"]) == ("New name", 30)

    stored = (
        await db_session.execute(
            text("SELECT name, retention_days FROM telemetry_ingest.tenants WHERE slug = :s"), {"s": slug}
        )
    ).one()
    assert tuple(stored) == ("New name", 30)
    unchanged = await client.patch(f"{TENANTS}/{slug}", json={}, headers=headers)
    assert unchanged.status_code == 200 and unchanged.json()["retention_days"] == 30
    # JSON Schema's integer: a number without a fractional part, however written.
    written_as_float = await client.patch(f"{TENANTS}/{slug}", json={"retention_days": 31.0}, headers=headers)
    assert written_as_float.status_code == 200 and written_as_float.json()["retention_days"] == 31


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": None}, "name cannot be null"),
        ({"retention_days": None}, "retention_days cannot be null"),
        ({"retention_days": 0}, "greater than or equal to 1"),
        ({"retention_days": "30"}, "must be a number"),
        ({"name": ""}, "must not be empty or only white space"),
        ({"slug": "renamed"}, "Extra inputs"),
    ],
)
async def test_bad_changes_get_422(
    client: httpx.AsyncClient,
    auth_headers: HeadersFactory,
    make_tenant: TenantFactory,
    body: dict[str, Any],
    fragment: str,
) -> None:
    slug = await make_tenant()

    response = await client.patch(f"{TENANTS}/{slug}", json=body, headers=await staff_admin(auth_headers))

    assert response.status_code == 422, response.text
    assert fragment in response.json()["error"]["message"]


async def test_only_staff_admins_change_tenants(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, make_tenant: TenantFactory
) -> None:
    slug = await make_tenant()
    change = {"retention_days": 10}

    own_admin = await client.patch(f"{TENANTS}/{slug}", json=change, headers=await auth_headers("admin", tenant=slug))
    staff_operator = await client.patch(
        f"{TENANTS}/{slug}", json=change, headers=await auth_headers("operator", staff=True)
    )
    other_admin = await client.patch(
        f"{TENANTS}/{slug}", json=change, headers=await auth_headers("admin", tenant="someone-else")
    )
    unknown = await client.patch(f"{TENANTS}/nope-{slug}", json=change, headers=await staff_admin(auth_headers))

    assert [own_admin.status_code, staff_operator.status_code, other_admin.status_code] == [403, 403, 403]
    assert "staff administrators" in own_admin.json()["error"]["message"]
    assert unknown.status_code == 404
    current = await client.get(f"{TENANTS}/{slug}", headers=await auth_headers(staff=True))
    assert current.json()["retention_days"] == 365


@pytest.mark.parametrize("enabled", [True, False])
async def test_the_startup_worker_brings_registered_tenants_to_head(
    make_client: ClientFactory,
    infra_settings: Any,
    db_engine: AsyncEngine,
    committed_tenant_slugs: list[str],
    enabled: bool,
) -> None:
    """A tenant registered without its schema (as after a restore of the registry) is provisioned at start."""
    slug = new_slug("boot-")
    async with db_engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO telemetry_ingest.tenants (slug, name, schema_name) VALUES (:s, 'Boot', :schema)"),
            {"s": slug, "schema": f"tenant_{slug}"},
        )
    committed_tenant_slugs.append(slug)
    app = create_app(Settings(infra=infra_settings, upgrade_tenants_on_start=enabled, mqtt_ingest_enabled=False))
    await make_client(app)
    try:
        # The worker also runs in the background; running it here makes its effect certain before looking.
        await tenant_upgrade_worker(app)

        # Looked at from a connection of its own, so that no lock outlives the look and the cleanup can drop.
        async with db_engine.connect() as connection:
            version_table = await connection.scalar(
                text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f'"tenant_{slug}".alembic_version'}
            )
            assert version_table is enabled
            if enabled:
                version = await connection.scalar(text(f'SELECT version_num FROM "tenant_{slug}".alembic_version'))
                assert version == "0001"
    finally:
        # Removed now rather than at the end of the run: the startup worker of every later app would provision it.
        async with db_engine.begin() as connection:
            await connection.execute(text("SET LOCAL lock_timeout = '30s'"))
            await connection.execute(text("DELETE FROM telemetry_ingest.tenants WHERE slug = :s"), {"s": slug})
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "tenant_{slug}" CASCADE'))


async def test_two_creations_of_one_slug_at_once_make_one_tenant(
    db_engine: AsyncEngine, committed_tenant_slugs: list[str]
) -> None:
    slug = new_slug("race-")
    committed_tenant_slugs.append(slug)

    async def create(name: str) -> str:
        try:
            async with create_sessionmaker(db_engine)() as session, session.begin():
                await service.create_tenant(session, slug=slug, name=name)
        except TenantAlreadyExistsError as error:
            return error.message
        return "created"

    outcomes = await asyncio.gather(create("First"), create("Second"))

    assert sorted(outcomes) == ["created", f"tenant {slug!r} already exists"]
    async with db_engine.connect() as connection:
        count = await connection.scalar(
            text("SELECT count(*) FROM telemetry_ingest.tenants WHERE slug = :s"), {"s": slug}
        )
        events = await connection.scalar(
            text("SELECT count(*) FROM telemetry_ingest.outbox WHERE tenant = :s"), {"s": slug}
        )
    assert (count, events) == (1, 1)


@pytest.mark.parametrize("slug", ["acme", "a", "a-b_9", "\x1b", "Acme", "1abc", "", "tenant_acme", "x" * 49, "acme\n"])
def test_the_described_slug_is_the_slug_the_service_takes(slug: str) -> None:
    described = create_app(Settings()).openapi()["components"]["schemas"]["TenantCreate"]["properties"]["slug"]
    # fullmatch, as JSON Schema reads `$`: Python's `$` would also match before a final line break.
    fits_description = re.fullmatch(described["pattern"], slug) is not None and (
        re.match(described["not"]["pattern"], slug) is None
    )

    try:
        check_new_slug(slug)
    except InvalidTenantSlugError:
        taken = False
    else:
        taken = True
    assert fits_description == taken

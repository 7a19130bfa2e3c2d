"""No route of any service answers 500 to hostile path or query values: NUL, integers past int32 and int64, and
dates at the ends of the calendar (year 1 reached PostgreSQL as -infinity; a default window computed back from it
overflowed Python's dates).

Every documented operation of every installed service is called once per parameter and hostile value, the
other parameters holding ordinary values, as a staff admin (so authorization lets the request reach its
handler). Each must be refused or served; none may fail. A new route with a bare `str` or `int` parameter that
reaches the database fails here, whichever service it is in.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.db import create_sessionmaker
from mirante.service import ServiceSpec, discover_services
from mirante.settings import InfraSettings
from mirante.testing.apps import service_app
from mirante.testing.plugin import ClientFactory, HeadersFactory

SERVICES = discover_services()

HOSTILE_VALUES = {
    "nul": "\x00",
    "nul-inside": "a\x00b",
    "int32+1": str(2**31),
    "int64+1": str(2**63),
    "uint64+1": str(2**64),
    "int64-1": str(-(2**63) - 1),
    "first-instant": "0001-01-01T00:00:00Z",
    "last-instant": "9999-12-31T23:59:59.999999Z",
    "first-date": "0001-01-01",
    "last-date": "9999-12-31",
}

# The path parameter of telemetry's tenant-scoped routes: given a real tenant, so the tenant check lets them through.
TENANT_PARAM = "tenant"


@dataclass(frozen=True)
class Call:
    method: str
    path_template: str
    path_values: dict[str, str]
    query: dict[str, str]

    def url(self) -> str:
        path = self.path_template
        for name, value in self.path_values.items():
            path = path.replace("{" + name + "}", quote(value, safe=""))
        return path

    def describe(self) -> str:
        return f"{self.method.upper()} {self.url()} {self.query}"


def _ordinary(schema: dict[str, Any], name: str, tenant: str) -> str:
    """A value the parameter accepts, so that only the hostile one is wrong."""
    if name == TENANT_PARAM:
        return tenant
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return _ordinary(option, name, tenant)
    if "enum" in schema:
        return str(schema["enum"][0])
    kind = schema.get("type")
    if kind == "array":
        return _ordinary(schema.get("items", {}), name, tenant)
    if kind == "integer":
        return str(max(1, int(schema.get("minimum", 1))))
    if kind == "boolean":
        return "true"
    if schema.get("format") == "date-time":
        return "2025-01-01T00:00:00Z"
    if name == "bucket":
        return "1h"
    return "abc"


def hostile_calls(app: FastAPI, tenant: str) -> Iterator[tuple[Call, str]]:
    """Every (operation, parameter, hostile value) of the app's OpenAPI document, as a call to make."""
    for path_template, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            parameters = [p for p in operation.get("parameters", []) if p["in"] in ("path", "query")]
            ordinary = {p["name"]: _ordinary(p["schema"], p["name"], tenant) for p in parameters if p["in"] == "path"}
            for parameter in parameters:
                for label, value in HOSTILE_VALUES.items():
                    path_values = dict(ordinary)
                    query: dict[str, str] = {}
                    if parameter["in"] == "path":
                        path_values[parameter["name"]] = value
                    else:
                        query[parameter["name"]] = value
                    yield Call(method, path_template, path_values, query), f"{parameter['name']}={label}"


# Routes meant for an MQTT broker (telemetry-ingest's broker auth) answer 503 until a broker secret is set;
# with one set and sent, hostile parameters reach their handlers like everywhere else.
BROKER_SECRET = "hostile-input-broker-secret-0123456789"


def _app(spec: ServiceSpec, infra: InfraSettings) -> FastAPI:
    if "broker_auth_secret" in type(spec.settings_factory()).model_fields:
        return service_app(spec, infra, broker_auth_secret=SecretStr(BROKER_SECRET))
    return service_app(spec, infra)


@pytest_asyncio.fixture(loop_scope="session")
async def tenant(db_engine: AsyncEngine) -> AsyncIterator[str]:
    """A committed telemetry tenant: exports read on connections of their own, outside the test's transaction.

    Requested before the test's session, so it is dropped after that session has let go of its tables.
    """
    from telemetry_ingest.tenancy import service
    from telemetry_ingest.tenancy.naming import schema_for
    from telemetry_ingest.tenancy.partitions import forget_partitions

    slug = f"h{uuid.uuid4().hex[:12]}"
    async with create_sessionmaker(db_engine)() as session, session.begin():
        await service.create_tenant(session, slug=slug, name="Hostile input")
    try:
        yield slug
    finally:
        forget_partitions(schema_for(slug))
        async with db_engine.begin() as connection:
            await connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema_for(slug)}" CASCADE'))
            await connection.execute(text("DELETE FROM telemetry_ingest.tenants WHERE slug = :slug"), {"slug": slug})


@pytest.mark.parametrize("spec", SERVICES, ids=[spec.name for spec in SERVICES])
async def test_no_route_answers_500_to_hostile_parameters(
    tenant: str,
    spec: ServiceSpec,
    make_client: ClientFactory,
    infra_settings: InfraSettings,
    auth_headers: HeadersFactory,
) -> None:
    app = _app(spec, infra_settings)
    client = await make_client(app)
    headers = {**await auth_headers("admin", staff=True), "X-Broker-Secret": BROKER_SECRET}

    failures = []
    calls = 0
    for call, what in hostile_calls(app, tenant):
        calls += 1
        try:
            response = await client.request(call.method, call.url(), params=call.query, headers=headers)
        except Exception as error:
            failures.append(f"{call.describe()} ({what}): broken off: {type(error).__name__}")
            continue
        if response.status_code >= 500:
            failures.append(f"{call.describe()} ({what}): {response.status_code} {response.text[:300]}")
        elif response.status_code >= 400:
            assert "error" in response.json(), f"{call.describe()}: not the error envelope: {response.text[:300]}"
    assert calls > 0
    assert not failures, f"{len(failures)} of {calls} calls failed:\n" + "\n".join(failures)

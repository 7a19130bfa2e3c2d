"""Every vision route against every kind of caller: the status each gets.

Rules (see `vision_orchestrator.deps`): viewers read, operators also write inspections, admins also manage
machines, their credentials and the catalogue. API keys need the scope `vision` (or `*`) besides the role.
The fleet belongs to no tenant, so tenant-bound principals get 403 whatever their role; staff reach it. A
machine credential is not a user token: 401 on every user route.

One app and one world of callers serve the whole module (`mirante.testing.matrix`); what each request wrote is
undone after it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.auth.roles import Role
from mirante.auth.tokens import TokenCodec
from mirante.settings import InfraSettings
from mirante.testing.matrix import (
    Case,
    World,
    enrol_callers,
    rolled_back_session,
    run_case,
    serve_on_session,
)
from vision_orchestrator.config import Settings
from vision_orchestrator.main import create_app

ANONYMOUS = "anonymous"
MACHINE = "machine"
USERS: dict[str, dict[str, Any]] = {
    "viewer": {"role": Role.viewer},
    "operator": {"role": Role.operator},
    "admin": {"role": Role.admin},
    "acme_admin": {"role": Role.admin, "tenant": "acme"},
    "staff": {"role": Role.admin, "staff": True},
}
KEYS: dict[str, tuple[list[str], Role, str | None]] = {
    "key_viewer": (["*"], Role.viewer, None),
    "key_operator": (["*"], Role.operator, None),
    "key_admin": (["*"], Role.admin, None),
    "key_admin_other_scope": (["telemetry:ingest"], Role.admin, None),
    "key_vision_admin": (["vision"], Role.admin, None),
    "key_acme_admin": (["*"], Role.admin, "acme"),
}
CALLERS = (ANONYMOUS, MACHINE, *USERS, *KEYS)

READERS = frozenset(
    {"viewer", "operator", "admin", "staff", "key_viewer", "key_operator", "key_admin", "key_vision_admin"}
)
OPERATORS = frozenset({"operator", "admin", "staff", "key_operator", "key_admin", "key_vision_admin"})
ADMINS = frozenset({"admin", "staff", "key_admin", "key_vision_admin"})


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(db_engine: AsyncEngine, infra_settings: InfraSettings) -> AsyncIterator[World]:
    """One app for the module, on one session rolled back at its end: a machine and its credential, an
    inspection, an inspection type, and the callers."""
    codec = TokenCodec.from_settings(infra_settings.jwt)
    stem = f"vx{uuid.uuid4().hex[:10]}"
    async with rolled_back_session(db_engine) as session, AsyncExitStack() as stack:
        client = await serve_on_session(stack, create_app(Settings(infra=infra_settings)), session)
        world = World(client=client, session=session)
        world.headers[ANONYMOUS] = {}
        await enrol_callers(world, codec, stem, USERS, KEYS)
        admin = world.headers["admin"]
        registered = await client.post("/api/v1/machines/", json=machine_body(), headers=admin)
        assert registered.status_code == 201, registered.text
        world.ids["machine_id"] = registered.json()["id"]
        world.headers[MACHINE] = {"Authorization": f"Bearer {registered.json()['credential']}"}
        inspection = await client.post("/api/v1/inspections/", json=inspection_body(), headers=admin)
        assert inspection.status_code == 201, inspection.text
        world.ids["inspection_id"] = inspection.json()["id"]
        type_name = f"t_{uuid.uuid4().hex[:8]}"
        added = await client.post("/api/v1/inspection-types/", json={"name": type_name}, headers=admin)
        assert added.status_code == 201, added.text
        world.ids["name"] = type_name
        yield world


def machine_body() -> dict[str, Any]:
    return {
        "name": f"MV-{uuid.uuid4().hex[:8]}",
        "ip_address": "10.1.2.3",
        "port": 5000,
        "max_concurrent_inspections": 2,
        "supported_inspection_types": ["blob_detection"],
    }


def inspection_body() -> dict[str, Any]:
    return {
        "name": "Inspeção",
        "inspection_type": "blob_detection",
        "pipeline_config": {"tools": [{"name": "image_source"}, {"name": "blob_detection"}]},
    }


def expect(allowed: frozenset[str], success: int) -> dict[str, int]:
    """`success` for the allowed callers, 401 without a user credential, 403 for the rest."""
    table = {caller: (success if caller in allowed else 403) for caller in CALLERS}
    table[ANONYMOUS] = table[MACHINE] = 401
    return table


def filled(make_body: Callable[[], dict[str, Any]]) -> Callable[[World], dict[str, Any]]:
    """The request body of `make_body`, its `{machine_id}` and `{inspection_id}` values filled from the world."""

    def body(world: World) -> dict[str, Any]:
        return {
            key: value.format(**world.ids) if isinstance(value, str) else value for key, value in make_body().items()
        }

    return body


MACHINE_PATH = "/api/v1/machines/{machine_id}/"
INSPECTION_PATH = "/api/v1/inspections/{inspection_id}/"
TYPE_PATH = "/api/v1/inspection-types/{name}/"

CASES: dict[str, Case] = {
    "list machines": Case("GET", "/api/v1/machines/", expect(READERS, 200)),
    "register a machine": Case("POST", "/api/v1/machines/", expect(ADMINS, 201), json=filled(machine_body)),
    "get a machine": Case("GET", MACHINE_PATH, expect(READERS, 200)),
    "replace a machine": Case("PUT", MACHINE_PATH, expect(ADMINS, 200), json=filled(machine_body)),
    "change a machine": Case("PATCH", MACHINE_PATH, expect(ADMINS, 200), json=filled(lambda: {"maintenance": True})),
    "remove a machine": Case("DELETE", MACHINE_PATH, expect(ADMINS, 204)),
    "rotate a credential": Case("POST", MACHINE_PATH + "credentials/", expect(ADMINS, 201)),
    "read a credential": Case("GET", MACHINE_PATH + "credentials/", expect(ADMINS, 200)),
    "revoke a credential": Case("DELETE", MACHINE_PATH + "credentials/", expect(ADMINS, 204)),
    "list inspections": Case("GET", "/api/v1/inspections/", expect(READERS, 200)),
    "create an inspection": Case("POST", "/api/v1/inspections/", expect(OPERATORS, 201), json=filled(inspection_body)),
    "get an inspection": Case("GET", INSPECTION_PATH, expect(READERS, 200)),
    "replace an inspection": Case("PUT", INSPECTION_PATH, expect(OPERATORS, 200), json=filled(inspection_body)),
    "change an inspection": Case(
        "PATCH", INSPECTION_PATH, expect(OPERATORS, 200), json=filled(lambda: {"priority": 1})
    ),
    "cancel an inspection": Case("POST", INSPECTION_PATH + "cancel/", expect(OPERATORS, 200)),
    "list inspection types": Case("GET", "/api/v1/inspection-types/", expect(READERS, 200)),
    "add an inspection type": Case(
        "POST",
        "/api/v1/inspection-types/",
        expect(ADMINS, 201),
        json=filled(lambda: {"name": f"t_{uuid.uuid4().hex[:8]}"}),
    ),
    "get an inspection type": Case("GET", TYPE_PATH, expect(READERS, 200)),
    "describe an inspection type": Case(
        "PATCH", TYPE_PATH, expect(ADMINS, 200), json=filled(lambda: {"description": "x"})
    ),
    "remove an inspection type": Case("DELETE", TYPE_PATH, expect(ADMINS, 204)),
    "read a machine's status": Case("GET", MACHINE_PATH + "status/", expect(READERS, 200)),
    "read a machine's statistics": Case("GET", MACHINE_PATH + "statistics/", expect(READERS, 200)),
    # Send and distribute run in the dispatcher's own committed transactions, which cannot see the world the
    # test wrote in its rolled-back one: a caller let through meets 404 (what they do is test_dispatch's).
    "send an inspection": Case(
        "POST",
        INSPECTION_PATH + "send/",
        expect(OPERATORS, 404),
        json=filled(lambda: {"target_machine_id": "{machine_id}"}),
    ),
    "distribute an inspection": Case(
        "POST",
        "/api/v1/orchestrator/distribute/",
        expect(OPERATORS, 404),
        json=filled(lambda: {"inspection_id": "{inspection_id}"}),
    ),
    "read the queue": Case("GET", "/api/v1/orchestrator/queue/", expect(READERS, 200)),
    "read the dashboard": Case("GET", "/api/v1/dashboard/", expect(READERS, 200)),
}


def test_every_vision_route_is_in_the_matrix(infra_settings: InfraSettings) -> None:
    paths = create_app(Settings(infra=infra_settings)).openapi()["paths"]
    routes = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith(
            (
                "/api/v1/machines",
                "/api/v1/inspections",
                "/api/v1/inspection-types",
                "/api/v1/orchestrator",
                "/api/v1/dashboard",
            )
        )
        for method in operations
    }

    assert routes == {(case.method, case.route) for case in CASES.values()}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("case_name", list(CASES))
async def test_vision_route_by_caller(world: World, case_name: str, caller: str) -> None:
    await run_case(world, CASES[case_name], caller)

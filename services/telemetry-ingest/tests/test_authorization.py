"""Every telemetry-ingest route against every kind of caller: the status each gets, and what it saw or changed.

Rules (`tenancy.deps`, docs/telemetry-ingest.md):

- a tenant's routes (`/api/v1/tenants/{tenant}/...`) are for staff, who reach every tenant, and for principals of
  that tenant: anyone else gets 403, a principal without a tenant too, before the tenant's existence is revealed
  (an unknown tenant is 404 only to those who could see it);
- viewers read; operators also register devices and change devices, sensors and threshold rules; admins also
  manage device credentials. API keys need the scope `telemetry:read` to read and `telemetry:write` to change;
- the tenant registry: staff admins create and change tenants; staff list every tenant, a tenant's principals
  only their own;
- `POST /ingest` takes API keys with `telemetry:ingest` only, and a key bound to a tenant writes only that
  tenant;
- the broker's endpoints (`/api/v1/mqtt/...`) take the broker's shared secret, nothing else: a device's own
  MQTT credentials, sent over HTTP, are refused everywhere.

The ops pages are shells whose scripts call the tenant API, served to anyone like health, readiness and the API
docs; `/metrics` answers only its token.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.auth.models import ApiKey, User
from mirante.auth.roles import Role
from mirante.auth.tokens import TokenCodec
from mirante.settings import InfraSettings
from mirante.testing.matrix import (
    METRICS_TOKEN,
    Case,
    Check,
    World,
    api_key_headers,
    enrol_callers,
    library_cases,
    rolled_back_session,
    routes_to_cover,
    run_case,
    serve_on_session,
    user_headers,
    with_metrics_token,
)
from telemetry_ingest.config import Settings
from telemetry_ingest.main import create_app
from telemetry_ingest.tenancy import service as tenants
from telemetry_ingest.tenancy.naming import schema_for
from telemetry_ingest.tenancy.partitions import forget_partitions

A = f"ta{uuid.uuid4().hex[:10]}"
B = f"tb{uuid.uuid4().hex[:10]}"
MISSING = f"tm{uuid.uuid4().hex[:10]}"
BROKER_SECRET = "broker-secret-of-the-matrix"
SUPERUSER, SUPERUSER_PASSWORD = "ingest-service", "superuser-password"

ANONYMOUS = "anonymous"
SCRAPER = "metrics_scraper"
"""Holds the metrics token and nothing else: a bearer value that is neither a user token nor an API key."""
DEVICE = "device"
"""A device of tenant A with its MQTT credentials, sent as HTTP Basic auth."""
BROKER = "broker"
"""The MQTT broker: the shared secret in `X-Broker-Secret`."""
USERS: dict[str, dict[str, Any]] = {
    "viewer": {"role": Role.viewer},
    "operator": {"role": Role.operator},
    "admin": {"role": Role.admin},
    "staff": {"role": Role.admin, "staff": True},
    "staff_viewer": {"role": Role.viewer, "staff": True},
    "a_viewer": {"role": Role.viewer, "tenant": A},
    "a_operator": {"role": Role.operator, "tenant": A},
    "a_admin": {"role": Role.admin, "tenant": A},
    "b_admin": {"role": Role.admin, "tenant": B},
}
KEYS: dict[str, tuple[list[str], Role, str | None]] = {
    "key_admin": (["*"], Role.admin, None),
    "key_ingest": (["telemetry:ingest"], Role.viewer, None),
    "key_a_read": (["telemetry:read"], Role.viewer, A),
    "key_a_write": (["telemetry:read", "telemetry:write"], Role.operator, A),
    "key_a_admin": (["*"], Role.admin, A),
    "key_a_ingest": (["telemetry:ingest"], Role.admin, A),
}
CALLERS = (ANONYMOUS, SCRAPER, DEVICE, BROKER, *USERS, *KEYS)
WITHOUT_CREDENTIALS = frozenset({ANONYMOUS, SCRAPER, DEVICE, BROKER})

ADMINS = {A: frozenset({"staff", "a_admin", "key_a_admin"}), B: frozenset({"staff", "b_admin"})}
OPERATORS = {A: ADMINS[A] | {"a_operator", "key_a_write"}, B: ADMINS[B]}
READERS = {A: OPERATORS[A] | {"staff_viewer", "a_viewer", "key_a_read"}, B: OPERATORS[B] | {"staff_viewer"}}
TENANT_LISTERS = READERS[A] | READERS[B]
INGESTERS = frozenset({"key_admin", "key_ingest", "key_a_admin", "key_a_ingest"})
STAFF = frozenset({"staff", "staff_viewer"})


def expect(allowed: frozenset[str], success: int, *, hidden: frozenset[str] = frozenset()) -> dict[str, int]:
    """`success` for the allowed callers, 404 for the `hidden` ones, 401 without a credential of the API, 403 for
    the rest."""
    table = {caller: success if caller in allowed else 404 if caller in hidden else 403 for caller in CALLERS}
    table.update(dict.fromkeys(WITHOUT_CREDENTIALS, 401))
    return table


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(CALLERS, status)


def tenant_of(caller: str) -> str | None:
    spec = USERS.get(caller)
    if spec is not None:
        return spec.get("tenant")
    return KEYS[caller][2] if caller in KEYS else None


def device_of(world: World, tenant: str) -> str:
    return str(world.ids[f"device_{tenant}"])


def emqx_message(tenant: str, device: str, payload: Any, ts: datetime) -> dict[str, Any]:
    return {
        "client_id": device,
        "topic": f"tenants/{tenant}/devices/{device}/sensors/temperature",
        "payload": orjson.dumps(payload).decode(),
        "ts": int(ts.timestamp() * 1000),
    }


def settings_of(infra_settings: InfraSettings) -> Settings:
    return Settings(
        infra=with_metrics_token(infra_settings),
        mqtt_ingest_enabled=False,
        retention_enabled=False,
        upgrade_tenants_on_start=False,
        # Rules a case creates are rolled back with it: the cache must not keep them for the next case.
        threshold_rule_cache_seconds=0,
        broker_auth_secret=SecretStr(BROKER_SECRET),
        broker_superusers={SUPERUSER: hashlib.sha256(SUPERUSER_PASSWORD.encode()).hexdigest()},
        # The checks of credential cases log in with a replaced secret, a failure each; the limit has its tests.
        broker_authn_failure_limit="100000/minute",
    )


async def commit_tenants(db_engine: AsyncEngine, settings: Settings, world: World) -> None:
    """Tenants A and B, each with a device (credentials issued), a threshold rule on it, a reading and a rejected
    one, committed: a CSV export streams on a connection of its own, which sees only committed data. Made through
    the API by a staff user and an ingest key committed with them (and removed afterwards, with `remove_setup`)."""
    codec = TokenCodec.from_settings(settings.infra.jwt)
    stem = world.ids["stem"]
    async with AsyncSession(db_engine, expire_on_commit=False) as session, AsyncExitStack() as stack:
        client = await serve_on_session(stack, create_app(settings), session)
        staff = await user_headers(session, codec, f"{stem}-setup", Role.admin, staff=True)
        ingester = await api_key_headers(session, f"{stem}-setup", ["telemetry:ingest"])
        for tenant in (A, B):
            await tenants.create_tenant(session, slug=tenant, name=f"Tenant {tenant}")
            device = world.ids[f"device_{tenant}"] = f"{stem}-{tenant}"
            base = f"/api/v1/tenants/{tenant}"
            registered = await client.post(f"{base}/devices", json={"device_id": device}, headers=staff)
            assert registered.status_code == 201, registered.text
            issued = await client.post(f"{base}/devices/{device}/credentials", headers=staff)
            assert issued.status_code == 201, issued.text
            world.ids[f"secret_{tenant}"] = issued.json()["secret"]
            rule = {"device_id": device, "sensor": "temperature", "max_value": 10}
            created = await client.post(f"{base}/thresholds", json=rule, headers=staff)
            assert created.status_code == 201, created.text
            world.ids[f"rule_{tenant}"] = created.json()["id"]
            body = [
                emqx_message(tenant, device, {"value": 23.5, "unit": "celsius"}, world.ids["ts"]),
                emqx_message(tenant, device, {"value": "hot"}, world.ids["ts"]),
            ]
            ingested = await client.post(
                "/ingest", content=orjson.dumps(body), headers={**ingester, "Content-Type": "application/json"}
            )
            assert ingested.status_code == 200 and ingested.json()["readings"]["written"] == 1, ingested.text
        # Nobody consumes these events: keep them off the shared stream.
        await session.execute(text("DELETE FROM telemetry_ingest.outbox WHERE tenant = ANY(:slugs)"), {"slugs": [A, B]})
        await session.commit()


async def remove_setup(db_engine: AsyncEngine, stem: str) -> None:
    async with AsyncSession(db_engine) as session, session.begin():
        await session.execute(delete(ApiKey).where(ApiKey.name == f"{stem}-setup"))
        await session.execute(delete(User).where(User.username == f"{stem}-setup"))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(
    db_engine: AsyncEngine, infra_settings: InfraSettings, committed_tenant_slugs: list[str]
) -> AsyncIterator[World]:
    """One app for the module, on one session rolled back at its end, over the committed tenants of
    `commit_tenants`; and the callers."""
    settings = settings_of(infra_settings)
    codec = TokenCodec.from_settings(infra_settings.jwt)
    stem = f"tm{uuid.uuid4().hex[:10]}"
    try:
        async with rolled_back_session(db_engine) as session, AsyncExitStack() as stack:
            world = World(client=await serve_on_session(stack, create_app(settings), session), session=session)
            world.ids.update(stem=stem, a=A, b=B, missing=MISSING, ts=datetime.now(UTC) - timedelta(minutes=5))
            committed_tenant_slugs.extend([A, B])
            await commit_tenants(db_engine, settings, world)
            await remove_setup(db_engine, stem)
            world.headers.update({ANONYMOUS: {}, SCRAPER: {"Authorization": f"Bearer {METRICS_TOKEN}"}})
            world.headers[BROKER] = {"X-Broker-Secret": BROKER_SECRET}
            await enrol_callers(world, codec, stem, USERS, KEYS)
            device_a, secret_a = device_of(world, A), world.ids[f"secret_{A}"]
            basic = base64.b64encode(f"{A}:{device_a}:{secret_a}".encode()).decode()
            world.headers[DEVICE] = {"Authorization": f"Basic {basic}"}
            world.ids.update(broker_queries(world))
            yield world
    finally:
        forget_partitions(schema_for(f"{stem}new"))


def broker_questions(world: World) -> dict[str, dict[str, Any]]:
    """What the broker asks about tenant A's device (and the superuser), by endpoint."""
    device = device_of(world, A)
    username, secret = f"{A}:{device}", world.ids[f"secret_{A}"]
    topic = f"tenants/{A}/devices/{device}/sensors/temperature"
    return {
        "emqx/authn": {"username": username, "password": secret, "clientid": device, "peerhost": "10.0.0.9"},
        "emqx/authz": {"username": username, "clientid": device, "topic": topic, "action": "publish"},
        "go-auth/user": {"username": username, "password": secret, "clientid": device},
        "go-auth/superuser": {"username": SUPERUSER},
        "go-auth/acl": {"username": username, "clientid": device, "topic": topic, "acc": 2},
    }


def broker_queries(world: World) -> dict[str, str]:
    return {f"query_{name}": urlencode(fields) for name, fields in broker_questions(world).items()}


# Checks: what a caller saw or changed.


def only_its_tenant(tenant: str) -> Check:
    """Whatever the answer, nothing of the other tenant; an answer of the tenant shows its device."""
    other = B if tenant == A else A

    async def check(world: World, caller: str, response: httpx.Response) -> None:
        assert device_of(world, other) not in response.text
        if response.status_code >= 400:
            assert device_of(world, tenant) not in response.text
        else:
            assert device_of(world, tenant) in response.text

    return check


def the_tenant(tenant: str) -> Check:
    async def check(world: World, caller: str, response: httpx.Response) -> None:
        if response.status_code == 200:
            assert response.json()["slug"] == tenant

    return check


async def tenants_within_reach(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code != 200:
        return
    slugs = {tenant["slug"] for tenant in response.json()["results"]}
    if caller in STAFF:
        assert {A, B} <= slugs
    else:
        assert slugs == {tenant_of(caller)}


async def staff_view(world: World, url: str) -> httpx.Response:
    return await world.client.get(url.format(**world.ids), headers=world.headers["staff"])


def changed_only_when_allowed(url: str, read: Callable[[httpx.Response], Any], changed: Any) -> Check:
    """After the case, staff reads `url`: `read` of it is `changed` exactly when the case succeeded."""

    async def check(world: World, caller: str, response: httpx.Response) -> None:
        assert (read(await staff_view(world, url)) == changed) == (response.status_code < 300)

    return check


def registered_only_when_allowed(tenant: str) -> Check:
    async def check(world: World, caller: str, response: httpx.Response) -> None:
        found = await staff_view(world, f"/api/v1/tenants/{tenant}/devices/{world.ids['stem']}-new")
        assert found.status_code == (200 if response.status_code == 201 else 404)

    return check


def secret_replaced_only_when_allowed(tenant: str) -> Check:
    async def check(world: World, caller: str, response: httpx.Response) -> None:
        device = device_of(world, tenant)
        answer = await world.client.post(
            "/api/v1/mqtt/go-auth/user",
            json={"username": f"{tenant}:{device}", "password": world.ids[f"secret_{tenant}"], "clientid": device},
            headers=world.headers[BROKER],
        )
        assert answer.status_code == (403 if response.status_code < 300 else 200), answer.text

    return check


def rule_gone_only_when_allowed(tenant: str) -> Check:
    async def check(world: World, caller: str, response: httpx.Response) -> None:
        found = await staff_view(world, f"/api/v1/tenants/{tenant}/thresholds/{{rule_{tenant}}}")
        assert found.status_code == (404 if response.status_code == 204 else 200)

    return check


async def writes_within_reach(world: World, caller: str, response: httpx.Response) -> None:
    stored = {}
    for tenant in (A, B):
        stored[tenant] = await world.session.scalar(
            text(f'SELECT count(*) FROM "{schema_for(tenant)}".readings WHERE device_id = :device'),
            {"device": f"{world.ids['stem']}-ingested"},
        )
    if response.status_code != 200:
        assert stored == {A: 0, B: 0}
    elif tenant_of(caller) == A:
        assert stored == {A: 1, B: 0} and set(response.json()["tenants"]) == {A}
    else:
        assert stored == {A: 1, B: 1} and set(response.json()["tenants"]) == {A, B}


def ingest_body(world: World) -> bytes:
    device = f"{world.ids['stem']}-ingested"
    return orjson.dumps([emqx_message(tenant, device, {"value": 1.5}, world.ids["ts"]) for tenant in (A, B)])


async def the_broker_is_answered(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code == 200:
        answer = response.json()
        assert answer.get("result") == "allow" or answer.get("ok") is True, answer


# The cases.

TENANT = "/api/v1/tenants/{tenant}"
DEVICES = TENANT + "/devices"
DEVICE_ROUTE = DEVICES + "/{device_id}"
RULES = TENANT + "/thresholds"
RULE = RULES + "/{rule_id}"


def tenant_cases(tenant: str) -> dict[str, Case]:
    """Every `{tenant}` route, on `tenant`'s data."""
    base = f"/api/v1/tenants/{{{'a' if tenant == A else 'b'}}}"
    device = f"{{device_{tenant}}}"
    rule = f"{{rule_{tenant}}}"
    label = "A" if tenant == A else "B"
    read, operate, manage = READERS[tenant], OPERATORS[tenant], ADMINS[tenant]
    shown = only_its_tenant(tenant)
    cases = {
        "get the tenant": Case("GET", TENANT, expect(read, 200), url=base, check=the_tenant(tenant)),
        "rename the tenant": Case(
            "PATCH",
            TENANT,
            expect(frozenset({"staff"}), 200),
            url=base,
            json=lambda world: {"name": "Renamed"},
            check=changed_only_when_allowed(f"/api/v1/tenants/{tenant}", lambda got: got.json()["name"], "Renamed"),
        ),
        "list devices": Case("GET", DEVICES, expect(read, 200), url=f"{base}/devices", check=shown),
        "register a device": Case(
            "POST",
            DEVICES,
            expect(operate, 201),
            url=f"{base}/devices",
            json=lambda world: {"device_id": f"{world.ids['stem']}-new"},
            check=registered_only_when_allowed(tenant),
        ),
        "get a device": Case("GET", DEVICE_ROUTE, expect(read, 200), url=f"{base}/devices/{device}", check=shown),
        "rename a device": Case(
            "PATCH",
            DEVICE_ROUTE,
            expect(operate, 200),
            url=f"{base}/devices/{device}",
            json=lambda world: {"name": "Renamed"},
            check=changed_only_when_allowed(
                f"/api/v1/tenants/{tenant}/devices/{{device_{tenant}}}", lambda got: got.json()["name"], "Renamed"
            ),
        ),
        "change a sensor": Case(
            "PATCH",
            DEVICE_ROUTE + "/sensors/{sensor}",
            expect(operate, 200),
            url=f"{base}/devices/{device}/sensors/temperature",
            json=lambda world: {"unit": "kelvin"},
            check=changed_only_when_allowed(
                f"/api/v1/tenants/{tenant}/devices/{{device_{tenant}}}",
                lambda got: got.json()["sensors"][0]["unit"],
                "kelvin",
            ),
        ),
        "issue a device's credentials": Case(
            "POST",
            DEVICE_ROUTE + "/credentials",
            expect(manage, 201),
            url=f"{base}/devices/{device}/credentials",
            check=secret_replaced_only_when_allowed(tenant),
        ),
        "read a device's credentials": Case(
            "GET",
            DEVICE_ROUTE + "/credentials",
            expect(manage, 200),
            url=f"{base}/devices/{device}/credentials",
            check=shown,
        ),
        "revoke a device's credentials": Case(
            "DELETE",
            DEVICE_ROUTE + "/credentials",
            expect(manage, 204),
            url=f"{base}/devices/{device}/credentials",
            check=secret_replaced_only_when_allowed(tenant),
        ),
        "rejected readings": Case("GET", TENANT + "/rejected", expect(read, 200), url=f"{base}/rejected", check=shown),
        **{
            f"telemetry {name}": Case(
                "GET", f"{TENANT}/telemetry/{name}", expect(read, 200), url=f"{base}/telemetry/{name}", check=shown
            )
            for name in ("aggregates", "readings", "latest", "export.csv")
        },
        "telemetry stats": Case(
            "GET",
            TENANT + "/telemetry/stats",
            expect(read, 200),
            url=f"{base}/telemetry/stats?device={device}",
            check=shown,
        ),
        "telemetry export by POST": Case(
            "POST",
            TENANT + "/telemetry/export.csv",
            expect(read, 200),
            url=f"{base}/telemetry/export.csv",
            json=lambda world: {"kind": "raw"},
            check=shown,
        ),
        "list threshold rules": Case("GET", RULES, expect(read, 200), url=f"{base}/thresholds", check=shown),
        "create a threshold rule": Case(
            "POST",
            RULES,
            expect(operate, 201),
            url=f"{base}/thresholds",
            json=lambda world: {"sensor": "temperature", "min_value": -40},
        ),
        "get a threshold rule": Case("GET", RULE, expect(read, 200), url=f"{base}/thresholds/{rule}", check=shown),
        "change a threshold rule": Case(
            "PATCH",
            RULE,
            expect(operate, 200),
            url=f"{base}/thresholds/{rule}",
            json=lambda world: {"max_value": 50},
            check=changed_only_when_allowed(
                f"/api/v1/tenants/{tenant}/thresholds/{rule}", lambda got: got.json()["max_value"], 50
            ),
        ),
        "delete a threshold rule": Case(
            "DELETE",
            RULE,
            expect(operate, 204),
            url=f"{base}/thresholds/{rule}",
            check=rule_gone_only_when_allowed(tenant),
        ),
        "a threshold rule's states": Case(
            "GET", RULE + "/states", expect(read, 200), url=f"{base}/thresholds/{rule}/states", check=shown
        ),
    }
    return {f"{name} of {label}": case for name, case in cases.items()}


BROKER_ROUTES = {
    "emqx/authn": ("GET", "POST"),
    "emqx/authz": ("GET", "POST"),
    "go-auth/user": ("GET", "POST", "PUT"),
    "go-auth/superuser": ("GET", "POST", "PUT"),
    "go-auth/acl": ("GET", "POST", "PUT"),
}


def broker_case(name: str, method: str) -> Case:
    """The broker asks about tenant A's device: only it, with its secret, is answered."""
    route = f"/api/v1/mqtt/{name}"
    if method == "GET":
        return Case(
            method, route, {**everyone(401), BROKER: 200}, url=f"{route}?{{query_{name}}}", check=the_broker_is_answered
        )
    return Case(
        method,
        route,
        {**everyone(401), BROKER: 200},
        json=lambda world: broker_questions(world)[name],
        check=the_broker_is_answered,
    )


CASES: dict[str, Case] = {
    "list tenants": Case("GET", "/api/v1/tenants", expect(TENANT_LISTERS, 200), url="/api/v1/tenants?page_size=100"),
    "create a tenant": Case(
        "POST",
        "/api/v1/tenants",
        expect(frozenset({"staff"}), 201),
        json=lambda world: {"slug": f"{world.ids['stem']}new", "name": "New"},
    ),
    # Who may not see a tenant is not told whether it exists.
    "get a tenant that does not exist": Case(
        "GET", TENANT, expect(frozenset(), 200, hidden=STAFF), url="/api/v1/tenants/{missing}"
    ),
    **tenant_cases(A),
    **tenant_cases(B),
    "ingest": Case(
        "POST",
        "/ingest",
        expect(INGESTERS, 200),
        content=ingest_body,
        headers={"Content-Type": "application/json"},
        check=writes_within_reach,
    ),
    **{
        f"the broker's {method} {name}": broker_case(name, method)
        for name, methods in BROKER_ROUTES.items()
        for method in methods
    },
    # Pages: shells served to anyone; their scripts call the tenant API with the signed-in user's token.
    **{f"the page {path}": Case("GET", path, everyone(200)) for path in ("/ops/", "/ops/telemetry")},
    "the drill-down page": Case("GET", "/ops/telemetry/drilldown", everyone(200)),
    **library_cases(CALLERS, SCRAPER),
}


def test_every_route_is_in_the_matrix(infra_settings: InfraSettings) -> None:
    # The library's identity router (login, users, API keys) has its matrix in the library's tests.
    served = routes_to_cover(create_app(Settings(infra=infra_settings)), infra_settings)

    assert served == {(case.method, case.route) for case in CASES.values()}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("case_name", list(CASES))
async def test_route_by_caller(world: World, case_name: str, caller: str) -> None:
    await run_case(world, CASES[case_name], caller)

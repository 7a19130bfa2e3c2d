"""The threshold rules API: `/api/v1/tenants/{tenant}/thresholds` (list, create, read, change, delete, states),
who may do what, and every refusal (401/403/404/409/422)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory, HeadersFactory
from telemetry_ingest.config import Settings
from telemetry_ingest.main import create_app
from telemetry_ingest.tenancy import repository as tenants
from telemetry_ingest.tenancy.rows import ReadingRow
from telemetry_ingest.thresholds.cache import RuleCache
from telemetry_ingest.thresholds.evaluation import evaluate_thresholds

TenantFactory = Callable[..., Awaitable[str]]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def base(slug: str) -> str:
    return f"/api/v1/tenants/{slug}/thresholds"


async def evaluate(session: AsyncSession, slug: str, rows: list[tuple[str, str, int, float]]) -> int:
    tenant = await tenants.get_by_slug(session, slug)
    assert tenant is not None
    batch = [
        ReadingRow(device, sensor, T0 + timedelta(seconds=second), value, None)
        for device, sensor, second, value in rows
    ]
    # A cache of its own reads the rules as they are stored now.
    return await evaluate_thresholds(session, tenant, batch, RuleCache())


@pytest.fixture
async def slug(make_tenant: TenantFactory) -> str:
    return await make_tenant()


@pytest.fixture
async def operator(auth_headers: HeadersFactory, slug: str) -> dict[str, str]:
    return await auth_headers("operator", tenant=slug)


@pytest.fixture
async def viewer(auth_headers: HeadersFactory, slug: str) -> dict[str, str]:
    return await auth_headers("viewer", tenant=slug)


async def create(client: httpx.AsyncClient, slug: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(base(slug), json=body, headers=headers)
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    return document


async def test_create_read_change_delete(client: httpx.AsyncClient, slug: str, operator: dict[str, str]) -> None:
    response = await client.post(
        base(slug), json={"sensor": "temperature", "min_value": 5, "max_value": 30, "hysteresis": 1.5}, headers=operator
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"{base(slug)}/{created['id']}"
    assert {
        key: created[key] for key in ("device_id", "sensor", "min_value", "max_value", "hysteresis", "enabled")
    } == {
        "device_id": None,
        "sensor": "temperature",
        "min_value": 5,
        "max_value": 30,
        "hysteresis": 1.5,
        "enabled": True,
    }

    detail = (await client.get(f"{base(slug)}/{created['id']}", headers=operator)).json()
    assert detail["states"] == {"normal": 0, "below": 0, "above": 0}
    assert detail["sensor"] == "temperature"

    response = await client.patch(
        f"{base(slug)}/{created['id']}", json={"max_value": 40, "min_value": None, "enabled": False}, headers=operator
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["min_value"], changed["max_value"], changed["enabled"]) == (None, 40, False)
    assert changed["updated_at"] >= created["updated_at"]

    response = await client.delete(f"{base(slug)}/{created['id']}", headers=operator)
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"{base(slug)}/{created['id']}", headers=operator)).status_code == 404
    assert (await client.delete(f"{base(slug)}/{created['id']}", headers=operator)).status_code == 404


async def test_list_is_paginated_and_filtered(client: httpx.AsyncClient, slug: str, operator: dict[str, str]) -> None:
    ids = [
        (await create(client, slug, operator, sensor="temperature", max_value=limit))["id"] for limit in (30, 40, 50)
    ]
    own = (await create(client, slug, operator, device_id="boiler-1", sensor="temperature", max_value=90))["id"]
    off = (await create(client, slug, operator, sensor="humidity", min_value=20, enabled=False))["id"]

    first = (await client.get(base(slug), params={"page_size": 2}, headers=operator)).json()
    assert first["count"] == 5
    assert [rule["id"] for rule in first["results"]] == ids[:2]
    assert first["previous"] is None and first["next"] is not None
    second = (await client.get(first["next"], headers=operator)).json()
    assert [rule["id"] for rule in second["results"]] == [ids[2], own]

    async def listed(**params: Any) -> list[int]:
        response = await client.get(base(slug), params=params, headers=operator)
        assert response.status_code == 200, response.text
        return [rule["id"] for rule in response.json()["results"]]

    assert await listed(sensor="humidity") == [off]
    assert await listed(device_id="boiler-1") == [own]
    assert await listed(enabled="false") == [off]
    assert await listed(enabled="true", sensor="temperature") == [*ids, own]
    assert (await client.get(base(slug), params={"device_id": "bad id"}, headers=operator)).status_code == 422


async def test_states_per_device(
    client: httpx.AsyncClient, slug: str, operator: dict[str, str], db_session: AsyncSession
) -> None:
    rule = await create(client, slug, operator, sensor="t", min_value=0, max_value=10)
    await evaluate(db_session, slug, [("d1", "t", 1, 20), ("d2", "t", 1, -5), ("d3", "t", 1, 5), ("d4", "t", 1, 50)])

    detail = (await client.get(f"{base(slug)}/{rule['id']}", headers=operator)).json()
    assert detail["states"] == {"normal": 1, "below": 1, "above": 2}

    page = (await client.get(f"{base(slug)}/{rule['id']}/states", headers=operator)).json()
    assert page["count"] == 4
    first = page["results"][0]
    assert first["device_id"] == "d1" and first["state"] == "above" and first["value"] == 20
    assert datetime.fromisoformat(first["ts"]) == T0 + timedelta(seconds=1)
    assert datetime.fromisoformat(first["changed_at"]) == T0 + timedelta(seconds=1)

    above = (await client.get(f"{base(slug)}/{rule['id']}/states", params={"state": "above"}, headers=operator)).json()
    assert [item["device_id"] for item in above["results"]] == ["d1", "d4"]
    one = (await client.get(f"{base(slug)}/{rule['id']}/states", params={"device_id": "d2"}, headers=operator)).json()
    assert [item["state"] for item in one["results"]] == ["below"]
    response = await client.get(f"{base(slug)}/{rule['id']}/states", params={"state": "hot"}, headers=operator)
    assert response.status_code == 422
    assert (await client.get(f"{base(slug)}/999999/states", headers=operator)).status_code == 404


async def test_moving_a_rule_resets_its_states_changing_limits_keeps_them(
    client: httpx.AsyncClient, slug: str, operator: dict[str, str], db_session: AsyncSession
) -> None:
    rule = await create(client, slug, operator, sensor="t", max_value=10)
    await evaluate(db_session, slug, [("d1", "t", 1, 20)])
    path = f"{base(slug)}/{rule['id']}"

    assert (await client.patch(path, json={"max_value": 15}, headers=operator)).status_code == 200
    assert (await client.get(path, headers=operator)).json()["states"]["above"] == 1
    assert await evaluate(db_session, slug, [("d1", "t", 2, 12)]) == 1  # above -> normal under the new limit

    await evaluate(db_session, slug, [("d1", "t", 3, 99)])
    assert (await client.patch(path, json={"sensor": "t2"}, headers=operator)).status_code == 200
    assert (await client.get(path, headers=operator)).json()["states"] == {"normal": 0, "below": 0, "above": 0}


async def test_an_unchanged_patch_changes_nothing(
    client: httpx.AsyncClient, slug: str, operator: dict[str, str]
) -> None:
    rule = await create(client, slug, operator, sensor="t", max_value=10)
    response = await client.patch(f"{base(slug)}/{rule['id']}", json={"max_value": 10}, headers=operator)
    assert response.status_code == 200
    assert response.json() == rule


INVALID_RULES: list[tuple[dict[str, Any], str]] = [
    ({"sensor": "t"}, "give min_value, max_value or both"),
    ({"sensor": "t", "min_value": None, "max_value": None}, "give min_value, max_value or both"),
    ({"sensor": "t", "min_value": 10, "max_value": 10}, "must exceed min_value"),
    ({"sensor": "t", "min_value": 20, "max_value": 10}, "must exceed min_value"),
    ({"sensor": "t", "min_value": 0, "max_value": 10, "hysteresis": 10}, "hysteresis"),
    ({"sensor": "t", "max_value": 10, "hysteresis": -1}, "hysteresis"),
    ({"sensor": "t", "max_value": "high"}, "max_value"),
    ({"max_value": 10}, "sensor"),
    ({"sensor": "", "max_value": 10}, "sensor"),
    ({"sensor": "a/b", "max_value": 10}, "sensor"),
    ({"sensor": "t", "device_id": "x" * 129, "max_value": 10}, "device_id"),
    ({"sensor": "t", "max_value": 10, "colour": "red"}, "colour"),
    ({"sensor": "t", "max_value": 10, "enabled": "maybe"}, "enabled"),
    ({"sensor": "t", "max_value": False}, "body.max_value"),
    ({"sensor": "t", "min_value": "1.5"}, "body.min_value"),
    ({"sensor": "t", "max_value": 10, "hysteresis": True}, "body.hysteresis"),
]


async def test_create_refuses_invalid_rules(client: httpx.AsyncClient, slug: str, operator: dict[str, str]) -> None:
    for body, message in INVALID_RULES:
        response = await client.post(base(slug), json=body, headers=operator)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["code"] == "validation_error"
        assert message in response.text, (body, response.text)
    assert (await client.get(base(slug), headers=operator)).json()["count"] == 0


async def test_non_finite_limits_are_refused(client: httpx.AsyncClient, slug: str, operator: dict[str, str]) -> None:
    for literal in ("Infinity", "NaN"):
        response = await client.post(
            base(slug),
            content=f'{{"sensor": "t", "max_value": {literal}}}',
            headers={**operator, "Content-Type": "application/json"},
        )
        assert response.status_code == 422, literal


INVALID_CHANGES: list[tuple[dict[str, Any], str]] = [
    ({"min_value": 50}, "must exceed min_value"),
    ({"max_value": None, "min_value": None}, "give min_value, max_value or both"),
    ({"hysteresis": 40}, "hysteresis"),
    ({"sensor": None}, "sensor cannot be null"),
    ({"hysteresis": None}, "hysteresis cannot be null"),
    ({"enabled": None}, "enabled cannot be null"),
    ({"rule": "x"}, "rule"),
]


async def test_patch_refuses_a_rule_that_would_be_invalid(
    client: httpx.AsyncClient, slug: str, operator: dict[str, str]
) -> None:
    rule = await create(client, slug, operator, sensor="t", min_value=0, max_value=40)
    for change, message in INVALID_CHANGES:
        response = await client.patch(f"{base(slug)}/{rule['id']}", json=change, headers=operator)
        assert response.status_code == 422, (change, response.text)
        assert response.json()["error"]["code"] == "validation_error"
        assert message in response.text, (change, response.text)
    assert (await client.get(f"{base(slug)}/{rule['id']}", headers=operator)).json() == {
        **rule,
        "states": {"normal": 0, "below": 0, "above": 0},
    }


async def test_duplicates_are_conflicts(client: httpx.AsyncClient, slug: str, operator: dict[str, str]) -> None:
    first = await create(client, slug, operator, sensor="t", max_value=30, hysteresis=1)
    response = await client.post(base(slug), json={"sensor": "t", "max_value": 30, "hysteresis": 1}, headers=operator)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "threshold_rule_exists"
    assert response.json()["error"]["details"] == {"rule_id": first["id"]}

    # Another device or other limits are other rules; a change that makes one a copy is refused.
    other = await create(client, slug, operator, device_id="d1", sensor="t", max_value=30, hysteresis=1)
    critical = await create(client, slug, operator, sensor="t", max_value=40, hysteresis=1)
    response = await client.patch(f"{base(slug)}/{critical['id']}", json={"max_value": 30}, headers=operator)
    assert response.status_code == 409
    response = await client.patch(f"{base(slug)}/{other['id']}", json={"device_id": None}, headers=operator)
    assert response.status_code == 409


async def test_a_tenant_has_at_most_the_configured_number_of_rules(
    make_client: ClientFactory, infra_settings: InfraSettings, slug: str, operator: dict[str, str]
) -> None:
    client = await make_client(
        create_app(Settings(infra=infra_settings, threshold_max_rules_per_tenant=2, mqtt_ingest_enabled=False))
    )
    await create(client, slug, operator, sensor="a", max_value=1)
    await create(client, slug, operator, sensor="b", max_value=1)
    response = await client.post(base(slug), json={"sensor": "c", "max_value": 1}, headers=operator)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "threshold_rule_limit"


async def test_unknown_rules_and_bad_ids(client: httpx.AsyncClient, slug: str, operator: dict[str, str]) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        body = {"enabled": False} if method == "PATCH" else None
        response = await client.request(method, f"{base(slug)}/424242", json=body, headers=operator)
        assert response.status_code == 404, method
        assert response.json()["error"]["code"] == "threshold_rule_not_found"
    for bad in ("0", "-1", "abc", str(2**31)):
        assert (await client.get(f"{base(slug)}/{bad}", headers=operator)).status_code == 422, bad


async def test_viewers_read_operators_write(
    client: httpx.AsyncClient, slug: str, operator: dict[str, str], viewer: dict[str, str]
) -> None:
    rule = await create(client, slug, operator, sensor="t", max_value=10)
    path = f"{base(slug)}/{rule['id']}"
    for url in (base(slug), path, f"{path}/states"):
        assert (await client.get(url, headers=viewer)).status_code == 200, url
    assert (await client.post(base(slug), json={"sensor": "u", "max_value": 1}, headers=viewer)).status_code == 403
    assert (await client.patch(path, json={"enabled": False}, headers=viewer)).status_code == 403
    assert (await client.delete(path, headers=viewer)).status_code == 403
    assert (await client.get(path, headers=operator)).json()["enabled"] is True


async def test_tenant_isolation(
    client: httpx.AsyncClient,
    make_tenant: TenantFactory,
    auth_headers: HeadersFactory,
    slug: str,
    operator: dict[str, str],
) -> None:
    rule = await create(client, slug, operator, sensor="t", max_value=10)
    other = await make_tenant()
    stranger = await auth_headers("admin", tenant=other)
    nobody = await auth_headers("admin")
    staff = await auth_headers("operator", staff=True)

    for headers in (stranger, nobody):
        assert (await client.get(base(slug), headers=headers)).status_code == 403
        assert (await client.get(f"{base(slug)}/{rule['id']}", headers=headers)).status_code == 403
        response = await client.post(base(slug), json={"sensor": "t", "max_value": 1}, headers=headers)
        assert response.status_code == 403
    # Rule ids are per tenant: the other tenant has no rule with this id.
    assert (await client.get(f"{base(other)}/{rule['id']}", headers=stranger)).status_code == 404
    assert (await client.get(base(other), headers=stranger)).json()["count"] == 0

    assert (await client.get(f"{base(slug)}/{rule['id']}", headers=staff)).status_code == 200
    assert (await client.get(base("no-such-tenant"), headers=staff)).status_code == 404
    assert (await client.get(base(slug))).status_code == 401

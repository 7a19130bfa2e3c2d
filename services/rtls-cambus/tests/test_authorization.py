"""Every catalogue route against every kind of caller: who is refused (401, 403) and who gets through.

Viewers read everything; operators also manage people, person groups and tags; admins also manage the site's
layout (buildings, floors, plans, zones) and its devices. A caller that gets through may still be answered
404 or 422 (the ids do not exist, the bodies are empty): only 401 and 403 are about authorization.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.commands import create_api_key
from mirante.auth.roles import Role
from mirante.testing.plugin import HeadersFactory
from rtls_cambus.config import Settings
from rtls_cambus.main import create_app

RANK = {"viewer": 1, "operator": 2, "admin": 3}
CALLERS = {
    "anonymous": 0,
    "viewer": 1,
    "operator": 2,
    "admin": 3,
    "staff": 3,
    "key_viewer": 1,
    "key_operator": 2,
    "key_admin": 3,
    "acme_viewer": 1,
}

READ, OPERATE, ADMIN = "viewer", "operator", "admin"
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/buildings"): READ,
    ("POST", "/api/v1/buildings"): ADMIN,
    ("GET", "/api/v1/buildings/{building_id}"): READ,
    ("PATCH", "/api/v1/buildings/{building_id}"): ADMIN,
    ("DELETE", "/api/v1/buildings/{building_id}"): ADMIN,
    ("GET", "/api/v1/floors"): READ,
    ("POST", "/api/v1/floors"): ADMIN,
    ("GET", "/api/v1/floors/{floor_id}"): READ,
    ("PATCH", "/api/v1/floors/{floor_id}"): ADMIN,
    ("DELETE", "/api/v1/floors/{floor_id}"): ADMIN,
    ("GET", "/api/v1/floor-plans"): READ,
    ("POST", "/api/v1/floor-plans"): ADMIN,
    ("GET", "/api/v1/floor-plans/{plan_id}"): READ,
    ("GET", "/api/v1/floor-plans/{plan_id}/image"): READ,
    ("PATCH", "/api/v1/floor-plans/{plan_id}"): ADMIN,
    ("DELETE", "/api/v1/floor-plans/{plan_id}"): ADMIN,
    ("GET", "/api/v1/zones"): READ,
    ("POST", "/api/v1/zones"): ADMIN,
    ("GET", "/api/v1/zones/{zone_id}"): READ,
    ("PATCH", "/api/v1/zones/{zone_id}"): ADMIN,
    ("DELETE", "/api/v1/zones/{zone_id}"): ADMIN,
    ("GET", "/api/v1/people"): READ,
    ("POST", "/api/v1/people"): OPERATE,
    ("GET", "/api/v1/people/{person_id}"): READ,
    ("PATCH", "/api/v1/people/{person_id}"): OPERATE,
    ("DELETE", "/api/v1/people/{person_id}"): OPERATE,
    ("GET", "/api/v1/person-groups"): READ,
    ("POST", "/api/v1/person-groups"): OPERATE,
    ("GET", "/api/v1/person-groups/{group_id}"): READ,
    ("PATCH", "/api/v1/person-groups/{group_id}"): OPERATE,
    ("DELETE", "/api/v1/person-groups/{group_id}"): OPERATE,
    ("POST", "/api/v1/person-groups/{group_id}/members"): OPERATE,
    ("DELETE", "/api/v1/person-groups/{group_id}/members/{person_id}"): OPERATE,
    ("GET", "/api/v1/tags"): READ,
    ("POST", "/api/v1/tags"): OPERATE,
    ("GET", "/api/v1/tags/{tag_id}"): READ,
    ("PATCH", "/api/v1/tags/{tag_id}"): OPERATE,
    ("DELETE", "/api/v1/tags/{tag_id}"): OPERATE,
    ("PUT", "/api/v1/tags/{tag_id}/assignment"): OPERATE,
    ("DELETE", "/api/v1/tags/{tag_id}/assignment"): OPERATE,
    ("GET", "/api/v1/tags/{tag_id}/assignments"): READ,
    ("GET", "/api/v1/devices"): READ,
    ("GET", "/api/v1/devices/gateways"): READ,
    ("POST", "/api/v1/devices/gateways"): ADMIN,
    ("GET", "/api/v1/devices/gateways/{gateway_id}"): READ,
    ("PATCH", "/api/v1/devices/gateways/{gateway_id}"): ADMIN,
    ("DELETE", "/api/v1/devices/gateways/{gateway_id}"): ADMIN,
    ("GET", "/api/v1/devices/cameras"): READ,
    ("POST", "/api/v1/devices/cameras"): ADMIN,
    ("GET", "/api/v1/devices/cameras/{camera_id}"): READ,
    ("PATCH", "/api/v1/devices/cameras/{camera_id}"): ADMIN,
    ("DELETE", "/api/v1/devices/cameras/{camera_id}"): ADMIN,
    ("GET", "/api/v1/devices/cameras/{camera_id}/events"): READ,
    ("POST", "/api/v1/devices/cameras/{camera_id}/commands"): OPERATE,
    ("GET", "/api/v1/webhooks/event-types"): ADMIN,
    ("GET", "/api/v1/webhooks"): ADMIN,
    ("POST", "/api/v1/webhooks"): ADMIN,
    ("GET", "/api/v1/webhooks/{subscription_id}"): ADMIN,
    ("PATCH", "/api/v1/webhooks/{subscription_id}"): ADMIN,
    ("DELETE", "/api/v1/webhooks/{subscription_id}"): ADMIN,
    ("POST", "/api/v1/webhooks/{subscription_id}/rotate-secret"): ADMIN,
    ("POST", "/api/v1/webhooks/{subscription_id}/test"): ADMIN,
    ("GET", "/api/v1/webhooks/{subscription_id}/deliveries"): ADMIN,
    ("POST", "/api/v1/webhooks/{subscription_id}/deliveries/{delivery_id}/redeliver"): ADMIN,
    ("GET", "/api/v1/devices/camera-groups"): READ,
    ("POST", "/api/v1/devices/camera-groups"): ADMIN,
    ("GET", "/api/v1/devices/camera-groups/{group_id}"): READ,
    ("PATCH", "/api/v1/devices/camera-groups/{group_id}"): ADMIN,
    ("DELETE", "/api/v1/devices/camera-groups/{group_id}"): ADMIN,
    ("POST", "/api/v1/devices/camera-groups/{group_id}/members"): ADMIN,
    ("DELETE", "/api/v1/devices/camera-groups/{group_id}/members/{camera_id}"): ADMIN,
    ("GET", "/api/v1/people/{person_id}/current-location"): READ,
    ("GET", "/api/v1/positions/current"): READ,
    ("GET", "/api/v1/positions/by-device"): READ,
    ("GET", "/api/v1/positions/history"): READ,
    ("GET", "/api/v1/presence-sessions"): READ,
    ("POST", "/api/v1/positions/feed-tickets"): READ,
    ("GET", "/api/v1/incidents"): READ,
    ("POST", "/api/v1/incidents"): OPERATE,
    ("GET", "/api/v1/incidents/{incident_id}"): READ,
    ("PATCH", "/api/v1/incidents/{incident_id}"): OPERATE,
    ("DELETE", "/api/v1/incidents/{incident_id}"): ADMIN,
    ("POST", "/api/v1/incidents/{incident_id}/status"): OPERATE,
    ("GET", "/api/v1/incidents/{incident_id}/history"): READ,
    ("PUT", "/api/v1/incidents/{incident_id}/assignees"): OPERATE,
    ("GET", "/api/v1/incidents/{incident_id}/messages"): READ,
    ("POST", "/api/v1/incidents/{incident_id}/messages"): OPERATE,
    ("GET", "/api/v1/incidents/{incident_id}/attachments"): READ,
    ("POST", "/api/v1/incidents/{incident_id}/attachments"): OPERATE,
    ("GET", "/api/v1/incidents/{incident_id}/attachments/{attachment_id}"): READ,
    ("DELETE", "/api/v1/incidents/{incident_id}/attachments/{attachment_id}"): OPERATE,
    ("GET", "/api/v1/support-groups"): READ,
    ("POST", "/api/v1/support-groups"): ADMIN,
    ("GET", "/api/v1/support-groups/{group_id}"): READ,
    ("PATCH", "/api/v1/support-groups/{group_id}"): ADMIN,
    ("DELETE", "/api/v1/support-groups/{group_id}"): ADMIN,
    ("POST", "/api/v1/support-groups/{group_id}/members"): ADMIN,
    ("DELETE", "/api/v1/support-groups/{group_id}/members/{user_id}"): ADMIN,
    ("GET", "/api/v1/incident-rules"): READ,
    ("POST", "/api/v1/incident-rules"): ADMIN,
    ("GET", "/api/v1/incident-rules/{rule_id}"): READ,
    ("PATCH", "/api/v1/incident-rules/{rule_id}"): ADMIN,
    ("DELETE", "/api/v1/incident-rules/{rule_id}"): ADMIN,
    ("GET", "/api/v1/alert-rules"): READ,
    ("POST", "/api/v1/alert-rules"): OPERATE,
    ("GET", "/api/v1/alert-rules/{rule_id}"): READ,
    ("PATCH", "/api/v1/alert-rules/{rule_id}"): OPERATE,
    ("DELETE", "/api/v1/alert-rules/{rule_id}"): OPERATE,
    ("GET", "/api/v1/alert-events"): READ,
    ("GET", "/api/v1/alert-events/{alert_id}"): READ,
    ("POST", "/api/v1/alert-events/{alert_id}/acknowledge"): OPERATE,
    ("POST", "/api/v1/alert-events/{alert_id}/resolve"): OPERATE,
    ("GET", "/api/v1/reports/alerts"): READ,
    ("GET", "/api/v1/reports/alerts.csv"): READ,
}
TICKET_ROUTES = {("GET", "/api/v1/positions/feed")}
"""Opened with a one-use ticket from `POST /positions/feed-tickets`, not a credential (test_positions_api)."""
CATALOGUE_PREFIXES = ("/api/v1/buildings", "/api/v1/floor", "/api/v1/zones", "/api/v1/people", "/api/v1/person-groups")
CATALOGUE_PREFIXES += ("/api/v1/tags", "/api/v1/devices", "/api/v1/positions", "/api/v1/presence-sessions")
CATALOGUE_PREFIXES += ("/api/v1/webhooks",)
SUITE_WIDE_PREFIXES = ("/api/v1/webhooks", "/api/v1/alert-rules")
"""Every service's events, every tenant's among them: closed to tenant-bound accounts (`outgoing.deps`,
`alerts.deps`). Alerts themselves are open to them, each seeing only its tenant's (test_alerts_api)."""
TENANT_BOUND = {"acme_viewer"}
CATALOGUE_PREFIXES += ("/api/v1/incident", "/api/v1/support-groups")
CATALOGUE_PREFIXES += ("/api/v1/alert-", "/api/v1/reports/alerts")


def test_every_catalogue_route_has_a_rule() -> None:
    app = create_app(Settings())
    found = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(CATALOGUE_PREFIXES)
        for method in operations
    }
    assert found == set(ROUTES) | TICKET_ROUTES


@pytest_asyncio.fixture(loop_scope="session")
async def headers(auth_headers: HeadersFactory, db_session: AsyncSession) -> dict[str, dict[str, str]]:
    made = {
        "anonymous": {},
        "viewer": await auth_headers("viewer"),
        "operator": await auth_headers("operator"),
        "admin": await auth_headers("admin"),
        "staff": await auth_headers("admin", staff=True),
        "acme_viewer": await auth_headers("viewer", tenant="acme"),
    }
    for label, role in (("key_viewer", Role.viewer), ("key_operator", Role.operator), ("key_admin", Role.admin)):
        _, plaintext = await create_api_key(db_session, f"{label}-{uuid.uuid4().hex[:8]}", ["*"], role=role)
        made[label] = {"X-API-Key": plaintext}
    return made


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES), ids=lambda value: str(value))
async def test_callers_get_through_only_with_the_role(
    client: httpx.AsyncClient, headers: dict[str, dict[str, str]], method: str, path: str
) -> None:
    needed = RANK[ROUTES[method, path]]
    url = path
    for name in ("building_id", "floor_id", "plan_id", "zone_id", "person_id", "group_id", "tag_id", "delivery_id"):
        url = url.replace("{" + name + "}", str(2**62))
    url = url.replace("{gateway_id}", str(2**62)).replace("{camera_id}", str(2**62))
    url = url.replace("{subscription_id}", str(2**62))
    for name in ("building_id", "floor_id", "plan_id", "zone_id", "person_id", "group_id", "tag_id", "incident_id"):
        url = url.replace("{" + name + "}", str(2**62))
    url = url.replace("{gateway_id}", str(2**62)).replace("{camera_id}", str(2**62))
    for name in ("attachment_id", "user_id", "rule_id", "alert_id"):
        url = url.replace("{" + name + "}", str(2**62))
    for caller, rank in CALLERS.items():
        kwargs = (
            {"json": {}}
            if method in {"POST", "PATCH", "PUT"} and not url.endswith(("floor-plans", "attachments"))
            else {}
        )
        response = await client.request(method, url, headers=headers[caller], **kwargs)  # type: ignore[arg-type]
        if rank == 0:
            assert response.status_code == 401, (caller, response.text)
        elif rank < needed or (caller in TENANT_BOUND and path.startswith(SUITE_WIDE_PREFIXES)):
            assert response.status_code == 403, (caller, response.text)
        else:
            assert response.status_code not in {401, 403}, (caller, response.text)


async def test_an_admin_bound_to_a_tenant_cannot_reach_the_suites_webhooks_or_alert_rules(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    acme_admin = await auth_headers("admin", tenant="acme")
    suite_wide = sorted(route for route in ROUTES if route[1].startswith(SUITE_WIDE_PREFIXES))
    assert {path.split("/")[3] for _, path in suite_wide} == {"webhooks", "alert-rules"}
    for method, path in suite_wide:
        url = path.replace("{subscription_id}", "1").replace("{delivery_id}", "1").replace("{rule_id}", "1")
        kwargs = {"json": {}} if method in {"POST", "PATCH"} else {}
        response = await client.request(method, url, headers=acme_admin, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 403, (method, path, response.text)
        assert "tenant 'acme'" in response.json()["error"]["message"]

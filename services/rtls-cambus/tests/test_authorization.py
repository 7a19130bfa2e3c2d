"""Every catalogue route against every kind of caller: who is refused (401, 403) and who gets through.

Viewers read everything; operators also manage people, person groups and tags; admins also manage the site's
layout (buildings, floors, plans, zones) and its devices. Incidents, incident rules, support groups and webhook
subscriptions span every tenant's events, so a caller bound to a tenant reaches none of them, whatever its role.
A caller that gets through may still be answered 404 or 422 (the ids do not exist, the bodies are empty): only
401 and 403 are about authorization.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.commands import create_api_key
from mirante.auth.roles import Role
from mirante.testing.plugin import HeadersFactory
from rtls_cambus.config import Settings
from rtls_cambus.incidents.service import Actor, open_incident
from rtls_cambus.main import create_app

RANK = {"viewer": 1, "operator": 2, "admin": 3, "user": 1}
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
    "acme_operator": 2,
    "acme_admin": 3,
    "acme_key_admin": 3,
}
TENANT_BOUND = {"acme_viewer", "acme_operator", "acme_admin", "acme_key_admin"}

READ, OPERATE, ADMIN = "viewer", "operator", "admin"
USER = "user"
"""Any signed-in user, whatever the role; API keys are refused (403): what it changes is a person's own."""
API_KEYS = {"key_viewer", "key_operator", "key_admin", "acme_key_admin"}
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
    ("GET", "/api/v1/dashboard/summary"): READ,
    ("GET", "/api/v1/reports/presence/people"): READ,
    ("GET", "/api/v1/reports/presence/people.csv"): READ,
    ("GET", "/api/v1/reports/presence/zones"): READ,
    ("GET", "/api/v1/reports/presence/zones.csv"): READ,
    ("GET", "/api/v1/reports/occupancy"): READ,
    ("GET", "/api/v1/reports/occupancy.csv"): READ,
    ("GET", "/api/v1/reports/incidents/response-times"): READ,
    ("GET", "/api/v1/reports/incidents/response-times.csv"): READ,
    ("GET", "/api/v1/integrations/chatwoot/deliveries"): ADMIN,
    ("GET", "/api/v1/integrations/chatwoot/deliveries/{log_id}"): ADMIN,
    ("GET", "/api/v1/notifications/mails"): ADMIN,
    ("GET", "/api/v1/notifications/preferences"): USER,
    ("PUT", "/api/v1/notifications/preferences"): USER,
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
SIGNED_ROUTES = {("POST", "/api/v1/integrations/chatwoot/webhook")}
"""Anonymous: Chatwoot proves itself with its signature or token (test_chatwoot_webhook)."""
CATALOGUE_PREFIXES = ("/api/v1/buildings", "/api/v1/floor", "/api/v1/zones", "/api/v1/people", "/api/v1/person-groups")
CATALOGUE_PREFIXES += ("/api/v1/tags", "/api/v1/devices", "/api/v1/positions", "/api/v1/presence-sessions")
SUITE_WIDE_PREFIXES = ("/api/v1/webhooks", "/api/v1/incidents", "/api/v1/incident-rules", "/api/v1/support-groups")
SUITE_WIDE_PREFIXES += (
    "/api/v1/reports/incidents",
    "/api/v1/integrations/chatwoot/deliveries",
    "/api/v1/notifications/mails",
    "/api/v1/alert-rules",
)
"""Every service's events, every tenant's among them (and the webhook and mail logs that carry them): closed to
callers bound to a tenant (`deps.Suite*`). Alerts themselves are open to them, each seeing only its tenant's
(test_alerts_api)."""
CATALOGUE_PREFIXES += SUITE_WIDE_PREFIXES
CATALOGUE_PREFIXES += ("/api/v1/dashboard", "/api/v1/reports", "/api/v1/integrations", "/api/v1/notifications")
CATALOGUE_PREFIXES += ("/api/v1/alert-",)


def test_every_catalogue_route_has_a_rule() -> None:
    app = create_app(Settings())
    found = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(CATALOGUE_PREFIXES)
        for method in operations
    }
    assert found == set(ROUTES) | TICKET_ROUTES | SIGNED_ROUTES


@pytest_asyncio.fixture(loop_scope="session")
async def headers(auth_headers: HeadersFactory, db_session: AsyncSession) -> dict[str, dict[str, str]]:
    made = {
        "anonymous": {},
        "viewer": await auth_headers("viewer"),
        "operator": await auth_headers("operator"),
        "admin": await auth_headers("admin"),
        "staff": await auth_headers("admin", staff=True),
        "acme_viewer": await auth_headers("viewer", tenant="acme"),
        "acme_operator": await auth_headers("operator", tenant="acme"),
        "acme_admin": await auth_headers("admin", tenant="acme"),
    }
    keys = (
        ("key_viewer", Role.viewer, None),
        ("key_operator", Role.operator, None),
        ("key_admin", Role.admin, None),
        ("acme_key_admin", Role.admin, "acme"),
    )
    for label, role, tenant in keys:
        name = f"{label}-{uuid.uuid4().hex[:8]}"
        _, plaintext = await create_api_key(db_session, name, ["*"], role=role, tenant=tenant)
        made[label] = {"X-API-Key": plaintext}
    return made


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES), ids=lambda value: str(value))
async def test_callers_get_through_only_with_the_role(
    client: httpx.AsyncClient, headers: dict[str, dict[str, str]], method: str, path: str
) -> None:
    needed = RANK[ROUTES[method, path]]
    suite_wide = path.startswith(SUITE_WIDE_PREFIXES)
    url = path
    for name in ("building_id", "floor_id", "plan_id", "zone_id", "person_id", "group_id", "tag_id", "delivery_id"):
        url = url.replace("{" + name + "}", str(2**62))
    url = url.replace("{gateway_id}", str(2**62)).replace("{camera_id}", str(2**62))
    url = url.replace("{subscription_id}", str(2**62))
    for name in ("building_id", "floor_id", "plan_id", "zone_id", "person_id", "group_id", "tag_id", "incident_id"):
        url = url.replace("{" + name + "}", str(2**62))
    url = url.replace("{gateway_id}", str(2**62)).replace("{camera_id}", str(2**62))
    for name in ("attachment_id", "user_id", "rule_id", "log_id", "alert_id"):
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
        elif (
            rank < needed
            or (suite_wide and caller in TENANT_BOUND)
            or (ROUTES[method, path] == USER and caller in API_KEYS)
        ):
            assert response.status_code == 403, (caller, response.text)
        else:
            assert response.status_code not in {401, 403}, (caller, response.text)


async def test_an_admin_bound_to_a_tenant_reaches_nothing_that_spans_the_suite(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    acme_admin = await auth_headers("admin", tenant="acme")
    suite_wide = sorted(route for route in ROUTES if route[1].startswith(SUITE_WIDE_PREFIXES))
    assert {path.split("/")[3] for _, path in suite_wide} == {
        "webhooks",
        "incidents",
        "incident-rules",
        "support-groups",
        "reports",
        "integrations",
        "notifications",
        "alert-rules",
    }
    for method, path in suite_wide:
        url = re.sub(r"\{[a-z_]+\}", "1", path)
        kwargs = {"json": {}} if method in {"POST", "PATCH", "PUT"} else {}
        response = await client.request(method, url, headers=acme_admin, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 403, (method, path, response.text)
        assert "tenant 'acme'" in response.json()["error"]["message"]


async def test_an_incident_opened_by_a_rule_is_not_shown_to_a_tenant_bound_admin(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    # A rule on another tenant's telemetry opened this incident; its title carries that tenant's data.
    opened = await open_incident(
        db_session,
        {"title": "globex: freezer 7 at 12 C", "severity": "high"},
        Actor("rule", None, "globex freezers"),
    )
    suite_admin, acme_admin = await auth_headers("admin"), await auth_headers("admin", tenant="acme")

    assert (await client.get(f"/api/v1/incidents/{opened.id}", headers=suite_admin)).status_code == 200
    for url in ("/api/v1/incidents", f"/api/v1/incidents/{opened.id}", "/api/v1/incident-rules"):
        refused = await client.get(url, headers=acme_admin)
        assert refused.status_code == 403 and "globex" not in refused.text


async def test_the_chatwoot_webhook_asks_no_credentials(client: httpx.AsyncClient) -> None:
    """Anonymous by design: refused for want of a configured secret (503), not of a login (401)."""
    answer = await client.post(
        "/api/v1/integrations/chatwoot/webhook", json={"event": "message_created"}, headers={"X-API-Key": "mk_x"}
    )
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "chatwoot_not_configured"

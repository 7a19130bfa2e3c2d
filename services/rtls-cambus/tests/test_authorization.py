"""Every route against every kind of caller: who is refused (401, 403) and who gets through.

Viewers read everything; operators also manage people, person groups and tags; admins also manage the site's
layout (buildings, floors, plans, zones) and its devices. An API key needs, besides its role, the scope `rtls`
(or `*`): a key of another service's scope is refused everywhere, whatever its role. Incidents, incident rules,
support groups and webhook subscriptions span every tenant's events, so a caller bound to a tenant reaches none
of them, whatever its role. A caller that gets through may still be answered 404 or 422 (the ids do not exist,
the bodies are empty): only 401 and 403 are about authorization.

The pages, the API docs, health and readiness are open to anyone (the pages' scripts call the API with the user's
own token), `/metrics` only to the metrics token; `test_every_route_is_in_the_matrix` holds every served route
to a rule here but the library's identity router (its matrix is the library's).

One app and one world of callers serve the whole module (`mirante.testing.matrix`); what a request writes is
undone after it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.auth.roles import Role
from mirante.auth.tokens import TokenCodec
from mirante.settings import InfraSettings
from mirante.testing.matrix import (
    METRICS_TOKEN,
    Case,
    World,
    enrol_callers,
    library_cases,
    rolled_back_session,
    routes_to_cover,
    run_case,
    serve_on_session,
    undone,
    with_metrics_token,
)
from rtls_cambus.config import Settings
from rtls_cambus.incidents.service import Actor, open_incident
from rtls_cambus.main import create_app

ANONYMOUS = "anonymous"
USERS: dict[str, dict[str, Any]] = {
    "viewer": {"role": Role.viewer},
    "operator": {"role": Role.operator},
    "admin": {"role": Role.admin},
    "staff": {"role": Role.admin, "staff": True},
    "acme_viewer": {"role": Role.viewer, "tenant": "acme"},
    "acme_operator": {"role": Role.operator, "tenant": "acme"},
    "acme_admin": {"role": Role.admin, "tenant": "acme"},
}
KEYS: dict[str, tuple[list[str], Role, str | None]] = {
    "key_viewer": (["*"], Role.viewer, None),
    "key_operator": (["*"], Role.operator, None),
    "key_admin": (["*"], Role.admin, None),
    "key_rtls_viewer": (["rtls"], Role.viewer, None),
    "key_rtls_operator": (["rtls"], Role.operator, None),
    "key_rtls_admin": (["rtls"], Role.admin, None),
    "key_other_scope_admin": (["telemetry:ingest", "cvat", "vision"], Role.admin, None),
    "acme_key_admin": (["*"], Role.admin, "acme"),
    "acme_key_rtls_admin": (["rtls"], Role.admin, "acme"),
}
RANK = {"viewer": 1, "operator": 2, "admin": 3, "user": 1}
CALLERS = {ANONYMOUS: 0} | {caller: RANK[spec["role"].value] for caller, spec in USERS.items()}
CALLERS |= {caller: RANK[role.value] for caller, (_, role, _) in KEYS.items()}
TENANT_BOUND = {caller for caller, spec in USERS.items() if spec.get("tenant")}
TENANT_BOUND |= {caller for caller, (_, _, tenant) in KEYS.items() if tenant}
API_KEYS = set(KEYS)
WITHOUT_SCOPE = {"key_other_scope_admin"}
"""API keys holding neither `rtls` nor `*`: 403 on every route, whatever their role."""

READ, OPERATE, ADMIN = "viewer", "operator", "admin"
USER = "user"
"""Any signed-in user, whatever the role; API keys are refused (403): what it changes is a person's own."""
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


SCRAPER = "scraper"
"""Sends the metrics token: `/metrics` answers it alone."""
EVERYONE = [*CALLERS, SCRAPER]
OPEN_CASES: dict[str, Case] = {
    # Pages: shells served to anyone; their scripts call the API above with the signed-in user's own token.
    **{
        f"the {name} page": Case("GET", path, dict.fromkeys(EVERYONE, 200))
        for name, path in (("map", "/"), ("alerts", "/alerts"), ("dashboard", "/dashboard"))
    },
    "the incident board": Case("GET", "/incidents", dict.fromkeys(EVERYONE, 200)),
    "an incident's page": Case("GET", "/incidents/{incident_id}", dict.fromkeys(EVERYONE, 200), url="/incidents/1"),
    "the webhooks page": Case("GET", "/webhooks", dict.fromkeys(EVERYONE, 200)),
    **library_cases(EVERYONE, SCRAPER),
}


def test_every_route_is_in_the_matrix(infra_settings: InfraSettings) -> None:
    # The library's identity router (login, users, API keys) has its matrix in the library's tests.
    served = routes_to_cover(create_app(Settings(infra=infra_settings)), infra_settings)
    named = set(ROUTES) | TICKET_ROUTES | SIGNED_ROUTES | {(case.method, case.route) for case in OPEN_CASES.values()}
    assert served == named


@pytest.mark.parametrize("case_name", list(OPEN_CASES))
async def test_pages_docs_and_metrics_by_caller(world: World, case_name: str) -> None:
    for caller in EVERYONE:
        await run_case(world, OPEN_CASES[case_name], caller)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(db_engine: AsyncEngine, infra_settings: InfraSettings) -> AsyncIterator[World]:
    """One app for the module, on one session rolled back at its end, and the callers."""
    settings = Settings(
        infra=with_metrics_token(infra_settings),
        incident_rules_enabled=False,
        webhook_dispatch_enabled=False,
        mqtt_ingest_enabled=False,
        alert_engine_enabled=False,
    )
    codec = TokenCodec.from_settings(infra_settings.jwt)
    stem = f"rm{uuid.uuid4().hex[:10]}"
    async with rolled_back_session(db_engine) as session, AsyncExitStack() as stack:
        world = World(client=await serve_on_session(stack, create_app(settings), session), session=session)
        world.headers[ANONYMOUS] = {}
        world.headers[SCRAPER] = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        await enrol_callers(world, codec, stem, USERS, KEYS)
        yield world


def _url(path: str) -> str:
    """`path` with every id an unknown one: a caller that gets through is answered 404 or 422."""
    return re.sub(r"\{[a-z_]+\}", str(2**62), path)


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES), ids=lambda value: str(value))
async def test_callers_get_through_only_with_the_role_and_scope(world: World, method: str, path: str) -> None:
    needed = RANK[ROUTES[method, path]]
    suite_wide = path.startswith(SUITE_WIDE_PREFIXES)
    url = _url(path)
    kwargs = (
        {"json": {}} if method in {"POST", "PATCH", "PUT"} and not url.endswith(("floor-plans", "attachments")) else {}
    )
    for caller, rank in CALLERS.items():
        async with undone(world.session):
            response = await world.client.request(method, url, headers=world.headers[caller], **kwargs)  # type: ignore[arg-type]
        if rank == 0:
            assert response.status_code == 401, (caller, response.text)
        elif (
            rank < needed
            or caller in WITHOUT_SCOPE
            or (suite_wide and caller in TENANT_BOUND)
            or (ROUTES[method, path] == USER and caller in API_KEYS)
        ):
            assert response.status_code == 403, (caller, response.text)
            assert set(response.json()["error"]) >= {"code", "message"}, response.text
        else:
            assert response.status_code not in {401, 403}, (caller, response.text)


async def test_a_key_of_another_scope_is_told_the_scope_it_lacks(world: World) -> None:
    for method, path in sorted(ROUTES):
        if ROUTES[method, path] == USER:
            continue
        async with undone(world.session):
            response = await world.client.request(method, _url(path), headers=world.headers["key_other_scope_admin"])
        assert response.status_code == 403, (method, path, response.text)
        assert "lacks the scope 'rtls'" in response.json()["error"]["message"], (method, path, response.text)


async def test_an_admin_bound_to_a_tenant_reaches_nothing_that_spans_the_suite(world: World) -> None:
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
    for caller in ("acme_admin", "acme_key_admin"):
        for method, path in suite_wide:
            url = re.sub(r"\{[a-z_]+\}", "1", path)
            kwargs = {"json": {}} if method in {"POST", "PATCH", "PUT"} else {}
            async with undone(world.session):
                response = await world.client.request(method, url, headers=world.headers[caller], **kwargs)  # type: ignore[arg-type]
            assert response.status_code == 403, (caller, method, path, response.text)
            assert "tenant 'acme'" in response.json()["error"]["message"]


async def test_an_incident_opened_by_a_rule_is_not_shown_to_a_tenant_bound_admin(world: World) -> None:
    async with undone(world.session):
        # A rule on another tenant's telemetry opened this incident; its title carries that tenant's data.
        opened = await open_incident(
            world.session,
            {"title": "globex: freezer 7 at 12 C", "severity": "high"},
            Actor("rule", None, "globex freezers"),
        )
        found = await world.client.get(f"/api/v1/incidents/{opened.id}", headers=world.headers["admin"])
        assert found.status_code == 200
        for url in ("/api/v1/incidents", f"/api/v1/incidents/{opened.id}", "/api/v1/incident-rules"):
            refused = await world.client.get(url, headers=world.headers["acme_admin"])
            assert refused.status_code == 403 and "globex" not in refused.text


async def test_a_key_with_the_rtls_scope_manages_the_catalogue(world: World) -> None:
    async with undone(world.session):
        made = await world.client.post(
            "/api/v1/buildings", json={"name": "Depot"}, headers=world.headers["key_rtls_admin"]
        )
        assert made.status_code == 201, made.text
        read = await world.client.get(
            f"/api/v1/buildings/{made.json()['id']}", headers=world.headers["key_rtls_viewer"]
        )
        assert read.status_code == 200 and read.json()["name"] == "Depot"
        refused = await world.client.post(
            "/api/v1/buildings", json={"name": "Annex"}, headers=world.headers["key_other_scope_admin"]
        )
        assert refused.status_code == 403 and "'rtls'" in refused.json()["error"]["message"]


async def test_the_chatwoot_webhook_asks_no_credentials(world: World) -> None:
    """Anonymous by design: refused for want of a configured secret (503), not of a login (401)."""
    answer = await world.client.post(
        "/api/v1/integrations/chatwoot/webhook", json={"event": "message_created"}, headers={"X-API-Key": "mk_x"}
    )
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "chatwoot_not_configured"

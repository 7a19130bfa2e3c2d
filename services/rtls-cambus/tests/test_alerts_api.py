"""Alert rules, alerts and the alerts report over HTTP: CRUD and validation of each kind, filters and pages,
acknowledge and resolve with who and when (impossible changes 409), alerts the engine resolved, tenants, JSON and
CSV reports."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.bus import Event
from mirante.bus.tables import outbox_table
from mirante.db import create_sessionmaker
from mirante.testing.plugin import HeadersFactory
from rtls_cambus.alerts.engine import AlertEngine
from rtls_cambus.alerts.models import AlertEvent
from rtls_cambus.devices.models import Device
from rtls_cambus.identifiers import SCHEMA, SOURCE

RULES = "/api/v1/alert-rules"
ALERTS = "/api/v1/alert-events"
NIGHT = {"days": ["mon", "tue", "mon"], "start": "22:00", "end": "06:00", "timezone": "Europe/Lisbon"}


def unique(prefix: str = "rule") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post(RULES, json={"name": unique(), "severity": "high", **body}, headers=headers)


async def test_each_kind_of_rule_is_created_read_and_listed(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession, make_site: Any
) -> None:
    site = await make_site(db_session)
    camera = Device(kind="camera", code=unique("cam"), building_id=site.building.id)
    db_session.add(camera)
    await db_session.flush()
    operator, viewer = await auth_headers("operator"), await auth_headers("viewer")
    bodies = [
        {"kind": "zone_entry", "zone_id": site.zones[1].id, "schedule": NIGHT, "min_dwell_seconds": 60},
        {"kind": "zone_absence", "zone_id": site.zones[0].id, "person_id": site.person.id, "schedule": NIGHT},
        {"kind": "person_not_seen", "not_seen_seconds": 3600},
        {"kind": "gateway_offline", "gateway_id": site.gateways[0].id},
        {"kind": "camera_event", "analytic": "intrusion", "label": "person", "min_score": 0.7, "camera_id": camera.id},
        {
            "kind": "suite_event",
            "event_type": "telemetry.threshold.crossed",
            "conditions": [{"path": "sensor", "op": "equals", "value": "temperature"}],
            "message_template": "{device_id} is too hot",
        },
    ]
    made = []
    for body in bodies:
        response = await create(client, operator, **body)
        assert response.status_code == 201, response.text
        assert response.headers["Location"] == f"{RULES}/{response.json()['id']}"
        made.append(response.json())
    assert made[0]["schedule"]["days"] == ["mon", "tue"] and made[0]["cooldown_seconds"] == 300
    assert made[2]["person_id"] is None and made[2]["enabled"] is True
    assert made[5]["conditions"] == bodies[5]["conditions"]

    read = await client.get(f"{RULES}/{made[4]['id']}", headers=viewer)
    assert read.status_code == 200 and read.json() == made[4]
    listed = await client.get(RULES, params={"kind": "camera_event", "page_size": 200}, headers=viewer)
    assert made[4]["id"] in [rule["id"] for rule in listed.json()["results"]]
    assert {rule["kind"] for rule in listed.json()["results"]} == {"camera_event"}
    searched = await client.get(RULES, params={"q": made[1]["name"]}, headers=viewer)
    assert [rule["id"] for rule in searched.json()["results"]] == [made[1]["id"]]


INVALID_RULES: list[tuple[dict[str, Any], str]] = [
    ({"kind": "zone_entry", "person_id": 1, "person_group_id": 1}, "at most one of person_id, person_group_id"),
    ({"kind": "zone_absence", "zone_id": 1, "schedule": NIGHT}, "give person_id or person_group_id"),
    ({"kind": "zone_absence", "zone_id": 1, "person_id": 1}, "schedule"),
    ({"kind": "person_not_seen", "not_seen_seconds": 10}, "not_seen_seconds"),
    ({"kind": "zone_entry", "schedule": {**NIGHT, "timezone": "Mars/Olympus"}}, "not an IANA time zone"),
    ({"kind": "zone_entry", "schedule": {**NIGHT, "start": "24:00"}}, "start"),
    ({"kind": "zone_entry", "schedule": {**NIGHT, "days": []}}, "days"),
    ({"kind": "camera_event", "min_score": 1.5}, "min_score"),
    ({"kind": "suite_event", "event_type": "rtls.alert.created"}, "their own output"),
    ({"kind": "suite_event", "event_type": "rtls.incident.created"}, "their own output"),
    ({"kind": "suite_event", "event_type": "vision.x.failed", "message_template": "{a"}, "lone brace"),
    ({"kind": "gateway_offline", "analytic": "x"}, "analytic"),
    ({"kind": "earthquake"}, "kind"),
    ({"kind": "zone_entry", "zone_id": 2**63}, "zone_id"),
    ({"kind": "zone_entry", "cooldown_seconds": -1}, "cooldown_seconds"),
    ({"kind": "zone_entry", "name": "a\u0000b"}, "NUL"),
    (
        {
            "kind": "suite_event",
            "event_type": "a.b",
            "conditions": [{"path": "x", "op": "in", "value": ["\u0000"]}],
        },
        "NUL",
    ),
]


async def test_invalid_rules_are_refused_with_what_is_wrong(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    # One app for every case: each app started and stopped is one more chance for a slow machine to stall.
    operator = await auth_headers("operator")
    for body, fragment in INVALID_RULES:
        response = await create(client, operator, **body)
        assert response.status_code == 422, (body, response.text)
        assert fragment in response.text, (body, response.text)


async def test_references_must_exist_and_be_of_the_right_kind(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession, make_site: Any
) -> None:
    site = await make_site(db_session)
    operator = await auth_headers("operator")
    for body, field, code in (
        ({"kind": "zone_entry", "zone_id": 2**62}, "zone_id", "zone_not_found"),
        ({"kind": "zone_entry", "person_group_id": 2**62}, "person_group_id", "person_group_not_found"),
        ({"kind": "gateway_offline", "floor_id": 2**62}, "floor_id", "floor_not_found"),
        ({"kind": "camera_event", "camera_id": site.gateways[0].id}, "camera_id", "camera_not_found"),
        ({"kind": "gateway_offline", "gateway_id": 2**62}, "gateway_id", "gateway_not_found"),
    ):
        response = await create(client, operator, **body)
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert error["code"] == code and error["details"] == {"field": field}, error


async def test_names_are_unique_and_patches_keep_to_the_rules_kind(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession, make_site: Any
) -> None:
    site = await make_site(db_session)
    operator = await auth_headers("operator")
    first = (await create(client, operator, kind="zone_entry", zone_id=site.zones[1].id)).json()
    taken = await create(client, operator, kind="zone_entry", name=first["name"])
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "alert_rule_exists"

    url = f"{RULES}/{first['id']}"
    changed = await client.patch(
        url, json={"min_dwell_seconds": 120, "severity": "critical", "schedule": NIGHT}, headers=operator
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["min_dwell_seconds"], changed.json()["severity"]) == (120, "critical")
    assert changed.json()["zone_id"] == site.zones[1].id and changed.json()["schedule"]["start"] == "22:00"
    cleared = await client.patch(url, json={"schedule": None, "zone_id": None}, headers=operator)
    assert cleared.json()["schedule"] is None and cleared.json()["zone_id"] is None

    foreign = await client.patch(url, json={"analytic": "intrusion"}, headers=operator)
    assert foreign.status_code == 422 and "analytic does not apply to a zone_entry rule" in foreign.text
    both = await client.patch(url, json={"person_id": site.person.id, "person_group_id": 1}, headers=operator)
    assert both.status_code == 422 and "at most one" in both.text
    kind = await client.patch(url, json={"kind": "camera_event"}, headers=operator)
    assert kind.status_code == 422
    null = await client.patch(url, json={"name": None}, headers=operator)
    assert null.status_code == 422
    unknown_zone = await client.patch(url, json={"zone_id": 2**62}, headers=operator)
    assert unknown_zone.status_code == 404 and unknown_zone.json()["error"]["code"] == "zone_not_found"
    assert unknown_zone.json()["error"]["details"] == {"field": "zone_id"}
    renamed = await client.patch(url, json={"name": first["name"] + "-2"}, headers=operator)
    assert renamed.status_code == 200

    assert (await client.delete(url, headers=operator)).status_code == 204
    assert (await client.get(url, headers=operator)).status_code == 404
    assert (await client.patch(url, json={}, headers=operator)).status_code == 404


async def test_a_rule_goes_with_the_zone_it_watches(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession, make_site: Any
) -> None:
    site = await make_site(db_session)
    rule = (await create(client, await auth_headers("operator"), kind="zone_entry", zone_id=site.zones[0].id)).json()
    response = await client.delete(f"/api/v1/zones/{site.zones[0].id}", headers=await auth_headers("admin"))
    assert response.status_code == 204
    assert (await client.get(f"{RULES}/{rule['id']}", headers=await auth_headers())).status_code == 404


async def test_rules_are_closed_to_an_account_bound_to_a_tenant(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    for role in ("viewer", "operator"):
        headers = await auth_headers(role, tenant="acme")
        response = await client.get(RULES, headers=headers)
        assert response.status_code == 403 and response.json()["error"]["code"] == "suite_wide", response.text
        assert (await create(client, headers, kind="person_not_seen", not_seen_seconds=60)).status_code == 403
    staff = await auth_headers("operator", staff=True, tenant="acme")
    assert (await client.get(RULES, headers=staff)).status_code == 200


async def add_alert(session: AsyncSession, **values: Any) -> AlertEvent:
    defaults = {
        "rule_name": "Lab after hours",
        "kind": "zone_entry",
        "severity": "high",
        "status": "open",
        "message": "Ana Souza entered zone Lab",
        "dedup_key": unique("situation"),
        "cooldown_key": "person:1",
    }
    alert = AlertEvent(**(defaults | values))
    session.add(alert)
    await session.flush()
    await session.refresh(alert)
    return alert


async def test_alerts_are_acknowledged_then_resolved_with_who_and_when(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    alert = await add_alert(db_session)
    operator, viewer = await auth_headers("operator"), await auth_headers("viewer")
    url = f"{ALERTS}/{alert.id}"
    assert (await client.post(f"{url}/acknowledge", headers=viewer)).status_code == 403

    acknowledged = await client.post(f"{url}/acknowledge", json={"note": "on my way"}, headers=operator)
    assert acknowledged.status_code == 200, acknowledged.text
    body = acknowledged.json()
    assert body["status"] == "acknowledged" and body["acknowledge_note"] == "on my way"
    assert body["acknowledged_by"]["kind"] == "user" and body["acknowledged_by"]["name"].startswith("operator-")
    assert body["acknowledged_at"] is not None and body["resolved_at"] is None

    again = await client.post(f"{url}/acknowledge", headers=operator)
    assert again.status_code == 409 and again.json()["error"]["details"]["allowed"] == ["resolved"]
    resolved = await client.post(f"{url}/resolve", headers=operator)
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_by"]["id"] == body["acknowledged_by"]["id"]
    for action in ("acknowledge", "resolve"):
        final = await client.post(f"{url}/{action}", headers=operator)
        assert final.status_code == 409 and final.json()["error"]["code"] == "alert_transition_refused"

    straight = await add_alert(db_session)
    assert (await client.post(f"{ALERTS}/{straight.id}/resolve", headers=operator)).json()["status"] == "resolved"

    outbox = outbox_table(SCHEMA)
    types = (await db_session.scalars(select(outbox.c.type).where(outbox.c.subject == f"alert/{alert.id}"))).all()
    assert sorted(types) == ["rtls.alert.acknowledged", "rtls.alert.resolved"]
    assert (await client.post(f"{ALERTS}/{2**62}/resolve", headers=operator)).status_code == 404


async def test_rules_say_whether_their_alerts_resolve_themselves(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession, make_site: Any
) -> None:
    site = await make_site(db_session)
    operator = await auth_headers("operator")
    gateway = (await create(client, operator, kind="gateway_offline", gateway_id=site.gateways[0].id)).json()
    camera = (await create(client, operator, kind="camera_event", analytic="intrusion")).json()
    absence = await create(
        client,
        operator,
        kind="zone_absence",
        zone_id=site.zones[0].id,
        person_id=site.person.id,
        schedule=NIGHT,
        auto_resolve=False,
    )
    assert (gateway["auto_resolve"], camera["auto_resolve"], absence.json()["auto_resolve"]) == (True, False, False)
    event_rule = (await create(client, operator, kind="suite_event", event_type="vision.inspection.failed")).json()
    assert "auto_resolve" not in event_rule

    changed = await client.patch(f"{RULES}/{gateway['id']}", json={"auto_resolve": False}, headers=operator)
    assert changed.status_code == 200 and changed.json()["auto_resolve"] is False
    refused = await client.patch(f"{RULES}/{event_rule['id']}", json={"auto_resolve": True}, headers=operator)
    assert refused.status_code == 422 and "auto_resolve does not apply to a suite_event rule" in refused.text
    not_null = await client.patch(f"{RULES}/{camera['id']}", json={"auto_resolve": None}, headers=operator)
    assert not_null.status_code == 422 and "auto_resolve cannot be null" in not_null.text
    created = await create(client, operator, kind="suite_event", event_type="a.b.c", auto_resolve=True)
    assert created.status_code == 422 and "auto_resolve" in created.text


async def test_an_alert_the_engine_resolved_shows_the_system_resolved_it_and_when(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession, make_site: Any
) -> None:
    site = await make_site(db_session)
    operator, viewer = await auth_headers("operator"), await auth_headers("viewer")
    gateway = site.gateways[0]
    rule = await create(client, operator, kind="gateway_offline", gateway_id=gateway.id, cooldown_seconds=0)
    engine = AlertEngine()

    def status_event(status: str) -> Event:
        data = {"gateway_id": gateway.id, "mac": gateway.mac, "status": status, "last_seen_at": "2026-03-02T09:00Z"}
        return Event(source=SOURCE, type=f"rtls.gateway.{status}", subject=f"gateway/{gateway.id}", data=data)

    [raised] = await engine.handle_event(db_session, status_event("offline"))
    url = f"{ALERTS}/{raised.id}"
    opened = (await client.get(url, headers=viewer)).json()
    assert (opened["rule_id"], opened["status"], opened["auto_resolve"]) == (rule.json()["id"], "open", True)
    acknowledged = await client.post(f"{url}/acknowledge", headers=operator)
    assert acknowledged.status_code == 200, acknowledged.text

    assert await engine.handle_event(db_session, status_event("online")) == []
    resolved = (await client.get(url, headers=viewer)).json()
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    assert resolved["resolved_by"] == {"kind": "system", "id": None, "name": "alert engine"}
    assert resolved["resolve_note"] == "The gateway is back online."
    assert resolved["acknowledged_by"]["kind"] == "user"
    listed = await client.get(ALERTS, params={"status": "resolved", "rule_id": opened["rule_id"]}, headers=viewer)
    assert [alert["id"] for alert in listed.json()["results"]] == [raised.id]

    final = await client.post(f"{url}/resolve", headers=operator)
    assert final.status_code == 409 and final.json()["error"]["code"] == "alert_transition_refused"
    outbox = outbox_table(SCHEMA)
    types = (await db_session.scalars(select(outbox.c.type).where(outbox.c.subject == f"alert/{raised.id}"))).all()
    assert sorted(types) == ["rtls.alert.acknowledged", "rtls.alert.created", "rtls.alert.resolved"]


async def test_alerts_are_filtered_paged_and_kept_within_a_tenant(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    person = 10**12 + uuid.uuid4().int % 10**9
    now = datetime.now(UTC)
    made = [
        await add_alert(db_session, person_id=person, severity="low", created_at=now - timedelta(hours=3)),
        await add_alert(db_session, person_id=person, severity="critical", created_at=now - timedelta(hours=2)),
        await add_alert(db_session, person_id=person, kind="suite_event", tenant="acme", created_at=now),
    ]
    viewer = await auth_headers("viewer")
    listed = await client.get(ALERTS, params={"person_id": person, "page_size": 2}, headers=viewer)
    assert listed.json()["count"] == 3 and [item["id"] for item in listed.json()["results"]] == [
        made[2].id,
        made[1].id,
    ]
    assert listed.json()["next"] is not None
    for params, expected in (
        ({"severity": "critical"}, [made[1]]),
        ({"kind": "suite_event"}, [made[2]]),
        ({"from": (now - timedelta(hours=2, minutes=30)).isoformat(), "to": now.isoformat()}, [made[1]]),
        ({"status": ["open", "acknowledged"]}, made[::-1]),
        ({"status": "resolved"}, []),
    ):
        found = await client.get(ALERTS, params={"person_id": person, **params}, headers=viewer)
        assert found.status_code == 200, found.text
        assert [item["id"] for item in found.json()["results"]] == [alert.id for alert in expected], params
    assert (await client.get(ALERTS, params={"status": "closed"}, headers=viewer)).status_code == 422

    acme = await auth_headers("operator", tenant="acme")
    mine = await client.get(ALERTS, params={"person_id": person}, headers=acme)
    assert [item["id"] for item in mine.json()["results"]] == [made[2].id]
    assert (await client.get(f"{ALERTS}/{made[0].id}", headers=acme)).status_code == 404
    assert (await client.post(f"{ALERTS}/{made[0].id}/acknowledge", headers=acme)).status_code == 404
    assert (await client.post(f"{ALERTS}/{made[2].id}/acknowledge", headers=acme)).status_code == 200
    got = await client.get(f"{ALERTS}/{made[2].id}", headers=viewer)
    assert got.status_code == 200 and got.json()["tenant"] == "acme" and got.json()["status"] == "acknowledged"


async def test_the_alerts_report_counts_by_period_kind_and_severity_as_json_and_csv(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_engine: AsyncEngine
) -> None:
    # A week of its own, far from the other tests' alerts; committed, since the CSV is read on a connection of its own.
    base = datetime(2031, 5, 5, 12, tzinfo=UTC)
    marker = unique("report")
    async with create_sessionmaker(db_engine)() as session, session.begin():
        for values in (
            {"created_at": base},
            {"created_at": base + timedelta(hours=1)},
            {"created_at": base + timedelta(hours=2), "severity": "critical"},
            {"created_at": base + timedelta(days=1), "kind": "gateway_offline"},
            {"created_at": base + timedelta(days=1), "kind": "suite_event", "tenant": "acme"},
        ):
            await add_alert(session, rule_name=marker, **values)
    try:
        await _check_report(client, auth_headers, base)
    finally:
        async with create_sessionmaker(db_engine)() as session, session.begin():
            await session.execute(delete(AlertEvent).where(AlertEvent.rule_name == marker))


async def _check_report(client: httpx.AsyncClient, auth_headers: HeadersFactory, base: datetime) -> None:
    viewer = await auth_headers("viewer")
    period = {"from": (base - timedelta(days=1)).isoformat(), "to": (base + timedelta(days=3)).isoformat()}

    report = await client.get("/api/v1/reports/alerts", params=period, headers=viewer)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["total"] == 5 and body["bucket"] == "day" and body["from"].startswith("2031-05-04")
    assert body["by_kind"] == {"gateway_offline": 1, "suite_event": 1, "zone_entry": 3}
    assert body["by_severity"] == {"critical": 1, "high": 4}
    assert [(row["period_start"][:10], row["kind"], row["severity"], row["count"]) for row in body["rows"]] == [
        ("2031-05-05", "zone_entry", "critical", 1),
        ("2031-05-05", "zone_entry", "high", 2),
        ("2031-05-06", "gateway_offline", "high", 1),
        ("2031-05-06", "suite_event", "high", 1),
    ]
    tokyo = await client.get(
        "/api/v1/reports/alerts", params={**period, "timezone": "Asia/Tokyo", "kind": "zone_entry"}, headers=viewer
    )
    assert {row["period_start"] for row in tokyo.json()["rows"]} == {"2031-05-05T00:00:00+09:00"}
    acme = await client.get(
        "/api/v1/reports/alerts", params=period, headers=await auth_headers("viewer", tenant="acme")
    )
    assert acme.json()["by_kind"] == {"suite_event": 1}

    exported = await client.get(
        "/api/v1/reports/alerts.csv", params={**period, "bucket": "hour", "severity": "high"}, headers=viewer
    )
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert exported.headers["content-disposition"].startswith('attachment; filename="alerts-hour-')
    lines = list(csv.reader(io.StringIO(exported.text)))
    assert lines[0] == ["period_start", "kind", "severity", "count"]
    assert lines[1:] == [
        ["2031-05-05T12:00:00+00:00", "zone_entry", "high", "1"],
        ["2031-05-05T13:00:00+00:00", "zone_entry", "high", "1"],
        ["2031-05-06T12:00:00+00:00", "gateway_offline", "high", "1"],
        ["2031-05-06T12:00:00+00:00", "suite_event", "high", "1"],
    ]

    for params in (
        {"from": period["to"], "to": period["from"]},
        {"from": "2020-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z", "bucket": "hour"},
        {"timezone": "Nowhere/City"},
    ):
        for path in ("/api/v1/reports/alerts", "/api/v1/reports/alerts.csv"):
            refused = await client.get(path, params=params, headers=viewer)
            assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_report_range", params
    # The default start is 30 days before `to`: from year 1 it left Python's dates (a 500).
    for path in ("/api/v1/reports/alerts", "/api/v1/reports/alerts.csv"):
        refused = await client.get(path, params={"to": "0001-01-01T00:00:00Z"}, headers=viewer)
        assert refused.status_code == 422 and refused.json()["error"]["details"][0]["field"] == "query.to", refused.text


async def test_incident_rules_share_the_condition_language_and_refuse_nul_too(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    body = {
        "name": unique(),
        "severity": "low",
        "event_type": "rtls.alert.created",
        "title_template": "{message}",
        "conditions": [{"path": "severity", "op": "equals", "value": {"k\u0000": 1}}],
    }
    response = await client.post("/api/v1/incident-rules", json=body, headers=await auth_headers("admin"))
    assert response.status_code == 422 and "NUL" in response.text, response.text

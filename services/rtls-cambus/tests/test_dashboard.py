"""The dashboard's summary: people present by building and floor, devices by status, unresolved alerts and
incidents.

Other tests of the run may have committed rows, so the site-wide counts are compared before and after this
test's rows; a new building's counts are its own.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.testing.plugin import HeadersFactory
from rtls_cambus.alerts.models import AlertEvent
from rtls_cambus.buildings.models import Floor
from rtls_cambus.config import Settings
from rtls_cambus.devices.models import Device
from rtls_cambus.incidents.models import Incident
from rtls_cambus.people.models import Person
from rtls_cambus.positions.models import TagPosition
from rtls_cambus.tags.models import Tag

SUMMARY = "/api/v1/dashboard/summary"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The API alone: no MQTT subscriber, whose fixed client id another run on the same broker may be using."""
    return settings.model_copy(update={"mqtt_ingest_enabled": False})


def new_mac() -> str:
    digits = uuid.uuid4().hex[:12].upper()
    return ":".join(digits[index : index + 2] for index in range(0, 12, 2))


def _minus(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _minus(value, before[key]) if isinstance(value, dict) else value - before[key]
        for key, value in after.items()
    }


async def test_the_summary_counts_who_is_on_site_devices_and_open_incidents(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession, make_site: Any
) -> None:
    viewer = await auth_headers("viewer")
    before = (await client.get(SUMMARY, headers=viewer)).json()
    site = await make_site(db_session)
    upstairs = Floor(building_id=site.building.id, level=1, name="First")
    people = [Person(full_name=f"p{index}") for index in range(4)]
    tags = [Tag(mac=new_mac()) for _ in range(5)]
    db_session.add_all([upstairs, *people, *tags])
    await db_session.flush()
    now = datetime.now(UTC)
    stale = now - timedelta(hours=1)
    ground = {"building_id": site.building.id, "floor_id": site.floor.id}
    first = {"building_id": site.building.id, "floor_id": upstairs.id}
    positions = [
        TagPosition(tag_id=site.tag.id, person_id=site.person.id, status="present", last_seen_at=now, **ground),
        # The same person's second tag, upstairs: counted on both floors, once in the building and the site.
        TagPosition(tag_id=tags[0].id, person_id=site.person.id, status="present", last_seen_at=now, **first),
        TagPosition(tag_id=tags[1].id, person_id=people[0].id, status="present", last_seen_at=now, **ground),
        TagPosition(tag_id=tags[2].id, person_id=people[1].id, status="present", last_seen_at=stale, **ground),
        TagPosition(tag_id=tags[3].id, person_id=people[2].id, status="unknown", last_seen_at=now, **first),
        TagPosition(tag_id=tags[4].id, person_id=None, status="present", last_seen_at=now, **first),
    ]
    lobby_gateway, lab_gateway, _unchanged = site.gateways
    lobby_gateway.status, lab_gateway.status = "online", "offline"
    camera = Device(kind="camera", code=f"cam-{uuid.uuid4().hex[:6]}", building_id=site.building.id, status="online")
    incidents = [
        Incident(title="a", severity="high", status="open"),
        Incident(title="b", severity="high", status="in_progress"),
        Incident(title="c", severity="critical", status="acknowledged"),
        Incident(title="d", severity="low", status="resolved"),
        Incident(title="e", severity="medium", status="closed"),
    ]
    db_session.add_all([*positions, camera, *incidents])
    await db_session.flush()

    response = await client.get(SUMMARY, headers=viewer)

    assert response.status_code == 200, response.text
    summary = response.json()
    building = next(item for item in summary["people_on_site"]["buildings"] if item["building_id"] == site.building.id)
    assert building == {
        "building_id": site.building.id,
        "building_name": site.building.name,
        "people": 2,
        "floors": [
            {"floor_id": site.floor.id, "floor_name": None, "floor_level": 0, "people": 2},
            {"floor_id": upstairs.id, "floor_name": "First", "floor_level": 1, "people": 1},
        ],
    }
    assert summary["people_on_site"]["fresh_seconds"] == 30.0
    change = _minus(
        {key: summary[key] for key in ("gateways", "cameras", "incidents")}
        | {"people": summary["people_on_site"]["total"]},
        {key: before[key] for key in ("gateways", "cameras", "incidents")}
        | {"people": before["people_on_site"]["total"]},
    )
    assert change == {
        "people": 2,
        "gateways": {"total": 3, "online": 1, "offline": 1, "unknown": 1},
        "cameras": {"total": 1, "online": 1, "offline": 0, "unknown": 0},
        "incidents": {
            "total": 3,
            "by_severity": {"low": 0, "medium": 0, "high": 2, "critical": 1},
            "by_status": {"open": 1, "acknowledged": 1, "in_progress": 1},
        },
    }
    assert datetime.fromisoformat(summary["generated_at"]) >= now


def _alert(severity: str, status: str, tenant: str | None) -> AlertEvent:
    key = uuid.uuid4().hex
    return AlertEvent(
        rule_name="r",
        kind="suite_event",
        severity=severity,
        status=status,
        message="m",
        dedup_key=key,
        cooldown_key=key,
        tenant=tenant,
    )


async def test_alerts_are_counted_within_the_callers_reach_and_incidents_for_the_whole_suite_only(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    viewer, acme_viewer = await auth_headers("viewer"), await auth_headers("viewer", tenant="acme")
    before = {
        name: (await client.get(SUMMARY, headers=headers)).json()
        for name, headers in (("suite", viewer), ("acme", acme_viewer))
    }
    db_session.add_all(
        [
            _alert("high", "open", None),
            _alert("high", "acknowledged", "acme"),
            _alert("critical", "open", "globex"),
            _alert("low", "resolved", "acme"),
        ]
    )
    await db_session.flush()

    suite = (await client.get(SUMMARY, headers=viewer)).json()
    acme = (await client.get(SUMMARY, headers=acme_viewer)).json()

    assert _minus(suite["alerts"], before["suite"]["alerts"]) == {
        "total": 3,
        "by_severity": {"low": 0, "medium": 0, "high": 2, "critical": 1},
    }
    assert _minus(acme["alerts"], before["acme"]["alerts"]) == {
        "total": 1,
        "by_severity": {"low": 0, "medium": 0, "high": 1, "critical": 0},
    }
    assert suite["incidents"] is not None
    assert acme["incidents"] is None


async def test_the_summary_is_for_signed_in_callers(client: httpx.AsyncClient) -> None:
    response = await client.get(SUMMARY)
    assert response.status_code == 401

"""Reports over HTTP: presence per person and per zone (sessions cut to the period), zone occupancy in hour and
day buckets, incident response and resolution times from the status history; JSON pages and CSV files; the
period's checks."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.testing.plugin import ClientFactory, HeadersFactory
from rtls_cambus.buildings.models import Building
from rtls_cambus.config import Settings
from rtls_cambus.incidents.models import Incident, IncidentStatusChange
from rtls_cambus.main import create_app
from rtls_cambus.people.models import Person, PersonGroup, PersonGroupMember
from rtls_cambus.positions.models import PresenceSession
from rtls_cambus.tags.models import Tag
from rtls_cambus.zones.models import Zone

API = "/api/v1/reports"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The API alone: no MQTT subscriber, whose fixed client id another run on the same broker may be using."""
    return settings.model_copy(update={"mqtt_ingest_enabled": False})


DAY = datetime(2026, 3, 2, tzinfo=UTC)


Site = Any
"""The conftest's `Site`: a building, a floor, two zones (the second restricted), gateways, Ana and her tag."""


def new_mac() -> str:
    digits = uuid.uuid4().hex[:12].upper()
    return ":".join(digits[index : index + 2] for index in range(0, 12, 2))


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


PERIOD = {"from": iso(at(9)), "to": iso(at(11))}


def parse(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body, newline="")))


class Presence:
    """A site where Ana and a visitor (`=cmd`, a name a spreadsheet would run) moved between the lobby and the lab."""

    def __init__(self, site: Site, visitor: Person, group: PersonGroup, quiet_zone: Zone) -> None:
        self.site = site
        self.ana = site.person
        self.visitor = visitor
        self.group = group
        self.lobby, self.lab = site.zones
        self.quiet_zone = quiet_zone

    def filters(self, **extra: Any) -> dict[str, Any]:
        return {**PERIOD, "building_id": self.site.building.id, **extra}


async def _session(
    db: AsyncSession, site: Site, person: Person, tag: Tag, zone: Zone, start: datetime, end: datetime | None
) -> None:
    db.add(
        PresenceSession(
            person_id=person.id,
            tag_id=tag.id,
            zone_id=zone.id,
            floor_id=site.floor.id,
            building_id=site.building.id,
            started_at=start,
            ended_at=end,
        )
    )


@pytest_asyncio.fixture(loop_scope="session")
async def presence(db_session: AsyncSession, make_site: Any) -> Presence:
    site = await make_site(db_session)
    lobby, lab = site.zones
    visitor = Person(full_name="=cmd")
    visitor_tag = Tag(mac=new_mac())
    group = PersonGroup(name=f"visitors-{uuid.uuid4().hex[:8]}")
    quiet_zone = Zone(floor_id=site.floor.id, name="Store room")
    db_session.add_all([visitor, visitor_tag, group, quiet_zone])
    await db_session.flush()
    db_session.add(PersonGroupMember(group_id=group.id, person_id=visitor.id))
    ana, tag = site.person, site.tag
    await _session(db_session, site, ana, tag, lobby, at(7), at(8))  # before the period: left out
    await _session(db_session, site, ana, tag, lobby, at(8, 30), at(9, 30))  # crosses the start: 30 min inside
    await _session(db_session, site, ana, tag, lab, at(9, 30), at(10))
    await _session(db_session, site, ana, tag, lobby, at(10), None)  # still open: counts to the period's end
    await _session(db_session, site, visitor, visitor_tag, lab, at(10, 30), at(10, 45))
    await _session(db_session, site, visitor, visitor_tag, lab, at(11), at(12))  # starts at the end: left out
    await db_session.flush()
    return Presence(site, visitor, group, quiet_zone)


async def test_presence_per_person_cuts_sessions_to_the_period(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, presence: Presence
) -> None:
    viewer = await auth_headers("viewer")
    response = await client.get(f"{API}/presence/people", params=presence.filters(), headers=viewer)

    assert response.status_code == 200, response.text
    page = response.json()
    assert page["count"] == 2
    assert page["results"] == [
        {
            "person_id": presence.ana.id,
            "person_name": "Ana Souza",
            "sessions": 3,
            "zones": 2,
            "seconds": 7200,
            "first_seen_at": "2026-03-02T09:00:00Z",
            "last_seen_at": "2026-03-02T11:00:00Z",
        },
        {
            "person_id": presence.visitor.id,
            "person_name": "=cmd",
            "sessions": 1,
            "zones": 1,
            "seconds": 900,
            "first_seen_at": "2026-03-02T10:30:00Z",
            "last_seen_at": "2026-03-02T10:45:00Z",
        },
    ]

    only_group = await client.get(
        f"{API}/presence/people", params=presence.filters(group_id=presence.group.id), headers=viewer
    )
    assert [row["person_id"] for row in only_group.json()["results"]] == [presence.visitor.id]
    in_lab = await client.get(
        f"{API}/presence/people", params=presence.filters(zone_id=presence.lab.id), headers=viewer
    )
    assert [(row["person_id"], row["seconds"]) for row in in_lab.json()["results"]] == [
        (presence.ana.id, 1800),
        (presence.visitor.id, 900),
    ]
    second_page = await client.get(
        f"{API}/presence/people", params=presence.filters(page=2, page_size=1), headers=viewer
    )
    assert [row["person_id"] for row in second_page.json()["results"]] == [presence.visitor.id]
    assert second_page.json()["next"] is None and second_page.json()["previous"] is not None
    elsewhere = await client.get(f"{API}/presence/people", params={**PERIOD, "building_id": 2**62}, headers=viewer)
    assert elsewhere.json() == {"count": 0, "next": None, "previous": None, "results": []}


async def test_presence_per_zone_counts_people_and_person_seconds(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, presence: Presence
) -> None:
    viewer = await auth_headers("viewer")
    response = await client.get(f"{API}/presence/zones", params=presence.filters(), headers=viewer)

    assert response.status_code == 200, response.text
    site = presence.site
    common = {
        "floor_id": site.floor.id,
        "floor_name": None,
        "building_id": site.building.id,
        "building_name": site.building.name,
    }
    assert response.json()["results"] == [
        {
            "zone_id": presence.lobby.id,
            "zone_name": "Lobby",
            "zone_restricted": False,
            **common,
            "sessions": 2,
            "people": 1,
            "seconds": 5400,
            "average_seconds": 2700.0,
            "longest_seconds": 3600,
        },
        {
            "zone_id": presence.lab.id,
            "zone_name": "Lab",
            "zone_restricted": True,
            **common,
            "sessions": 2,
            "people": 2,
            "seconds": 2700,
            "average_seconds": 1350.0,
            "longest_seconds": 1800,
        },
    ]
    one_person = await client.get(
        f"{API}/presence/zones", params=presence.filters(person_id=presence.ana.id), headers=viewer
    )
    assert [(row["zone_name"], row["seconds"]) for row in one_person.json()["results"]] == [
        ("Lobby", 5400),
        ("Lab", 1800),
    ]


async def test_occupancy_per_hour_spreads_each_session_over_its_buckets(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, presence: Presence
) -> None:
    viewer = await auth_headers("viewer")
    response = await client.get(f"{API}/occupancy", params=presence.filters(), headers=viewer)

    assert response.status_code == 200, response.text
    rows = [
        (row["bucket_start"], row["bucket_end"], row["zone_name"], row["people"], row["person_minutes"])
        for row in response.json()["results"]
    ]
    assert rows == [
        ("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z", "Lobby", 1, 30.0),
        ("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z", "Lab", 1, 30.0),
        ("2026-03-02T10:00:00Z", "2026-03-02T11:00:00Z", "Lobby", 1, 60.0),
        ("2026-03-02T10:00:00Z", "2026-03-02T11:00:00Z", "Lab", 1, 15.0),
    ]
    first = response.json()["results"][0]
    assert first["floor_id"] == presence.site.floor.id and first["building_id"] == presence.site.building.id

    cut = await client.get(
        f"{API}/occupancy",
        params={"from": iso(at(9, 45)), "to": iso(at(10, 40)), "zone_id": presence.lab.id},
        headers=viewer,
    )
    assert [
        (row["bucket_start"], row["bucket_end"], row["people"], row["person_minutes"]) for row in cut.json()["results"]
    ] == [
        ("2026-03-02T09:45:00Z", "2026-03-02T10:00:00Z", 1, 15.0),
        ("2026-03-02T10:00:00Z", "2026-03-02T10:40:00Z", 1, 10.0),
    ]

    nobody = await client.get(f"{API}/occupancy", params={**PERIOD, "zone_id": presence.quiet_zone.id}, headers=viewer)
    assert [(row["zone_name"], row["people"], row["person_minutes"]) for row in nobody.json()["results"]] == [
        ("Store room", 0, 0.0),
        ("Store room", 0, 0.0),
    ], "the zone asked for is listed with zeros"


async def test_occupancy_per_day_follows_the_wall_clock_of_the_time_zone(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, presence: Presence
) -> None:
    viewer = await auth_headers("viewer")
    params = presence.filters(
        bucket="day",
        tz="America/Sao_Paulo",
        zone_id=presence.lobby.id,
        **{"from": "2026-03-01T12:00:00-03:00", "to": "2026-03-03T00:00:00-03:00"},
    )
    response = await client.get(f"{API}/occupancy", params=params, headers=viewer)

    assert response.status_code == 200, response.text
    assert [(row["bucket_start"], row["bucket_end"], row["person_minutes"]) for row in response.json()["results"]] == [
        ("2026-03-01T15:00:00Z", "2026-03-02T03:00:00Z", 0.0),
        ("2026-03-02T03:00:00Z", "2026-03-03T03:00:00Z", 60.0 + 60.0 + (27 * 60 - 10 * 60)),
    ]
    unknown = await client.get(f"{API}/occupancy", params={**params, "tz": "Mars/Olympus_Mons"}, headers=viewer)
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_time_zone"


async def test_csv_files_hold_every_row_with_defused_names(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, presence: Presence
) -> None:
    viewer = await auth_headers("viewer")
    response = await client.get(f"{API}/presence/people.csv", params=presence.filters(), headers=viewer)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="rtls-presence-people-20260302T090000Z-20260302T110000Z.csv"'
    )
    assert response.headers["x-export-row-limit"] == "1000000"
    assert parse(response.text) == [
        ["person_id", "person_name", "sessions", "zones", "seconds", "first_seen_at", "last_seen_at"],
        [str(presence.ana.id), "Ana Souza", "3", "2", "7200", "2026-03-02T09:00:00Z", "2026-03-02T11:00:00Z"],
        [str(presence.visitor.id), "'=cmd", "1", "1", "900", "2026-03-02T10:30:00Z", "2026-03-02T10:45:00Z"],
    ]

    zones = parse((await client.get(f"{API}/presence/zones.csv", params=presence.filters(), headers=viewer)).text)
    assert zones[0][:3] == ["zone_id", "zone_name", "zone_restricted"]
    assert [row[1:3] + row[-3:] for row in zones[1:]] == [
        ["Lobby", "false", "5400", "2700.0", "3600"],
        ["Lab", "true", "2700", "1350.0", "1800"],
    ]

    occupancy = parse((await client.get(f"{API}/occupancy.csv", params=presence.filters(), headers=viewer)).text)
    assert occupancy[0] == [
        "bucket_start",
        "bucket_end",
        "zone_id",
        "zone_name",
        "floor_id",
        "building_id",
        "people",
        "person_minutes",
    ]
    assert [row[3] + " " + row[7] for row in occupancy[1:]] == ["Lobby 30.0", "Lab 30.0", "Lobby 60.0", "Lab 15.0"]


async def test_a_csv_past_the_row_cap_ends_with_the_truncated_line(
    make_client: ClientFactory, settings: Settings, auth_headers: HeadersFactory, presence: Presence
) -> None:
    capped = await make_client(create_app(settings.model_copy(update={"report_export_max_rows": 1})))
    response = await capped.get(
        f"{API}/presence/people.csv", params=presence.filters(), headers=await auth_headers("viewer")
    )

    lines = response.text.splitlines()
    assert response.headers["x-export-row-limit"] == "1"
    assert len(lines) == 3 and lines[1].startswith(f"{presence.ana.id},")
    assert lines[2].startswith("# truncated: the export stopped at 1 rows (the report_export_max_rows setting)")


@pytest.mark.parametrize("path", ["presence/people", "presence/zones.csv", "occupancy", "incidents/response-times"])
async def test_the_period_is_checked_before_anything_is_read(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, path: str
) -> None:
    viewer = await auth_headers("viewer")

    backwards = await client.get(f"{API}/{path}", params={"from": iso(at(11)), "to": iso(at(9))}, headers=viewer)
    assert backwards.status_code == 422 and backwards.json()["error"]["code"] == "invalid_period"
    too_long = await client.get(
        f"{API}/{path}", params={"from": iso(at(0)), "to": iso(at(0) + timedelta(days=93))}, headers=viewer
    )
    assert too_long.status_code == 422 and too_long.json()["error"]["code"] == "period_too_long"
    assert too_long.json()["error"]["details"] == {"max_days": 92}
    longest = await client.get(
        f"{API}/{path}", params={"from": iso(at(0)), "to": iso(at(0) + timedelta(days=92))}, headers=viewer
    )
    assert longest.status_code == 200, longest.text
    for params in ({"from": iso(at(9))}, {"from": "yesterday", "to": iso(at(9))}, {"from": "2026-03-02", "to": "x"}):
        refused = await client.get(f"{API}/{path}", params=params, headers=viewer)
        assert refused.status_code == 422, (params, refused.text)


# -- incident response and resolution times ------------------------------------------------------------------


async def _incident(
    db: AsyncSession, severity: str, opened: datetime, steps: list[tuple[str, datetime]], **extra: Any
) -> Incident:
    status = steps[-1][0] if steps else "open"
    incident = Incident(
        title=f"{severity} at {opened:%H:%M}", severity=severity, status=status, created_at=opened, **extra
    )
    db.add(incident)
    await db.flush()
    previous = None
    for to_status, moment in [("open", opened), *steps]:
        db.add(
            IncidentStatusChange(
                incident_id=incident.id,
                from_status=previous,
                to_status=to_status,
                changed_by_kind="user",
                changed_by_name="tester",
                changed_at=moment,
            )
        )
        previous = to_status
    await db.flush()
    return incident


@pytest_asyncio.fixture(loop_scope="session")
async def incidents_building(db_session: AsyncSession) -> Building:
    building = Building(name=f"incidents-{uuid.uuid4().hex[:8]}")
    db_session.add(building)
    await db_session.flush()
    where = {"building_id": building.id}
    await _incident(
        db_session,
        "high",
        at(9),
        [("acknowledged", at(9, 10)), ("in_progress", at(9, 20)), ("resolved", at(10))],
        **where,
    )
    await _incident(db_session, "high", at(9, 30), [("acknowledged", at(9, 35))], **where)
    reopened_then_closed = [
        ("acknowledged", at(9, 1)),
        ("in_progress", at(9, 5)),
        ("resolved", at(9, 30)),
        ("in_progress", at(9, 40)),
        ("resolved", at(10, 30)),
        ("closed", at(10, 45)),
    ]
    await _incident(db_session, "low", at(9), reopened_then_closed, **where)
    reopened = [
        ("acknowledged", at(9, 2)),
        ("in_progress", at(9, 3)),
        ("resolved", at(9, 4)),
        ("in_progress", at(9, 6)),
    ]
    await _incident(db_session, "critical", at(9), reopened, **where)
    await _incident(db_session, "medium", at(8), [("acknowledged", at(9, 30))], **where)  # opened before the period
    return building


def _row(report: dict[str, Any], severity: str | None) -> dict[str, Any]:
    return next(row for row in report["rows"] if row["severity"] == severity)


async def test_incident_times_per_severity_and_for_all(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, incidents_building: Building
) -> None:
    viewer = await auth_headers("viewer")
    params = {**PERIOD, "building_id": incidents_building.id}
    response = await client.get(f"{API}/incidents/response-times", params=params, headers=viewer)

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["period_start"], report["period_end"]) == ("2026-03-02T09:00:00Z", "2026-03-02T11:00:00Z")
    assert [row["severity"] for row in report["rows"]] == ["low", "medium", "high", "critical", None]
    high = _row(report, "high")
    assert high["incidents"] == 2
    assert high["to_acknowledge"] == {
        "count": 2,
        "average_seconds": 450.0,
        "p50_seconds": 450.0,
        "p90_seconds": 570.0,
        "p95_seconds": 585.0,
        "max_seconds": 600.0,
    }
    assert high["to_resolve"] == {
        "count": 1,
        "average_seconds": 3600.0,
        "p50_seconds": 3600.0,
        "p90_seconds": 3600.0,
        "p95_seconds": 3600.0,
        "max_seconds": 3600.0,
    }
    low = _row(report, "low")
    assert low["to_resolve"]["max_seconds"] == 5400.0, "the resolution that held, after the reopening"
    critical = _row(report, "critical")
    assert critical["to_acknowledge"]["count"] == 1 and critical["to_resolve"]["count"] == 0, "reopened: unresolved"
    assert critical["to_resolve"]["average_seconds"] is None
    assert _row(report, "medium") == {
        "severity": "medium",
        "incidents": 0,
        "to_acknowledge": {key: (0 if key == "count" else None) for key in high["to_acknowledge"]},
        "to_resolve": {key: (0 if key == "count" else None) for key in high["to_resolve"]},
    }
    everything = _row(report, None)
    assert everything["incidents"] == 4
    assert everything["to_acknowledge"]["count"] == 4 and everything["to_acknowledge"]["max_seconds"] == 600.0
    assert everything["to_resolve"]["count"] == 2 and everything["to_resolve"]["average_seconds"] == 4500.0

    only_high = await client.get(
        f"{API}/incidents/response-times", params={**params, "severity": "high"}, headers=viewer
    )
    assert _row(only_high.json(), None)["incidents"] == 2 and _row(only_high.json(), "low")["incidents"] == 0

    exported = await client.get(f"{API}/incidents/response-times.csv", params=params, headers=viewer)
    assert exported.status_code == 200 and exported.headers["content-type"] == "text/csv; charset=utf-8"
    lines = parse(exported.text)
    assert lines[0][:4] == ["severity", "incidents", "to_acknowledge_count", "to_acknowledge_average_seconds"]
    assert [line[0] for line in lines[1:]] == ["low", "medium", "high", "critical", "all"]
    assert lines[3][:4] == ["high", "2", "2", "450.0"] and lines[2][2:4] == ["0", ""]

"""The positions endpoints on positions applied with `apply_readings` in the test's transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.testing.plugin import HeadersFactory
from rtls_cambus.people.models import PersonGroup, PersonGroupMember
from rtls_cambus.positions.service import apply_readings

API = "/api/v1"


async def test_current_by_device_location_history_and_sessions(
    client: httpx.AsyncClient, db_session: AsyncSession, auth_headers: HeadersFactory, make_site: Any
) -> None:
    viewer = await auth_headers("viewer")
    site = await make_site(db_session)
    group = PersonGroup(name=f"g-{site.building.name}")
    db_session.add(group)
    await db_session.flush()
    db_session.add(PersonGroupMember(group_id=group.id, person_id=site.person.id))
    start = datetime.now(UTC) - timedelta(seconds=20)
    lobby, lab, _ = site.gateways
    for second in range(10):
        await apply_readings(db_session, lobby, [(site.tag.mac, -50)], start + timedelta(seconds=second))
        await apply_readings(db_session, lab, [(site.tag.mac, -75)], start + timedelta(seconds=second))
    for second in range(10, 20):
        await apply_readings(db_session, lobby, [(site.tag.mac, -85)], start + timedelta(seconds=second))
        await apply_readings(db_session, lab, [(site.tag.mac, -50)], start + timedelta(seconds=second))

    current = await client.get(
        f"{API}/positions/current", params={"floor_id": site.floor.id, "fresh": "true"}, headers=viewer
    )
    assert current.status_code == 200, current.text
    [row] = current.json()["results"]
    assert (row["person_name"], row["zone_name"], row["zone_restricted"], row["fresh"]) == (
        "Ana Souza",
        "Lab",
        True,
        True,
    )
    by_group = await client.get(f"{API}/positions/current", params={"group_id": group.id}, headers=viewer)
    assert [item["tag_id"] for item in by_group.json()["results"]] == [site.tag.id]
    stale = await client.get(
        f"{API}/positions/current", params={"floor_id": site.floor.id, "fresh": "false"}, headers=viewer
    )
    assert stale.json()["count"] == 0

    by_device = await client.get(f"{API}/positions/by-device", params={"floor_id": site.floor.id}, headers=viewer)
    heard = {item["gateway_id"]: item["tags"] for item in by_device.json()["results"]}
    assert [tag["placed_here"] for tag in heard[lab.id]] == [True]
    assert [tag["placed_here"] for tag in heard[lobby.id]] == [False]
    assert heard[site.gateways[2].id] == []

    location = await client.get(f"{API}/people/{site.person.id}/current-location", headers=viewer)
    assert location.status_code == 200
    assert location.json()["status"] == "present" and location.json()["position"]["zone_id"] == site.zones[1].id
    missing = await client.get(f"{API}/people/{2**62}/current-location", headers=viewer)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "person_not_found"

    history = await client.get(
        f"{API}/positions/history",
        params={"person_id": site.person.id, "from": start.isoformat(), "to": datetime.now(UTC).isoformat()},
        headers=viewer,
    )
    assert [item["zone_name"] for item in history.json()["results"]] == ["Lobby", "Lab"]
    backwards = await client.get(
        f"{API}/positions/history",
        params={"from": datetime.now(UTC).isoformat(), "to": start.isoformat()},
        headers=viewer,
    )
    assert backwards.status_code == 422 and backwards.json()["error"]["code"] == "invalid_period"

    sessions = await client.get(
        f"{API}/presence-sessions", params={"person_id": site.person.id, "open": "true"}, headers=viewer
    )
    assert [(item["zone_name"], item["ended_at"]) for item in sessions.json()["results"]] == [("Lab", None)]
    closed = await client.get(
        f"{API}/presence-sessions", params={"zone_id": site.zones[0].id, "open": "false"}, headers=viewer
    )
    assert closed.json()["count"] == 1


async def test_positions_need_a_signed_in_caller(client: httpx.AsyncClient) -> None:
    for path in ("/positions/current", "/positions/by-device", "/positions/history", "/presence-sessions"):
        assert (await client.get(f"{API}{path}")).status_code == 401
    assert (await client.post(f"{API}/positions/feed-tickets")).status_code == 401
    refused = await client.get(f"{API}/positions/feed", params={"ticket": "nope"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_feed_ticket"

"""`apply_readings` against the real database: positions, history, presence sessions and their events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.testing.plans import plan_of, rolled_back, scans_of
from rtls_cambus.devices.models import Device
from rtls_cambus.positions import repository
from rtls_cambus.positions.engine import EngineParams
from rtls_cambus.positions.models import PositionChange, PresenceSession, TagPosition
from rtls_cambus.positions.service import apply_readings, expire_silent

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
Site = Any
PARAMS = EngineParams()


@pytest_asyncio.fixture(loop_scope="session")
async def site(db_session: AsyncSession, make_site: Any) -> Site:
    return await make_site(db_session)


def mac() -> str:
    digits = uuid.uuid4().hex[:12].upper()
    return ":".join(digits[index : index + 2] for index in range(0, 12, 2))


async def events_of(session: AsyncSession, subject_prefix: str) -> list[str]:
    rows = await session.execute(
        text("SELECT type FROM rtls_cambus.outbox WHERE subject LIKE :prefix ORDER BY created_at"),
        {"prefix": f"{subject_prefix}%"},
    )
    return [row[0] for row in rows]


async def test_a_walk_from_the_lobby_to_the_lab_makes_one_change_per_room_and_presence_sessions(
    db_session: AsyncSession, site: Site
) -> None:
    lobby, lab, _ = site.gateways
    for second in range(20):
        at = T0 + timedelta(seconds=second)
        await apply_readings(db_session, lobby, [(site.tag.mac, -55)], at, params=PARAMS)
        await apply_readings(db_session, lab, [(site.tag.mac, -80)], at, params=PARAMS)
    for second in range(20, 40):
        at = T0 + timedelta(seconds=second)
        await apply_readings(db_session, lobby, [(site.tag.mac, -82)], at, params=PARAMS)
        await apply_readings(db_session, lab, [(site.tag.mac, -52)], at, params=PARAMS)

    current = await db_session.get(TagPosition, site.tag.id)
    assert current is not None
    assert (current.status, current.gateway_id, current.zone_id, current.person_id) == (
        "present",
        lab.id,
        site.zones[1].id,
        site.person.id,
    )
    assert current.last_seen_at == T0 + timedelta(seconds=39)
    changes = (
        await db_session.scalars(select(PositionChange).where(PositionChange.tag_id == site.tag.id).order_by("at"))
    ).all()
    assert [change.zone_id for change in changes] == [site.zones[0].id, site.zones[1].id]
    sessions = (
        await db_session.scalars(
            select(PresenceSession).where(PresenceSession.tag_id == site.tag.id).order_by("started_at")
        )
    ).all()
    first = sessions[0]
    assert (first.zone_id, first.started_at, first.ended_at) == (site.zones[0].id, changes[0].at, changes[1].at)
    assert sessions[1].zone_id == site.zones[1].id and sessions[1].ended_at is None
    assert await events_of(db_session, f"person/{site.person.id}") == [
        "rtls.person.zone_entered",
        "rtls.person.zone_exited",
        "rtls.person.zone_entered",
    ]
    assert await events_of(db_session, f"tag/{site.tag.id}") == ["rtls.position.changed"] * 2

    # Silence: the sweep marks the tag unknown and closes the session.
    assert await expire_silent(db_session, T0 + timedelta(seconds=39 + PARAMS.fresh_seconds + 1), PARAMS) >= 1
    await db_session.refresh(current)
    assert current.status == "unknown" and current.zone_id is None
    await db_session.refresh(sessions[1])
    assert sessions[1].ended_at is not None
    assert (await events_of(db_session, f"person/{site.person.id}"))[-1] == "rtls.person.zone_exited"


async def test_unzoned_gateways_move_the_tag_but_open_no_session(db_session: AsyncSession, site: Site) -> None:
    await apply_readings(db_session, site.gateways[2], [(site.tag.mac, -60)], T0, params=PARAMS)
    current = await db_session.get(TagPosition, site.tag.id)
    assert current is not None and current.gateway_id == site.gateways[2].id and current.zone_id is None
    assert await events_of(db_session, f"person/{site.person.id}") == []


async def test_readings_that_do_not_count_change_nothing(db_session: AsyncSession, site: Site) -> None:
    lobby = site.gateways[0]
    lobby.rssi_threshold = -70
    await db_session.flush()
    assert await apply_readings(db_session, lobby, [(site.tag.mac, -90)], T0, params=PARAMS) == []
    assert await apply_readings(db_session, lobby, [(mac(), -40)], T0, params=PARAMS) == []
    unplaced = Device(kind="gateway", mac=mac())
    db_session.add(unplaced)
    await db_session.flush()
    assert await apply_readings(db_session, unplaced, [(site.tag.mac, -40)], T0, params=PARAMS) == []
    current = await db_session.get(TagPosition, site.tag.id)
    assert current is None or current.status == "unknown"


async def test_gateways_are_found_by_id_whatever_the_statistics_say(
    db_engine: AsyncEngine, gateways_after_stale_statistics: Any
) -> None:
    """Statistics taken before a site's gateways came (autovacuum has not come by yet) must not turn the lookup of
    a batch's gateways into a read of every gateway: they are found by the primary key."""
    async with rolled_back(db_engine) as connection:
        # Pages but no live rows: the statistics of a table whose rows were all removed, or of a first test site.
        burst = await gateways_after_stale_statistics(connection, forgotten=True)
        some = [row.id for row in burst[:4]]
        plan = await plan_of(connection, repository._DEVICES_BY_ID.params(ids=some))
    scans = scans_of(plan, "devices")
    assert [scan.index for scan in scans] == ["pk_devices"]
    assert all(scan.condition for scan in scans), scans

"""Queries of positions, position changes and presence sessions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, exists, func, insert, select, update
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate, paginate_scalars
from rtls_cambus.buildings.models import Building, Floor
from rtls_cambus.devices.models import Device
from rtls_cambus.people.models import Person, PersonGroupMember
from rtls_cambus.positions.models import PRESENT, PositionChange, PresenceSession, TagPosition
from rtls_cambus.tags.models import Tag, TagAssignment
from rtls_cambus.zones.models import Zone


async def tags_by_mac(session: AsyncSession, macs: Sequence[str]) -> dict[str, tuple[int, int | None]]:
    """`{mac: (tag_id, person_id of the open assignment or None)}` for the registered tags among `macs`."""
    rows = await session.execute(
        select(Tag.mac, Tag.id, TagAssignment.person_id)
        .outerjoin(TagAssignment, and_(TagAssignment.tag_id == Tag.id, TagAssignment.assigned_to.is_(None)))
        .where(Tag.mac.in_(macs))
    )
    return {mac: (tag_id, person_id) for mac, tag_id, person_id in rows}


async def locked_positions(session: AsyncSession, tag_ids: Sequence[int]) -> list[TagPosition]:
    """The position rows of `tag_ids`, created when missing, locked for this transaction in id order (two
    messages naming the same tags lock them in the same order, so they queue rather than deadlock)."""
    await session.execute(
        pg_insert(TagPosition).values([{"tag_id": tag_id} for tag_id in tag_ids]).on_conflict_do_nothing()
    )
    found = await session.scalars(
        select(TagPosition)
        .where(TagPosition.tag_id.in_(tag_ids))
        .order_by(TagPosition.tag_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(found)


async def silent_positions(session: AsyncSession, seen_before: datetime, limit: int) -> list[TagPosition]:
    """Up to `limit` present tags last heard before `seen_before`, locked; rows another replica holds are skipped."""
    found = await session.scalars(
        select(TagPosition)
        .where(TagPosition.status == PRESENT, TagPosition.last_seen_at < seen_before)
        .order_by(TagPosition.tag_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(found)


async def gateways(session: AsyncSession, ids: Sequence[int]) -> dict[int, Device]:
    found = await session.scalars(select(Device).where(Device.id.in_(ids), Device.kind == "gateway"))
    return {device.id: device for device in found}


async def close_sessions(session: AsyncSession, tag_id: int, at: datetime) -> list[PresenceSession]:
    found = await session.scalars(
        update(PresenceSession)
        .where(PresenceSession.tag_id == tag_id, PresenceSession.ended_at.is_(None))
        .values(ended_at=func.greatest(PresenceSession.started_at, at))
        .returning(PresenceSession)
    )
    return list(found)


async def open_session(session: AsyncSession, values: dict[str, Any]) -> PresenceSession:
    found = await session.scalars(insert(PresenceSession).values(values).returning(PresenceSession))
    return found.one()


# -- reads -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionFilters:
    building_id: int | None = None
    floor_id: int | None = None
    zone_id: int | None = None
    group_id: int | None = None
    person_id: int | None = None
    status: str | None = None
    seen_after: datetime | None = None
    seen_before: datetime | None = None


def _current_query() -> Any:
    return (
        select(
            TagPosition,
            Tag.mac.label("tag_mac"),
            Person.full_name.label("person_name"),
            Zone.name.label("zone_name"),
            Zone.restricted.label("zone_restricted"),
            Floor.name.label("floor_name"),
            Floor.level.label("floor_level"),
            Building.name.label("building_name"),
            Device.mac.label("gateway_mac"),
            Device.name.label("gateway_name"),
        )
        .join(Tag, Tag.id == TagPosition.tag_id)
        .outerjoin(Person, Person.id == TagPosition.person_id)
        .outerjoin(Zone, Zone.id == TagPosition.zone_id)
        .outerjoin(Floor, Floor.id == TagPosition.floor_id)
        .outerjoin(Building, Building.id == TagPosition.building_id)
        .outerjoin(Device, Device.id == TagPosition.gateway_id)
    )


async def current_positions(
    session: AsyncSession, filters: PositionFilters, *, offset: int, limit: int
) -> tuple[Sequence[Row[Any]], int]:
    query = _current_query().order_by(TagPosition.tag_id)
    if filters.building_id is not None:
        query = query.where(TagPosition.building_id == filters.building_id)
    if filters.floor_id is not None:
        query = query.where(TagPosition.floor_id == filters.floor_id)
    if filters.zone_id is not None:
        query = query.where(TagPosition.zone_id == filters.zone_id)
    if filters.person_id is not None:
        query = query.where(TagPosition.person_id == filters.person_id)
    if filters.group_id is not None:
        query = query.where(
            exists().where(
                PersonGroupMember.person_id == TagPosition.person_id, PersonGroupMember.group_id == filters.group_id
            )
        )
    if filters.status is not None:
        query = query.where(TagPosition.status == filters.status)
    if filters.seen_after is not None:
        query = query.where(TagPosition.last_seen_at >= filters.seen_after)
    if filters.seen_before is not None:
        query = query.where(TagPosition.last_seen_at.is_(None) | (TagPosition.last_seen_at < filters.seen_before))
    return await paginate(session, query, offset=offset, limit=limit)


async def person_exists(session: AsyncSession, person_id: int) -> bool:
    return bool(await session.scalar(select(exists().where(Person.id == person_id))))


async def positions_of_person(session: AsyncSession, person_id: int) -> Sequence[Row[Any]]:
    """Current positions of the tags the person carries now, most recently heard first."""
    query = (
        _current_query()
        .join(TagAssignment, and_(TagAssignment.tag_id == TagPosition.tag_id, TagAssignment.assigned_to.is_(None)))
        .where(TagAssignment.person_id == person_id)
        .order_by(TagPosition.last_seen_at.desc().nulls_last())
    )
    rows: Sequence[Row[Any]] = (await session.execute(query)).all()
    return rows


async def gateway_page(
    session: AsyncSession, building_id: int | None, floor_id: int | None, *, offset: int, limit: int
) -> tuple[Sequence[Device], int]:
    query = select(Device).where(Device.kind == "gateway", Device.floor_id.is_not(None)).order_by(Device.id)
    if building_id is not None:
        query = query.where(Device.building_id == building_id)
    if floor_id is not None:
        query = query.where(Device.floor_id == floor_id)
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def positions_heard_by(
    session: AsyncSession, gateway_ids: Sequence[int], seen_after: datetime
) -> Sequence[Row[Any]]:
    """Current positions of tags whose engine state holds a track of any of `gateway_ids`, heard since then."""
    keys = array([str(gateway_id) for gateway_id in gateway_ids])
    query = _current_query().where(TagPosition.last_seen_at >= seen_after, TagPosition.state["tracks"].has_any(keys))
    rows: Sequence[Row[Any]] = (await session.execute(query.order_by(TagPosition.tag_id))).all()
    return rows


@dataclass(frozen=True)
class HistoryFilters:
    person_id: int | None = None
    tag_id: int | None = None
    zone_id: int | None = None
    floor_id: int | None = None
    building_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


async def position_history(
    session: AsyncSession, filters: HistoryFilters, *, offset: int, limit: int
) -> tuple[Sequence[Row[Any]], int]:
    query: Any = (
        select(PositionChange, Tag.mac.label("tag_mac"), Zone.name.label("zone_name"))
        .join(Tag, Tag.id == PositionChange.tag_id)
        .outerjoin(Zone, Zone.id == PositionChange.zone_id)
        .order_by(PositionChange.at, PositionChange.id)
    )
    for column, value in (
        (PositionChange.person_id, filters.person_id),
        (PositionChange.tag_id, filters.tag_id),
        (PositionChange.zone_id, filters.zone_id),
        (PositionChange.floor_id, filters.floor_id),
        (PositionChange.building_id, filters.building_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(PositionChange.at >= filters.since)
    if filters.until is not None:
        query = query.where(PositionChange.at < filters.until)
    return await paginate(session, query, offset=offset, limit=limit)


@dataclass(frozen=True)
class SessionFilters:
    person_id: int | None = None
    tag_id: int | None = None
    zone_id: int | None = None
    floor_id: int | None = None
    building_id: int | None = None
    open: bool | None = None
    since: datetime | None = None
    until: datetime | None = None


async def presence_sessions(
    session: AsyncSession, filters: SessionFilters, *, offset: int, limit: int
) -> tuple[Sequence[Row[Any]], int]:
    query: Any = (
        select(
            PresenceSession,
            Person.full_name.label("person_name"),
            Zone.name.label("zone_name"),
            Zone.restricted.label("zone_restricted"),
        )
        .outerjoin(Person, Person.id == PresenceSession.person_id)
        .outerjoin(Zone, Zone.id == PresenceSession.zone_id)
        .order_by(PresenceSession.started_at.desc(), PresenceSession.id.desc())
    )
    for column, value in (
        (PresenceSession.person_id, filters.person_id),
        (PresenceSession.tag_id, filters.tag_id),
        (PresenceSession.zone_id, filters.zone_id),
        (PresenceSession.floor_id, filters.floor_id),
        (PresenceSession.building_id, filters.building_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.open is not None:
        query = query.where(
            PresenceSession.ended_at.is_(None) if filters.open else PresenceSession.ended_at.is_not(None)
        )
    # Sessions that overlap [since, until): still open, or ended after `since`; started before `until`.
    if filters.since is not None:
        query = query.where((PresenceSession.ended_at.is_(None)) | (PresenceSession.ended_at >= filters.since))
    if filters.until is not None:
        query = query.where(PresenceSession.started_at < filters.until)
    return await paginate(session, query, offset=offset, limit=limit)

"""Queries of positions, position changes and presence sessions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import BigInteger, Row, and_, any_, bindparam, exists, select, text
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate, paginate_scalars
from rtls_cambus.buildings.models import Building, Floor
from rtls_cambus.devices.models import Device
from rtls_cambus.people.models import Person, PersonGroupMember
from rtls_cambus.positions.models import PositionChange, PresenceSession, TagPosition
from rtls_cambus.tags.models import Tag, TagAssignment
from rtls_cambus.zones.models import Zone

# Statements of the ingest's hot path, built once: arrays rather than IN lists, so each is one prepared statement
# whatever the batch size.
_TAGS_BY_MAC = text(
    "SELECT t.mac, t.id, a.person_id FROM rtls_cambus.tags t"
    " LEFT JOIN rtls_cambus.tag_assignments a ON a.tag_id = t.id AND a.assigned_to IS NULL"
    " WHERE t.mac = ANY(CAST(:macs AS text[]))"
)
_CREATE_POSITIONS = text(
    "INSERT INTO rtls_cambus.tag_positions (tag_id) SELECT unnest(CAST(:ids AS bigint[])) ORDER BY 1"
    " ON CONFLICT DO NOTHING"
)
_LOCK_POSITIONS = text(
    "SELECT tag_id, person_id, status, gateway_id, zone_id, floor_id, building_id, x_px, y_px, rssi, lead_db,"
    " since, last_seen_at, CAST(state AS text) AS state FROM rtls_cambus.tag_positions"
    " WHERE tag_id = ANY(CAST(:ids AS bigint[])) ORDER BY tag_id FOR UPDATE"
)
_SILENT_POSITIONS = text(
    "SELECT tag_id, person_id, status, gateway_id, zone_id, floor_id, building_id, x_px, y_px, rssi, lead_db,"
    " since, last_seen_at, CAST(state AS text) AS state FROM rtls_cambus.tag_positions"
    " WHERE status = 'present' AND last_seen_at < :before"
    " ORDER BY tag_id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_WRITE_POSITIONS = text(
    "UPDATE rtls_cambus.tag_positions p SET person_id = v.person_id, status = v.status, gateway_id = v.gateway_id,"
    " zone_id = v.zone_id, floor_id = v.floor_id, building_id = v.building_id, x_px = v.x_px, y_px = v.y_px,"
    " rssi = v.rssi, lead_db = v.lead_db, since = v.since, last_seen_at = v.last_seen_at,"
    " state = CAST(v.state AS jsonb), updated_at = now()"
    " FROM unnest(CAST(:tag_id AS bigint[]), CAST(:person_id AS bigint[]), CAST(:status AS text[]),"
    " CAST(:gateway_id AS bigint[]), CAST(:zone_id AS bigint[]), CAST(:floor_id AS bigint[]),"
    " CAST(:building_id AS bigint[]), CAST(:x_px AS float8[]), CAST(:y_px AS float8[]), CAST(:rssi AS float8[]),"
    " CAST(:lead_db AS float8[]), CAST(:since AS timestamptz[]), CAST(:last_seen_at AS timestamptz[]),"
    " CAST(:state AS text[]))"
    " AS v(tag_id, person_id, status, gateway_id, zone_id, floor_id, building_id, x_px, y_px, rssi, lead_db, since,"
    " last_seen_at, state)"
    " WHERE p.tag_id = v.tag_id"
)
_CLOSE_SESSIONS = text(
    "UPDATE rtls_cambus.presence_sessions SET ended_at = greatest(started_at, :at)"
    " WHERE tag_id = ANY(CAST(:tag_ids AS bigint[])) AND ended_at IS NULL"
    " RETURNING id, person_id, tag_id, zone_id, floor_id, building_id, started_at, ended_at"
)
_OPEN_SESSIONS = text(
    "INSERT INTO rtls_cambus.presence_sessions (person_id, tag_id, zone_id, floor_id, building_id, started_at)"
    " SELECT v.person_id, v.tag_id, v.zone_id, v.floor_id, v.building_id, :at"
    " FROM unnest(CAST(:person_id AS bigint[]), CAST(:tag_id AS bigint[]), CAST(:zone_id AS bigint[]),"
    " CAST(:floor_id AS bigint[]), CAST(:building_id AS bigint[]))"
    " AS v(person_id, tag_id, zone_id, floor_id, building_id) ORDER BY v.tag_id"
    " RETURNING id, person_id, tag_id, zone_id, floor_id, building_id, started_at, ended_at"
)
_ADD_CHANGES = text(
    "INSERT INTO rtls_cambus.position_changes"
    " (tag_id, person_id, status, gateway_id, zone_id, floor_id, building_id, x_px, y_px, rssi, at)"
    " SELECT v.*, :at FROM unnest(CAST(:tag_id AS bigint[]), CAST(:person_id AS bigint[]), CAST(:status AS text[]),"
    " CAST(:gateway_id AS bigint[]), CAST(:zone_id AS bigint[]), CAST(:floor_id AS bigint[]),"
    " CAST(:building_id AS bigint[]), CAST(:x_px AS float8[]), CAST(:y_px AS float8[]), CAST(:rssi AS float8[]))"
    " AS v(tag_id, person_id, status, gateway_id, zone_id, floor_id, building_id, x_px, y_px, rssi)"
)
_CHANGE_FIELDS = ("tag_id", "person_id", "status", "gateway_id", "zone_id", "floor_id", "building_id", "x_px", "y_px")


@dataclass(slots=True)
class PositionRow:
    """A tag's row of `tag_positions` as the engine reads and rewrites it (`state` is the engine's JSON)."""

    tag_id: int
    person_id: int | None
    status: str
    gateway_id: int | None
    zone_id: int | None
    floor_id: int | None
    building_id: int | None
    x_px: float | None
    y_px: float | None
    rssi: float | None
    lead_db: float | None
    since: datetime | None
    last_seen_at: datetime | None
    state: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A presence session as written (opened or closed)."""

    id: int
    person_id: int
    tag_id: int
    zone_id: int
    floor_id: int | None
    building_id: int | None
    started_at: datetime
    ended_at: datetime | None


_ROW_FIELDS = tuple(field.name for field in fields(PositionRow) if field.name != "state")


async def tags_by_mac(session: AsyncSession, macs: Sequence[str]) -> dict[str, tuple[int, int | None]]:
    """`{mac: (tag_id, person_id of the open assignment or None)}` for the registered tags among `macs`."""
    rows = await session.execute(_TAGS_BY_MAC, {"macs": list(macs)})
    return {mac: (tag_id, person_id) for mac, tag_id, person_id in rows}


async def locked_positions(session: AsyncSession, tag_ids: Sequence[int]) -> list[PositionRow]:
    """The position rows of `tag_ids`, created when missing, locked for this transaction in id order (two
    batches naming the same tags lock them in the same order, so they queue rather than deadlock)."""
    ids = sorted(tag_ids)
    await session.execute(_CREATE_POSITIONS, {"ids": ids})
    return _position_rows(await session.execute(_LOCK_POSITIONS, {"ids": ids}))


async def silent_positions(session: AsyncSession, seen_before: datetime, limit: int) -> list[PositionRow]:
    """Up to `limit` present tags last heard before `seen_before`, locked; rows another replica holds are skipped."""
    return _position_rows(await session.execute(_SILENT_POSITIONS, {"before": seen_before, "limit": limit}))


def _position_rows(rows: Iterable[Row[Any]]) -> list[PositionRow]:
    # The state is selected as text: orjson decodes it several times faster than the standard library's json,
    # which the driver's jsonb codec uses.
    return [PositionRow(**{**row._mapping, "state": orjson.loads(row.state)}) for row in rows]


def _columns(rows: Sequence[Any], fields: Sequence[str]) -> dict[str, list[Any]]:
    return {name: [getattr(row, name) for row in rows] for name in fields}


async def write_positions(session: AsyncSession, rows: Sequence[PositionRow]) -> None:
    """Write back every field of `rows` in one statement."""
    if not rows:
        return
    values = _columns(rows, _ROW_FIELDS)
    values["state"] = [orjson.dumps(row.state).decode() for row in rows]
    await session.execute(_WRITE_POSITIONS, values)


async def add_changes(session: AsyncSession, rows: Sequence[PositionRow], at: datetime) -> None:
    """One `position_changes` row per row of `rows` (their place now), at `at`, in one statement."""
    if rows:
        await session.execute(_ADD_CHANGES, {**_columns(rows, (*_CHANGE_FIELDS, "rssi")), "at": at})


# Devices by id alone, the gateways kept afterwards: `kind = 'gateway'` in the statement matches the partial index
# of gateways' MACs, and a planner without statistics, or with statistics taken before a site's gateways came,
# reads every gateway through it to find the few asked for, on every batch.
_DEVICES_BY_ID = select(Device).where(Device.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))


async def gateways(session: AsyncSession, ids: Sequence[int]) -> dict[int, Device]:
    found = await session.scalars(_DEVICES_BY_ID, {"ids": list(ids)})
    return {device.id: device for device in found if device.kind == "gateway"}


async def close_sessions(session: AsyncSession, tag_ids: Sequence[int], at: datetime) -> list[SessionRow]:
    """Close the open sessions of `tag_ids` at `at` (never before they started); those closed."""
    if not tag_ids:
        return []
    rows = await session.execute(_CLOSE_SESSIONS, {"tag_ids": list(tag_ids), "at": at})
    return [SessionRow(**row._mapping) for row in rows]


async def open_sessions(session: AsyncSession, rows: Sequence[PositionRow], at: datetime) -> list[SessionRow]:
    """Open a session for each of `rows` in its zone, carried by its `person_id`, from `at`; those opened."""
    if not rows:
        return []
    values = _columns(rows, ("person_id", "tag_id", "zone_id", "floor_id", "building_id"))
    return [SessionRow(**row._mapping) for row in await session.execute(_OPEN_SESSIONS, {**values, "at": at})]


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


def _where_place(query: Any, table: Any, filters: HistoryFilters) -> Any:
    """`query` narrowed to the person, tag and place of `filters` on `table`'s columns of those names."""
    for name in ("person_id", "tag_id", "zone_id", "floor_id", "building_id"):
        value = getattr(filters, name)
        if value is not None:
            query = query.where(getattr(table, name) == value)
    return query


async def position_history(
    session: AsyncSession, filters: HistoryFilters, *, offset: int, limit: int
) -> tuple[Sequence[Row[Any]], int]:
    query: Any = (
        select(PositionChange, Tag.mac.label("tag_mac"), Zone.name.label("zone_name"))
        .join(Tag, Tag.id == PositionChange.tag_id)
        .outerjoin(Zone, Zone.id == PositionChange.zone_id)
        .order_by(PositionChange.at, PositionChange.id)
    )
    query = _where_place(query, PositionChange, filters)
    if filters.since is not None:
        query = query.where(PositionChange.at >= filters.since)
    if filters.until is not None:
        query = query.where(PositionChange.at < filters.until)
    return await paginate(session, query, offset=offset, limit=limit)


@dataclass(frozen=True)
class SessionFilters(HistoryFilters):
    open: bool | None = None


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
    query = _where_place(query, PresenceSession, filters)
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

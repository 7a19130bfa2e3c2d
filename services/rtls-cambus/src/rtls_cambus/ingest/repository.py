"""Queries of the ingest: gateway presence, readings, rejections, cameras, camera events and collectors.

Gateway presence is written with set-based statements (one per batch, whatever the number of gateways), each
returning the state it replaced, so that online/offline events are emitted exactly once even with several
replicas: a row lock decides which transaction saw the change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Select, String, and_, bindparam, case, func, insert, null, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate_scalars
from rtls_cambus.buildings.models import Building, Floor
from rtls_cambus.devices.models import Device
from rtls_cambus.ingest.models import CamBusCollector, CameraEvent, RejectedMessage
from rtls_cambus.ingest.payloads import CameraEventPayload


@dataclass(frozen=True, slots=True)
class GatewaySeen:
    """A gateway as a batch left it, with the status it had before (None: registered by this batch).

    Its fields carry the names of the `Device` columns they come from.
    """

    id: int
    mac: str
    status: str
    previous_status: str | None
    last_seen_at: datetime
    building_id: int | None
    floor_id: int | None
    zone_id: int | None
    rssi_offset: int
    rssi_threshold: int | None
    x_px: float | None
    y_px: float | None


# Rows are locked in id order so that two replicas updating overlapping gateways never deadlock; the CTE reads
# each status as it is once locked (READ COMMITTED re-reads a row changed meanwhile).
# Each MAC is looked up on its own and the rows are then locked and updated by `id = ANY(array of those found)`:
# a planner without statistics, or with statistics taken before a site's gateways came, otherwise reads every
# gateway (through the index by id, for the lock's order, or the partial index of gateways' MACs) to find the
# batch's few, on every batch. Keyed on one MAC, or on the ids found, each read is an index lookup whatever the
# statistics say.
_MARK_SEEN = text(
    "WITH seen AS (SELECT * FROM unnest(CAST(:macs AS text[]), CAST(:states AS text[]), CAST(:times AS timestamptz[]))"
    " AS s(mac, state, at)),"
    " found AS (SELECT (SELECT g.id FROM rtls_cambus.devices g WHERE g.mac = seen.mac AND g.kind = 'gateway') AS id"
    " FROM seen),"
    " locked AS (SELECT d.id, d.status FROM rtls_cambus.devices d WHERE d.id = ANY(ARRAY(SELECT id FROM found))"
    " ORDER BY d.id FOR UPDATE OF d)"
    " UPDATE rtls_cambus.devices d SET status = seen.state,"
    " last_seen_at = greatest(d.last_seen_at, seen.at)"
    " FROM seen, locked WHERE d.id = ANY(ARRAY(SELECT id FROM locked)) AND d.id = locked.id AND d.mac = seen.mac"
    " RETURNING d.id, d.mac, d.status, d.last_seen_at, d.building_id, d.floor_id, d.zone_id,"
    " d.rssi_offset, d.rssi_threshold, d.x_px, d.y_px,"
    " locked.status AS previous_status"
).bindparams(
    bindparam("macs", type_=ARRAY(String)),
    bindparam("states", type_=ARRAY(String)),
    bindparam("times", type_=ARRAY(DateTime(timezone=True))),
)

_REGISTER = text(
    "INSERT INTO rtls_cambus.devices AS d (kind, mac, status, last_seen_at)"
    " SELECT 'gateway', s.mac, s.state, s.at"
    " FROM unnest(CAST(:macs AS text[]), CAST(:states AS text[]), CAST(:times AS timestamptz[])) AS s(mac, state, at)"
    " ORDER BY s.mac"
    " ON CONFLICT (mac) WHERE kind = 'gateway' DO NOTHING"
    " RETURNING d.id, d.mac, d.status, d.last_seen_at, d.building_id, d.floor_id, d.zone_id,"
    " d.rssi_offset, d.rssi_threshold, d.x_px, d.y_px,"
    " NULL AS previous_status"
)

_SWEEP_SILENT = text(
    "UPDATE rtls_cambus.devices d SET status = 'offline'"
    " WHERE d.kind = 'gateway' AND d.status = 'online' AND d.last_seen_at < :before"
    " RETURNING d.id, d.mac, d.status, d.last_seen_at, d.building_id, d.floor_id, d.zone_id,"
    " d.rssi_offset, d.rssi_threshold, d.x_px, d.y_px,"
    " 'online' AS previous_status"
)


# Arrays rather than a row of parameters per reading: one short statement for a whole batch, prepared once.
_ADD_READINGS = text(
    "INSERT INTO rtls_cambus.gateway_readings (received_at, gateway_id, gateway_mac, tag_mac, rssi)"
    " SELECT :at, r.gateway_id, r.gateway_mac, r.tag_mac, r.rssi"
    " FROM unnest(CAST(:gateway_ids AS bigint[]), CAST(:gateway_macs AS text[]), CAST(:tag_macs AS text[]),"
    " CAST(:rssis AS smallint[])) AS r(gateway_id, gateway_mac, tag_mac, rssi)"
)


def _seen(rows: Sequence[Any]) -> list[GatewaySeen]:
    return [GatewaySeen(**row._mapping) for row in rows]


async def mark_gateways_seen(session: AsyncSession, states: dict[str, tuple[str, datetime]]) -> list[GatewaySeen]:
    """Set status and last seen of the known gateways among `states` (mac → (status, seen at)); those updated."""
    if not states:
        return []
    macs = sorted(states)
    params = {"macs": macs, "states": [states[mac][0] for mac in macs], "times": [states[mac][1] for mac in macs]}
    return _seen((await session.execute(_MARK_SEEN, params)).all())


async def register_gateways(session: AsyncSession, states: dict[str, tuple[str, datetime]]) -> list[GatewaySeen]:
    """Insert the gateways of `states` as unplaced; those inserted (another transaction may have won some)."""
    if not states:
        return []
    macs = sorted(states)
    params = {"macs": macs, "states": [states[mac][0] for mac in macs], "times": [states[mac][1] for mac in macs]}
    return _seen((await session.execute(_REGISTER, params)).all())


async def mark_silent_gateways_offline(session: AsyncSession, before: datetime) -> list[GatewaySeen]:
    """Turn offline the online gateways last seen before `before`; those turned (each by one transaction only)."""
    return _seen((await session.execute(_SWEEP_SILENT, {"before": before})).all())


async def add_readings(
    session: AsyncSession,
    received_at: datetime,
    gateway_ids: list[int],
    gateway_macs: list[str],
    tag_macs: list[str],
    rssis: list[int],
) -> None:
    """Readings received at `received_at`, one per position of the lists, in one statement."""
    if tag_macs:
        await session.execute(
            _ADD_READINGS,
            {
                "at": received_at,
                "gateway_ids": gateway_ids,
                "gateway_macs": gateway_macs,
                "tag_macs": tag_macs,
                "rssis": rssis,
            },
        )


async def add_rejections(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(RejectedMessage), rows)


async def delete_rejections_before(session: AsyncSession, before: datetime) -> int:
    result = await session.execute(
        text("DELETE FROM rtls_cambus.rejected_messages WHERE received_at < :before"), {"before": before}
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def building_ids_by_code(session: AsyncSession, codes: set[str]) -> dict[str, int]:
    rows = await session.execute(select(Building.code, Building.id).where(Building.code.in_(codes)))
    return {code: building_id for code, building_id in rows if code is not None}


async def floor_id(session: AsyncSession, building_id: int, level: int) -> int | None:
    found: int | None = await session.scalar(
        select(Floor.id).where(Floor.building_id == building_id, Floor.level == level)
    )
    return found


async def upsert_camera(
    session: AsyncSession,
    *,
    building_id: int,
    floor_id: int | None,
    code: str,
    topic: str,
    seen_at: datetime,
    status: str,
    info: dict[str, Any] | None,
) -> tuple[int, bool]:
    """Create the camera, or refresh the one with this code in the building; its id and whether it is new.

    A floor set in the catalogue is kept: the topic's floor only fills a camera that has none.
    """
    statement = pg_insert(Device).values(
        kind="camera",
        building_id=building_id,
        floor_id=floor_id,
        code=code,
        topic=topic,
        status=status,
        last_seen_at=seen_at,
        # SQL NULL, not JSON null, so that the coalesce below keeps the stored info.
        info=info if info is not None else null(),
    )
    excluded = statement.excluded
    upsert = statement.on_conflict_do_update(
        index_elements=[Device.building_id, Device.code],
        index_where=text("kind = 'camera'"),
        set_={
            "topic": excluded.topic,
            "status": excluded.status,
            "last_seen_at": func.greatest(Device.last_seen_at, excluded.last_seen_at),
            "floor_id": func.coalesce(Device.floor_id, excluded.floor_id),
            "info": func.coalesce(excluded.info, Device.info),
        },
    ).returning(Device.id, text("(xmax = 0) AS inserted"))
    row = (await session.execute(upsert)).one()
    return int(row[0]), bool(row[1])


async def upsert_event(
    session: AsyncSession, camera_id: int, analytic: str, event: CameraEventPayload, received_at: datetime
) -> CameraEvent:
    """Record one new/update/end message of an event under its stable id; the event as it stands.

    An event that has ended stays ended: a late or repeated update changes neither its state nor its data.
    """
    values = {
        "camera_id": camera_id,
        "analytic": analytic,
        "event_id": event.event_id,
        "type": event.type,
        "label": event.label,
        "sub_label": event.sub_label,
        "score": event.score,
        "top_score": event.top_score if event.top_score is not None else event.score,
        "zones": event.zones,
        "entered_zones": event.entered_zones,
        "started_at": event.started_at or received_at,
        "ended_at": event.ended_at or (received_at if event.type == "end" else None),
        "data": event.data,
        "updated_at": received_at,
    }
    statement = pg_insert(CameraEvent).values(**values)
    excluded = statement.excluded
    ended = CameraEvent.type == "end"
    upsert = statement.on_conflict_do_update(
        index_elements=[CameraEvent.camera_id, CameraEvent.analytic, CameraEvent.event_id],
        set_={
            "type": case((ended, CameraEvent.type), else_=excluded.type),
            "label": func.coalesce(excluded.label, CameraEvent.label),
            "sub_label": func.coalesce(excluded.sub_label, CameraEvent.sub_label),
            "score": case((ended, CameraEvent.score), else_=func.coalesce(excluded.score, CameraEvent.score)),
            "top_score": func.greatest(CameraEvent.top_score, excluded.top_score),
            "zones": case((ended, CameraEvent.zones), else_=excluded.zones),
            "entered_zones": case(
                (func.jsonb_array_length(excluded.entered_zones) > 0, excluded.entered_zones),
                else_=CameraEvent.entered_zones,
            ),
            "started_at": func.least(CameraEvent.started_at, excluded.started_at),
            "ended_at": func.coalesce(CameraEvent.ended_at, excluded.ended_at),
            "messages": CameraEvent.messages + 1,
            "data": case((ended, CameraEvent.data), else_=excluded.data),
            "updated_at": excluded.updated_at,
        },
    ).returning(CameraEvent)
    # The same event twice in one batch: the second answer must replace the first in the session.
    result = await session.execute(upsert, execution_options={"populate_existing": True})
    row: CameraEvent = result.scalar_one()
    return row


async def upsert_collector(
    session: AsyncSession,
    *,
    tenant: str,
    building_code: str,
    building_id: int | None,
    status: str,
    details: dict[str, Any] | None,
    seen_at: datetime,
) -> None:
    statement = pg_insert(CamBusCollector).values(
        tenant=tenant,
        building_code=building_code,
        building_id=building_id,
        status=status,
        details=details,
        last_seen_at=seen_at,
    )
    excluded = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[CamBusCollector.tenant, CamBusCollector.building_code],
            set_={
                "building_id": excluded.building_id,
                "status": excluded.status,
                "details": excluded.details,
                "last_seen_at": func.greatest(CamBusCollector.last_seen_at, excluded.last_seen_at),
            },
        )
    )


@dataclass(frozen=True)
class EventFilters:
    since: datetime | None = None
    until: datetime | None = None
    label: str | None = None
    analytic: str | None = None
    type: str | None = None


def _events_query(camera_id: int, filters: EventFilters) -> Select[Any]:
    conditions = [CameraEvent.camera_id == camera_id]
    if filters.since is not None:
        # An event overlapping the range counts: it started before `until` and had not ended before `since`.
        conditions.append(func.coalesce(CameraEvent.ended_at, CameraEvent.started_at) >= filters.since)
    if filters.until is not None:
        conditions.append(CameraEvent.started_at < filters.until)
    if filters.label is not None:
        conditions.append(CameraEvent.label == filters.label)
    if filters.analytic is not None:
        conditions.append(CameraEvent.analytic == filters.analytic)
    if filters.type is not None:
        conditions.append(CameraEvent.type == filters.type)
    return select(CameraEvent).where(and_(*conditions)).order_by(CameraEvent.started_at.desc(), CameraEvent.id.desc())


async def list_events(
    session: AsyncSession, camera_id: int, filters: EventFilters, *, offset: int, limit: int
) -> tuple[list[CameraEvent], int]:
    return await paginate_scalars(session, _events_query(camera_id, filters), offset=offset, limit=limit)

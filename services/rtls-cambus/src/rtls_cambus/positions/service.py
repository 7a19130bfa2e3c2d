"""Positions from readings: the engine per tag, its state kept in the tag's row, changes, presence sessions, events.

Several replicas: every reading of a tag goes through `apply_readings`, which locks the tag's position row for
its transaction, reads the engine state from it, and writes the new state back. Whichever replica gets the next
message carries on from the committed state; two messages about one tag queue on the row lock, never on
process memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus import Event, emit_many
from rtls_cambus.config import Settings
from rtls_cambus.identifiers import SCHEMA, SOURCE
from rtls_cambus.people.errors import PersonNotFoundError
from rtls_cambus.positions import repository
from rtls_cambus.positions.engine import EngineParams, Position, Reading, TagState, decide, observe_together, position
from rtls_cambus.positions.errors import PeriodError
from rtls_cambus.positions.models import PRESENT, UNKNOWN, TagPosition
from rtls_cambus.positions.repository import PositionRow, SessionRow
from rtls_cambus.positions.schemas import (
    CurrentPosition,
    GatewayTags,
    HeardTag,
    PersonLocation,
    PositionChangeRead,
    PresenceSessionRead,
    row_dict,
)

POSITION_CHANGED = "rtls.position.changed"
ZONE_ENTERED = "rtls.person.zone_entered"
ZONE_EXITED = "rtls.person.zone_exited"

DEFAULT_PARAMS = EngineParams()
SWEEP_BATCH = 500


def engine_params(settings: Settings) -> EngineParams:
    """The engine's parameters from the service's settings (`RTLS_CAMBUS_POSITION_*`)."""
    return EngineParams(
        alpha_rise=settings.position_alpha_rise,
        alpha_fall=settings.position_alpha_fall,
        fresh_seconds=settings.position_fresh_seconds,
        margin_db=settings.position_margin_db,
        dwell_seconds=settings.position_dwell_seconds,
    )


@dataclass(frozen=True)
class Move:
    """A tag changed place in this call (what was written to the history)."""

    tag_id: int
    person_id: int | None
    gateway_id: int | None
    zone_id: int | None
    at: datetime


class PlacedGateway(Protocol):
    """What positioning needs of a gateway: a `Device` row, or the ingest's record of one."""

    @property
    def id(self) -> int: ...
    @property
    def building_id(self) -> int | None: ...
    @property
    def floor_id(self) -> int | None: ...
    @property
    def zone_id(self) -> int | None: ...
    @property
    def rssi_offset(self) -> int: ...
    @property
    def rssi_threshold(self) -> int | None: ...
    @property
    def x_px(self) -> float | None: ...
    @property
    def y_px(self) -> float | None: ...


Heard = tuple[PlacedGateway, Sequence[tuple[str, int]]]
"""One gateway and the `(tag_mac, rssi)` pairs it reported, in arrival order."""


async def apply_readings(
    session: AsyncSession,
    gateway: PlacedGateway,
    readings: Sequence[tuple[str, int]],
    received_at: datetime,
    *,
    params: EngineParams = DEFAULT_PARAMS,
) -> list[Move]:
    """Feed one gateway message (`(tag_mac, rssi)` pairs, MACs normalised) to the engine of each tag in it.

    `apply_batch` with a single gateway; see there."""
    return await apply_batch(session, [(gateway, readings)], received_at, params=params)


async def apply_batch(
    session: AsyncSession, heard: Sequence[Heard], received_at: datetime, *, params: EngineParams = DEFAULT_PARAMS
) -> list[Move]:
    """Feed what several gateways heard at `received_at` to the engine of each tag, gateway after gateway in the
    order given, each gateway's readings in their order; the tags that moved.

    Only registered tags get positions, and only gateways placed on a floor position anyone. The statements do
    not depend on the number of gateways or tags: one to find the tags, two to create and lock their rows, one to
    write them back, and for the tags that moved one each for history, sessions and events. Never commits; the
    caller's transaction holds the tags' row locks until it does. Pass `params=engine_params(settings)`.
    """
    placed = [(gateway, readings) for gateway, readings in heard if gateway.floor_id is not None and readings]
    if not placed:
        return []
    tags = await repository.tags_by_mac(session, sorted({mac for _, readings in placed for mac, _ in readings}))
    if not tags:
        return []
    at = received_at.timestamp()
    by_tag: dict[int, list[Reading]] = defaultdict(list)
    for gateway, readings in placed:
        for mac, rssi in readings:
            if mac in tags:
                by_tag[tags[mac][0]].append(Reading(gateway.id, rssi, at, gateway.rssi_offset, gateway.rssi_threshold))
    holders = dict(tags.values())
    rows = await repository.locked_positions(session, list(by_tag))
    outcomes: list[tuple[PositionRow, Position]] = []
    for row in rows:
        before = TagState.from_json(row.state)
        state = observe_together(before, by_tag[row.tag_id], params)
        if state == before:
            continue  # every reading of it ignored (below the threshold, out of order): nothing to write
        row.state = state.to_json()
        heard_now = any(track.seen == at for track in state.tracks.values())
        if heard_now and (row.last_seen_at is None or row.last_seen_at < received_at):
            row.last_seen_at = received_at
        outcomes.append((row, position(state)))
    known = {gateway.id: gateway for gateway, _ in placed}
    return await _settle(session, outcomes, received_at, holders, known=known)


async def expire_silent(session: AsyncSession, now: datetime, params: EngineParams = DEFAULT_PARAMS) -> int:
    """Mark tags nobody has heard within the freshness window unknown (closing their presence sessions); how
    many. Replicas running this together each take rows the others have not locked."""
    rows = await repository.silent_positions(session, now - timedelta(seconds=params.fresh_seconds), SWEEP_BATCH)
    outcomes = []
    for row in rows:
        state = decide(TagState.from_json(row.state), now.timestamp(), params)
        row.state = state.to_json()
        outcomes.append((row, position(state)))
    moves = await _settle(session, outcomes, now, {}, known={})
    return len(moves)


async def _settle(
    session: AsyncSession,
    outcomes: list[tuple[PositionRow, Position]],
    at: datetime,
    holders: dict[int, int | None],
    *,
    known: Mapping[int, PlacedGateway],
) -> list[Move]:
    """Write what the engine decided: levels and state for every row, and for the tags that moved a change
    (history, sessions, events)."""
    moving = [(row, place) for row, place in outcomes if _moved(row, place)]
    wanted = {place.gateway for _, place in moving if place.gateway is not None} - set(known)
    devices: dict[int, PlacedGateway] = {
        **known,
        **(await repository.gateways(session, sorted(wanted)) if wanted else {}),
    }
    moved: list[PositionRow] = []
    zone_changed: list[PositionRow] = []
    for row, place in outcomes:
        row.rssi, row.lead_db = place.level, place.lead_db
        if not _moved(row, place):
            continue
        old_zone = row.zone_id
        _place(row, devices.get(place.gateway) if place.gateway is not None else None, holders, at)
        moved.append(row)
        if old_zone != row.zone_id:
            zone_changed.append(row)
    await repository.write_positions(session, [row for row, _ in outcomes])
    if not moved:
        return []
    await repository.add_changes(session, moved, at)
    closed = await repository.close_sessions(session, [row.tag_id for row in zone_changed], at)
    opened = await repository.open_sessions(
        session, [row for row in zone_changed if row.zone_id is not None and row.person_id is not None], at
    )
    exits: dict[int, list[Event]] = defaultdict(list)
    for presence in closed:
        exits[presence.tag_id].append(_session_event(ZONE_EXITED, presence))
    enters = {presence.tag_id: _session_event(ZONE_ENTERED, presence) for presence in opened}
    events: list[Event] = []
    for row in moved:
        # Per tag: where it is now, then the zone it left, then the one it entered.
        events.append(_position_event(row))
        events += exits.pop(row.tag_id, [])
        if row.tag_id in enters:
            events.append(enters[row.tag_id])
    await emit_many(session, SCHEMA, events)
    return [Move(row.tag_id, row.person_id, row.gateway_id, row.zone_id, at) for row in moved]


def _moved(row: PositionRow, place: Position) -> bool:
    if place.gateway is None:
        return row.status != UNKNOWN
    return row.status != PRESENT or row.gateway_id != place.gateway


def _place(row: PositionRow, device: PlacedGateway | None, holders: dict[int, int | None], at: datetime) -> None:
    row.person_id = holders.get(row.tag_id, row.person_id)
    row.since = at
    row.status = PRESENT if device is not None else UNKNOWN
    row.gateway_id = device.id if device else None
    row.zone_id = device.zone_id if device else None
    row.floor_id = device.floor_id if device else None
    row.building_id = device.building_id if device else None
    row.x_px = device.x_px if device else None
    row.y_px = device.y_px if device else None
    if device is None:
        row.rssi = row.lead_db = None


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _position_event(row: PositionRow) -> Event:
    data: dict[str, Any] = {
        "tag_id": row.tag_id,
        "person_id": row.person_id,
        "status": row.status,
        "gateway_id": row.gateway_id,
        "zone_id": row.zone_id,
        "floor_id": row.floor_id,
        "building_id": row.building_id,
        "x_px": row.x_px,
        "y_px": row.y_px,
        "rssi": row.rssi,
        "since": _iso(row.since),
    }
    return Event(source=SOURCE, type=POSITION_CHANGED, subject=f"tag/{row.tag_id}", data=data)


def _session_event(kind: str, presence: SessionRow) -> Event:
    return Event(
        source=SOURCE,
        type=kind,
        subject=f"person/{presence.person_id}",
        data={
            "session_id": presence.id,
            "person_id": presence.person_id,
            "tag_id": presence.tag_id,
            "zone_id": presence.zone_id,
            "floor_id": presence.floor_id,
            "building_id": presence.building_id,
            "started_at": _iso(presence.started_at),
            "ended_at": _iso(presence.ended_at),
        },
    )


# -- reads -------------------------------------------------------------------------------------------------------


def _fresh(row: TagPosition, now: datetime, params: EngineParams) -> bool:
    return row.last_seen_at is not None and now - row.last_seen_at <= timedelta(seconds=params.fresh_seconds)


def _current(row: Any, now: datetime, params: EngineParams) -> CurrentPosition:
    position_row: TagPosition = row[0]
    values = row_dict(row, position_row)
    return CurrentPosition.model_validate({**values, "fresh": _fresh(position_row, now, params)})


async def current_positions(
    session: AsyncSession,
    filters: repository.PositionFilters,
    fresh: bool | None,
    params: EngineParams,
    *,
    offset: int,
    limit: int,
) -> tuple[list[CurrentPosition], int]:
    now = datetime.now(UTC)
    window_start = now - timedelta(seconds=params.fresh_seconds)
    if fresh is True:
        filters = replace(filters, seen_after=window_start)
    elif fresh is False:
        filters = replace(filters, seen_before=window_start)
    rows, count = await repository.current_positions(session, filters, offset=offset, limit=limit)
    return [_current(row, now, params) for row in rows], count


async def person_location(session: AsyncSession, person_id: int, params: EngineParams) -> PersonLocation:
    if not await repository.person_exists(session, person_id):
        raise PersonNotFoundError(person_id)
    now = datetime.now(UTC)
    for row in await repository.positions_of_person(session, person_id):
        found = _current(row, now, params)
        if found.status == PRESENT:
            return PersonLocation(person_id=person_id, status=PRESENT, position=found)
    return PersonLocation(person_id=person_id, status=UNKNOWN, position=None)


async def tags_by_gateway(
    session: AsyncSession,
    building_id: int | None,
    floor_id: int | None,
    params: EngineParams,
    *,
    offset: int,
    limit: int,
) -> tuple[list[GatewayTags], int]:
    """Each gateway of the page with the tags it has heard within the freshness window, strongest first."""
    devices, count = await repository.gateway_page(session, building_id, floor_id, offset=offset, limit=limit)
    now = datetime.now(UTC)
    heard: dict[int, list[HeardTag]] = defaultdict(list)
    if devices:
        rows = await repository.positions_heard_by(
            session, [device.id for device in devices], now - timedelta(seconds=params.fresh_seconds)
        )
        for row in rows:
            tag_position: TagPosition = row[0]
            for gateway_id, track in TagState.from_json(tag_position.state).tracks.items():
                heard_at = datetime.fromtimestamp(track.seen, UTC)
                if now - heard_at > timedelta(seconds=params.fresh_seconds):
                    continue
                heard[gateway_id].append(
                    HeardTag(
                        tag_id=tag_position.tag_id,
                        tag_mac=row.tag_mac,
                        person_id=tag_position.person_id,
                        person_name=row.person_name,
                        rssi=round(track.level, 2),
                        last_heard_at=heard_at,
                        placed_here=tag_position.gateway_id == gateway_id and tag_position.status == PRESENT,
                    )
                )
    return [
        GatewayTags(
            gateway_id=device.id,
            mac=device.mac,
            name=device.name,
            floor_id=device.floor_id,
            zone_id=device.zone_id,
            status=device.status,
            last_seen_at=device.last_seen_at,
            tags=sorted(heard.get(device.id, []), key=lambda tag: -tag.rssi),
        )
        for device in devices
    ], count


async def position_history(
    session: AsyncSession, filters: repository.HistoryFilters, *, offset: int, limit: int
) -> tuple[list[PositionChangeRead], int]:
    _check_period(filters.since, filters.until)
    rows, count = await repository.position_history(session, filters, offset=offset, limit=limit)
    return [PositionChangeRead.model_validate(row_dict(row, row[0])) for row in rows], count


async def presence_sessions(
    session: AsyncSession, filters: repository.SessionFilters, *, offset: int, limit: int
) -> tuple[list[PresenceSessionRead], int]:
    _check_period(filters.since, filters.until)
    rows, count = await repository.presence_sessions(session, filters, offset=offset, limit=limit)
    return [PresenceSessionRead.model_validate(row_dict(row, row[0])) for row in rows], count


def _check_period(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and until <= since:
        raise PeriodError()

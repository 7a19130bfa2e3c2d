"""Queries of alert rules and alerts, and the reads the alert engine evaluates rules against.

`reach` follows `mirante.auth.policy.tenant_reach`: None reaches every alert; a tenant name reaches only the
alerts raised from that tenant's events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    ColumnClause,
    ColumnElement,
    DateTime,
    Insert,
    Update,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate_scalars
from rtls_cambus.alerts.evaluation import OpenSession
from rtls_cambus.alerts.models import SEVERITIES, AlertCooldown, AlertEvent, AlertRule
from rtls_cambus.alerts.resolution import ENGINE, NOTES, SYSTEM, Ending
from rtls_cambus.alerts.schemas import Kind
from rtls_cambus.buildings.models import Floor
from rtls_cambus.devices.models import CameraGroupMember, Device
from rtls_cambus.ingest.models import CameraEvent
from rtls_cambus.people.models import Person, PersonGroupMember
from rtls_cambus.positions.models import PresenceSession, TagPosition
from rtls_cambus.rows import like_pattern
from rtls_cambus.tags.models import TagAssignment
from rtls_cambus.zones.models import Zone

UNRESOLVED: Final = ("open", "acknowledged")
# Replicas run the periodic check; one at a time is enough (the others find it taken and skip that round).
_CHECK_LOCK: Final = 0x616C657274  # "alert"


@dataclass(frozen=True)
class RuleFilters:
    kind: str | None = None
    enabled: bool | None = None
    severity: str | None = None
    search: str | None = None


@dataclass(frozen=True)
class AlertFilters:
    statuses: tuple[str, ...] = ()
    severity: str | None = None
    kind: str | None = None
    rule_id: int | None = None
    person_id: int | None = None
    zone_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


# -- rules -----------------------------------------------------------------------------------------------------------


async def list_rules(
    session: AsyncSession, filters: RuleFilters, *, offset: int, limit: int
) -> tuple[list[AlertRule], int]:
    query = select(AlertRule).order_by(AlertRule.name, AlertRule.id)
    if filters.kind is not None:
        query = query.where(AlertRule.kind == filters.kind)
    if filters.enabled is not None:
        query = query.where(AlertRule.enabled.is_(filters.enabled))
    if filters.severity is not None:
        query = query.where(AlertRule.severity == filters.severity)
    if filters.search:
        query = query.where(AlertRule.name.ilike(like_pattern(filters.search), escape="\\"))
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def get_rule(session: AsyncSession, rule_id: int) -> AlertRule | None:
    return await session.get(AlertRule, rule_id)


async def enabled_rules(session: AsyncSession) -> list[AlertRule]:
    query = select(AlertRule).where(AlertRule.enabled.is_(True)).order_by(AlertRule.id)
    return list((await session.scalars(query)).all())


# -- alerts ----------------------------------------------------------------------------------------------------------


def _within(reach: str | None) -> list[ColumnElement[bool]]:
    """The condition that keeps the alerts within `reach`."""
    return [] if reach is None else [AlertEvent.tenant == reach]


async def list_alerts(
    session: AsyncSession, filters: AlertFilters, reach: str | None, *, offset: int, limit: int
) -> tuple[list[AlertEvent], int]:
    query = select(AlertEvent).where(*_within(reach)).order_by(AlertEvent.created_at.desc(), AlertEvent.id.desc())
    if filters.statuses:
        query = query.where(AlertEvent.status.in_(filters.statuses))
    for column, value in (
        (AlertEvent.severity, filters.severity),
        (AlertEvent.kind, filters.kind),
        (AlertEvent.rule_id, filters.rule_id),
        (AlertEvent.person_id, filters.person_id),
        (AlertEvent.zone_id, filters.zone_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(AlertEvent.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(AlertEvent.created_at < filters.until)
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def get_alert(
    session: AsyncSession, alert_id: int, reach: str | None, *, for_update: bool = False
) -> AlertEvent | None:
    query = select(AlertEvent).where(AlertEvent.id == alert_id, *_within(reach))
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def open_alerts_by_severity(
    session: AsyncSession, reach: str | None = None, *, statuses: Sequence[str] = UNRESOLVED
) -> dict[str, int]:
    """How many alerts are not resolved yet (open or acknowledged; pass `statuses=("open",)` for the ones nobody
    acknowledged), per severity, every severity present (zero when none). For dashboards; `reach` as above."""
    query = (
        select(AlertEvent.severity, func.count())
        .where(AlertEvent.status.in_(list(statuses)), *_within(reach))
        .group_by(AlertEvent.severity)
    )
    counts = dict.fromkeys(SEVERITIES, 0)
    for severity, count in await session.execute(query):
        counts[severity] = count
    return counts


async def existing_situations(session: AsyncSession, keys: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
    """Those of `(rule_id, dedup_key)` that already have an alert."""
    wanted = list(set(keys))
    if not wanted:
        return set()
    query = select(AlertEvent.rule_id, AlertEvent.dedup_key).where(
        tuple_(AlertEvent.rule_id, AlertEvent.dedup_key).in_(wanted)
    )
    return {(rule_id, dedup_key) for rule_id, dedup_key in await session.execute(query) if rule_id is not None}


@dataclass(frozen=True)
class PreparedAlert:
    """An alert about to be inserted: its id, and the names of what it is about (None for what it is not about)."""

    alert_id: int
    names: dict[str, str | None]


_NEXT_ALERT_ID: Final[ColumnClause[int]] = literal_column("nextval('rtls_cambus.alert_events_id_seq')", BigInteger())


async def prepare_alert(
    session: AsyncSession,
    rule_id: int,
    dedup_key: str,
    *,
    now: datetime,
    cooldown: tuple[str, int] | None,
    person_id: int | None,
    zone_id: int | None,
    gateway_id: int | None,
    camera_id: int | None,
) -> PreparedAlert | None:
    """In one round trip: None when the rule no longer exists, already alerted about this situation, or (with a
    `cooldown` of (subject, seconds)) alerted about the subject within the cooldown; else the cooldown is claimed
    for `now` and the new alert's id and names are answered.

    The claim is an upsert on (rule, subject) that only moves the time forward once the cooldown has passed, so a
    replica racing for the same subject waits on the row and then sees the other's time."""
    rule_exists = select(AlertRule.id).where(AlertRule.id == rule_id).exists()
    known = select(AlertEvent.id).where(AlertEvent.rule_id == rule_id, AlertEvent.dedup_key == dedup_key).exists()
    claimed: Any = literal(True)
    query_ctes = []
    if cooldown is not None:
        subject, seconds = cooldown
        upsert = insert(AlertCooldown)
        claim = (
            upsert.from_select(
                ["rule_id", "cooldown_key", "last_alert_at"],
                select(literal(rule_id), literal(subject), literal(now, AlertCooldown.last_alert_at.type)).where(
                    rule_exists, ~known
                ),
            )
            .on_conflict_do_update(
                index_elements=[AlertCooldown.rule_id, AlertCooldown.cooldown_key],
                set_={"last_alert_at": upsert.excluded.last_alert_at},
                where=AlertCooldown.last_alert_at <= now - timedelta(seconds=seconds),
            )
            .returning(AlertCooldown.rule_id)
            .cte("claim")
        )
        query_ctes.append(claim)
        claimed = select(claim.c.rule_id).exists()

    def name_of(column: Any, where: Any, wanted: int | None) -> Any:
        return select(column).where(where).scalar_subquery() if wanted is not None else literal(None)

    device_name = func.coalesce(Device.name, Device.mac, Device.code)
    query = select(
        rule_exists.label("rule_exists"),
        known.label("known"),
        claimed.label("claimed"),
        _NEXT_ALERT_ID.label("alert_id"),
        name_of(Person.full_name, Person.id == person_id, person_id).label("person"),
        name_of(Zone.name, Zone.id == zone_id, zone_id).label("zone"),
        name_of(device_name, Device.id == gateway_id, gateway_id).label("gateway"),
        name_of(device_name, Device.id == camera_id, camera_id).label("camera"),
    )
    for cte in query_ctes:
        query = query.add_cte(cte)
    row = (await session.execute(query)).one()
    if not row.rule_exists or row.known or not row.claimed:
        return None
    names = {"person": row.person, "zone": row.zone, "gateway": row.gateway, "camera": row.camera}
    return PreparedAlert(row.alert_id, names)


ALERT_PREFIX: Final = "alert_"


@cache
def _insert_with_event(columns: tuple[str, ...], outbox: Insert) -> Insert:
    """The alert's INSERT carrying its `rtls.alert.created` outbox row as a data-modifying CTE: one round trip."""
    table = AlertEvent.__table__
    values = {name: bindparam(ALERT_PREFIX + name, type_=table.c[name].type) for name in columns}
    return insert(AlertEvent).values(values).add_cte(outbox.cte("alert_outbox"))


async def insert_alert(session: AsyncSession, values: dict[str, Any], event: tuple[Insert, dict[str, Any]]) -> None:
    """Insert a prepared alert (`values` with its id) and its event (`mirante.bus.outbox_insert`), together.

    Should another replica have raised the same situation since it was prepared, the unique (rule, dedup key) fails
    the statement, alert and event alike; the caller's transaction is then retried and finds the alert there."""
    outbox, parameters = event
    statement = _insert_with_event(tuple(values), outbox)
    await session.execute(statement, {**{ALERT_PREFIX + name: value for name, value in values.items()}, **parameters})


# -- what the engine evaluates ---------------------------------------------------------------------------------------


async def zone_facts(
    session: AsyncSession, zone_id: int, person_id: int, *, restricted: bool, groups: bool
) -> tuple[bool, frozenset[int]]:
    """Whether the zone is flagged restricted, and the person's groups (each read only when asked for), in one
    round trip."""
    restricted_column = (
        select(Zone.restricted).where(Zone.id == zone_id).scalar_subquery() if restricted else literal(False)
    )
    groups_column = (
        select(func.array_agg(PersonGroupMember.group_id))
        .where(PersonGroupMember.person_id == person_id)
        .scalar_subquery()
        if groups
        else literal(None)
    )
    flagged, group_ids = (await session.execute(select(restricted_column, groups_column))).one()
    return bool(flagged), frozenset(group_ids or ())


async def camera_facts(session: AsyncSession, camera_id: int) -> tuple[int | None, frozenset[int]]:
    """The camera's floor and its groups, in one round trip."""
    query = select(
        select(Device.floor_id).where(Device.id == camera_id).scalar_subquery(),
        select(func.array_agg(CameraGroupMember.group_id))
        .where(CameraGroupMember.device_id == camera_id)
        .scalar_subquery(),
    )
    floor, group_ids = (await session.execute(query)).one()
    return floor, frozenset(group_ids or ())


_RULES_STATE: Final = text(
    "SELECT (SELECT md5(coalesce(string_agg(id::text || ':' || xmin::text, ',' ORDER BY id), ''))"
    " FROM rtls_cambus.alert_rules),"
    " (SELECT coalesce(array_agg(DISTINCT kind), '{}') FROM rtls_cambus.alert_events"
    " WHERE auto_resolve AND status <> 'resolved')"
)


async def rules_state(session: AsyncSession) -> tuple[str, frozenset[str]]:
    """A value that changes whenever a rule is created, changed or deleted (ids and row versions), so replicas
    reload the rules only when they changed; and the kinds of the alerts the engine may still resolve. One small
    answer."""
    fingerprint, kinds = (await session.execute(_RULES_STATE)).one()
    return str(fingerprint), frozenset(kinds)


async def try_check_lock(session: AsyncSession) -> bool:
    """Take the periodic check's lock for this transaction, unless another replica holds it."""
    return bool(await session.scalar(select(func.pg_try_advisory_xact_lock(_CHECK_LOCK))))


async def open_sessions(session: AsyncSession) -> list[OpenSession]:
    query = select(
        PresenceSession.id,
        PresenceSession.person_id,
        PresenceSession.zone_id,
        PresenceSession.floor_id,
        PresenceSession.building_id,
        PresenceSession.started_at,
    ).where(PresenceSession.ended_at.is_(None))
    return [OpenSession(*row) for row in await session.execute(query)]


async def restricted_zones(session: AsyncSession) -> frozenset[int]:
    return frozenset((await session.scalars(select(Zone.id).where(Zone.restricted.is_(True)))).all())


async def group_members(session: AsyncSession, group_ids: Iterable[int]) -> dict[int, tuple[int, ...]]:
    """The active members of each group."""
    query = (
        select(PersonGroupMember.group_id, PersonGroupMember.person_id)
        .join(Person, Person.id == PersonGroupMember.person_id)
        .where(PersonGroupMember.group_id.in_(list(group_ids)), Person.active.is_(True))
        .order_by(PersonGroupMember.person_id)
    )
    found: dict[int, list[int]] = defaultdict(list)
    for group_id, person_id in await session.execute(query):
        found[group_id].append(person_id)
    return {group_id: tuple(people) for group_id, people in found.items()}


async def last_exits(
    session: AsyncSession, zone_ids: Iterable[int], after: datetime
) -> dict[tuple[int, int], datetime]:
    """When each person last left each of the zones, for sessions that ended after `after`."""
    query = (
        select(PresenceSession.person_id, PresenceSession.zone_id, func.max(PresenceSession.ended_at))
        .where(PresenceSession.zone_id.in_(list(zone_ids)), PresenceSession.ended_at > after)
        .group_by(PresenceSession.person_id, PresenceSession.zone_id)
    )
    return {(person, zone): ended for person, zone, ended in await session.execute(query) if ended is not None}


async def last_seen(session: AsyncSession) -> dict[int, datetime]:
    """Each active person carrying a tag: when a gateway last heard one of their tags, or, never heard, since when
    they carry it."""
    heard = func.max(TagPosition.last_seen_at)
    query = (
        select(TagAssignment.person_id, func.coalesce(heard, func.min(TagAssignment.assigned_from)))
        .join(Person, Person.id == TagAssignment.person_id)
        .outerjoin(TagPosition, TagPosition.tag_id == TagAssignment.tag_id)
        .where(TagAssignment.assigned_to.is_(None), Person.active.is_(True))
        .group_by(TagAssignment.person_id)
    )
    return {person: seen for person, seen in await session.execute(query) if seen is not None}


async def zone_places(session: AsyncSession, zone_ids: Iterable[int]) -> dict[int, tuple[int | None, int | None]]:
    """Each zone's floor and building."""
    query = (
        select(Zone.id, Zone.floor_id, Floor.building_id)
        .join(Floor, Floor.id == Zone.floor_id)
        .where(Zone.id.in_(list(zone_ids)))
    )
    return {zone: (floor, building) for zone, floor, building in await session.execute(query)}


# -- resolving -------------------------------------------------------------------------------------------------------


def _ended(ending: Ending) -> ColumnElement[bool]:
    picked = [AlertEvent.kind == ending.kind.value]
    for column, value in (
        (AlertEvent.dedup_key, ending.dedup_key),
        (AlertEvent.person_id, ending.person_id),
        (AlertEvent.zone_id, ending.zone_id),
        (AlertEvent.gateway_id, ending.gateway_id),
    ):
        if value is not None:
            picked.append(column == value)
    return and_(*picked)


# A person's open assignments are told by comparing `assigned_to` with a sub-select giving NULL rather than by
# `assigned_to IS NULL`: that condition matches the partial index of open assignments, and a planner with statistics
# of an emptied table reads every open assignment through it for each alert checked. Not seeing it, the planner
# finds the person's assignments through the index by person, and each one's position by the tag's id, whatever the
# statistics say.
_STILL_OPEN = select(null().cast(DateTime(timezone=True))).scalar_subquery()


def _over_now() -> ColumnElement[bool]:
    """Alerts whose situation the site's state shows is over, each kind its own way (see `resolution`)."""
    details = AlertEvent.details
    session_id = details["session_id"].astext.cast(BigInteger)
    last_seen = details["last_seen_at"].astext.cast(DateTime(timezone=True))
    camera_event_id = details["camera_event_id"].astext.cast(BigInteger)
    over = {
        Kind.gateway_offline: exists().where(Device.id == AlertEvent.gateway_id, Device.status == "online"),
        Kind.zone_entry: and_(
            details.has_key("session_id"),
            ~exists().where(PresenceSession.id == session_id, PresenceSession.ended_at.is_(None)),
        ),
        Kind.zone_absence: exists().where(
            PresenceSession.person_id == AlertEvent.person_id,
            PresenceSession.zone_id == AlertEvent.zone_id,
            or_(PresenceSession.ended_at.is_(None), PresenceSession.ended_at > AlertEvent.created_at),
        ),
        Kind.person_not_seen: exists().where(
            TagAssignment.person_id == AlertEvent.person_id,
            TagAssignment.assigned_to.is_not_distinct_from(_STILL_OPEN),
            select(TagPosition.last_seen_at).where(TagPosition.tag_id == TagAssignment.tag_id).scalar_subquery()
            > last_seen,
        ),
        Kind.camera_event: exists().where(CameraEvent.id == camera_event_id, CameraEvent.type == "end"),
    }
    return or_(*(and_(AlertEvent.kind == kind.value, condition) for kind, condition in over.items()))


async def resolve_ended(
    session: AsyncSession, now: datetime, endings: Sequence[Ending] | None = None
) -> list[AlertEvent]:
    """Resolve, as the system, the unresolved alerts marked `auto_resolve` whose situation is over: those the
    `endings` of an event pick, or (None) those the site's state shows over. One statement; an alert resolved
    meanwhile (by hand, or by another replica) is left as it is, so running it again changes nothing."""
    if endings is not None and not endings:
        return []
    return list((await session.scalars(_resolve_ended(now, endings))).all())


def _resolve_ended(now: datetime, endings: Sequence[Ending] | None) -> Update:
    condition = or_(*(_ended(ending) for ending in endings)) if endings is not None else _over_now()
    return (
        update(AlertEvent)
        .where(AlertEvent.auto_resolve.is_(True), AlertEvent.status.in_(UNRESOLVED), condition)
        .values(
            status="resolved",
            resolved_at=now,
            resolved_by_kind=SYSTEM,
            resolved_by_id=None,
            resolved_by_name=ENGINE,
            resolve_note=case({kind.value: note for kind, note in NOTES.items()}, value=AlertEvent.kind),
        )
        .returning(AlertEvent)
        .execution_options(synchronize_session=False, populate_existing=True)
    )

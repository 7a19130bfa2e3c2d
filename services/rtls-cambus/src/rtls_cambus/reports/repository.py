"""The reports' statements. Each is one `Select`, so a JSON page (`paginate`) and a CSV file (a cursor over the
whole result) read the same rows in the same order.

Presence comes from presence sessions overlapping the period, each cut to it: a session that began before the
period counts from the period's start, one still open counts until now (or the period's end, if earlier). The
overlap test is on `tstzrange(started_at, ended_at)`, the expression of the sessions' GiST index, so a period
reads only the sessions that touch it however long the history is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    Numeric,
    Select,
    Subquery,
    and_,
    bindparam,
    case,
    cast,
    distinct,
    exists,
    extract,
    func,
    literal_column,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY

from rtls_cambus.buildings.models import Building, Floor
from rtls_cambus.incidents.models import Incident, IncidentStatusChange
from rtls_cambus.people.models import Person, PersonGroupMember
from rtls_cambus.positions.models import PresenceSession
from rtls_cambus.reports.periods import Bucket, Period
from rtls_cambus.zones.models import Zone

TIMES = ARRAY(DateTime(timezone=True))
PERCENTILES = literal_column("ARRAY[0.5, 0.9, 0.95]::float8[]", ARRAY(Float))
"""p50, p90 and p95, computed in one sort by `percentile_cont`."""
RESOLVED_STATES: Sequence[str] = ("resolved", "closed")


@dataclass(frozen=True)
class PresenceFilters:
    building_id: int | None = None
    floor_id: int | None = None
    zone_id: int | None = None
    person_id: int | None = None
    group_id: int | None = None


@dataclass(frozen=True)
class IncidentFilters:
    severity: str | None = None
    support_group_id: int | None = None
    building_id: int | None = None
    floor_id: int | None = None
    zone_id: int | None = None


def clipped_sessions(period: Period, filters: PresenceFilters, now: datetime) -> Subquery:
    """Sessions overlapping `period` that match `filters`, with `entered_at` and `left_at` cut to the period
    (and an open session's end to `now`); sessions left with no time inside it are dropped."""
    session = PresenceSession
    entered = func.greatest(session.started_at, period.start)
    left = func.least(func.coalesce(session.ended_at, now), period.end)
    statement = select(
        session.person_id,
        session.zone_id,
        entered.label("entered_at"),
        left.label("left_at"),
    ).where(
        func.tstzrange(session.started_at, session.ended_at).op("&&")(func.tstzrange(period.start, period.end)),
        left > entered,
    )
    if filters.building_id is not None:
        statement = statement.where(session.building_id == filters.building_id)
    if filters.floor_id is not None:
        statement = statement.where(session.floor_id == filters.floor_id)
    if filters.zone_id is not None:
        statement = statement.where(session.zone_id == filters.zone_id)
    if filters.person_id is not None:
        statement = statement.where(session.person_id == filters.person_id)
    if filters.group_id is not None:
        statement = statement.where(
            exists().where(
                PersonGroupMember.person_id == session.person_id, PersonGroupMember.group_id == filters.group_id
            )
        )
    return statement.subquery("clipped")


def _seconds(clipped: Subquery) -> Any:
    return extract("epoch", clipped.c.left_at - clipped.c.entered_at)


def presence_by_person(period: Period, filters: PresenceFilters, now: datetime) -> Select[Any]:
    """One row per person: sessions, distinct zones, time, first and last moment seen; most time first."""
    clipped = clipped_sessions(period, filters, now)
    seconds = cast(func.round(func.sum(_seconds(clipped))), BigInteger)
    return (
        select(
            clipped.c.person_id,
            Person.full_name.label("person_name"),
            func.count().label("sessions"),
            func.count(distinct(clipped.c.zone_id)).label("zones"),
            seconds.label("seconds"),
            func.min(clipped.c.entered_at).label("first_seen_at"),
            func.max(clipped.c.left_at).label("last_seen_at"),
        )
        .select_from(clipped)
        .outerjoin(Person, Person.id == clipped.c.person_id)
        .group_by(clipped.c.person_id, Person.full_name)
        .order_by(seconds.desc(), clipped.c.person_id)
    )


def presence_by_zone(period: Period, filters: PresenceFilters, now: datetime) -> Select[Any]:
    """One row per zone: sessions, distinct people, person-seconds, mean and longest session; most time first.
    Names come from the catalogue as it is now."""
    clipped = clipped_sessions(period, filters, now)
    each = _seconds(clipped)
    seconds = cast(func.round(func.sum(each)), BigInteger)
    return (
        select(
            clipped.c.zone_id,
            Zone.name.label("zone_name"),
            Zone.restricted.label("zone_restricted"),
            Floor.id.label("floor_id"),
            Floor.name.label("floor_name"),
            Building.id.label("building_id"),
            Building.name.label("building_name"),
            func.count().label("sessions"),
            func.count(distinct(clipped.c.person_id)).label("people"),
            seconds.label("seconds"),
            func.round(func.avg(each), 3).label("average_seconds"),
            cast(func.round(func.max(each)), BigInteger).label("longest_seconds"),
        )
        .select_from(clipped)
        .outerjoin(Zone, Zone.id == clipped.c.zone_id)
        .outerjoin(Floor, Floor.id == Zone.floor_id)
        .outerjoin(Building, Building.id == Floor.building_id)
        .group_by(clipped.c.zone_id, Zone.id, Floor.id, Building.id)
        .order_by(seconds.desc(), clipped.c.zone_id)
    )


def occupancy(period: Period, filters: PresenceFilters, now: datetime, buckets: Sequence[Bucket]) -> Select[Any]:
    """One row per bucket and zone, in bucket order: distinct people and person-minutes. Every bucket is listed
    for each zone someone was in during the period (with zeros where nobody was), and for the zone of the
    `zone_id` filter whether or not anyone was.

    Each session is spread over the buckets it touches only: `width_bucket` finds the first and last by binary
    search in the bucket starts, so the work grows with the sessions, not with sessions times buckets.
    """
    starts = bindparam("bucket_starts", [bucket.start for bucket in buckets], type_=TIMES)
    ends = bindparam("bucket_ends", [bucket.end for bucket in buckets], type_=TIMES)
    bounds = (
        func.unnest(starts, ends)
        .table_valued("bucket_start", "bucket_end", with_ordinality="n")
        .render_derived(name="bounds")
    )
    grid = select(bounds.c.n, bounds.c.bucket_start, bounds.c.bucket_end).cte("grid")
    clipped = clipped_sessions(period, filters, now)
    numbers = (
        func.generate_series(
            func.width_bucket(clipped.c.entered_at, starts), func.width_bucket(clipped.c.left_at, starts)
        )
        .table_valued("n")
        .render_derived(name="numbers")
        .lateral()
    )
    overlap = extract(
        "epoch",
        func.least(clipped.c.left_at, grid.c.bucket_end) - func.greatest(clipped.c.entered_at, grid.c.bucket_start),
    )
    pieces = (
        select(clipped.c.person_id, clipped.c.zone_id, numbers.c.n, overlap.label("seconds"))
        .select_from(clipped.join(numbers, true()).join(grid, grid.c.n == numbers.c.n))
        .subquery("pieces")
    )
    totals = (
        select(
            pieces.c.n,
            pieces.c.zone_id,
            func.count(distinct(pieces.c.person_id)).label("people"),
            func.sum(pieces.c.seconds).label("seconds"),
        )
        .where(pieces.c.seconds > 0)
        .group_by(pieces.c.n, pieces.c.zone_id)
        .cte("totals")
    )
    seen = select(totals.c.zone_id)
    listed = (
        seen.union(select(Zone.id).where(Zone.id == filters.zone_id))
        if filters.zone_id is not None
        else seen.distinct()
    )
    zones = listed.subquery("listed_zones")
    minutes = func.round(cast(func.coalesce(totals.c.seconds, 0), Numeric) / 60, 2)
    return (
        select(
            grid.c.bucket_start,
            grid.c.bucket_end,
            zones.c.zone_id,
            Zone.name.label("zone_name"),
            Zone.floor_id.label("floor_id"),
            Floor.building_id.label("building_id"),
            func.coalesce(totals.c.people, 0).label("people"),
            minutes.label("person_minutes"),
        )
        .select_from(grid)
        .join(zones, true())
        .outerjoin(totals, and_(totals.c.n == grid.c.n, totals.c.zone_id == zones.c.zone_id))
        .outerjoin(Zone, Zone.id == zones.c.zone_id)
        .outerjoin(Floor, Floor.id == Zone.floor_id)
        .order_by(grid.c.n, zones.c.zone_id)
    )


def _entered(status: str, first: bool) -> Any:
    changed_at = IncidentStatusChange.changed_at
    return (
        select(func.min(changed_at) if first else func.max(changed_at))
        .where(IncidentStatusChange.incident_id == Incident.id, IncidentStatusChange.to_status == status)
        .scalar_subquery()
    )


def _duration_stats(column: Any, name: str) -> list[Any]:
    return [
        func.count(column).label(f"{name}_count"),
        func.avg(column).label(f"{name}_average"),
        func.percentile_cont(PERCENTILES).within_group(column).label(f"{name}_percentiles"),
        func.max(column).label(f"{name}_max"),
    ]


def incident_times(period: Period, filters: IncidentFilters) -> Select[Any]:
    """Per severity, and for all of them (`all_severities` = 1), the incidents opened in the period and the
    seconds from opening to the first acknowledgement and to the resolution that held, from the status history:
    count, mean, p50/p90/p95 and maximum."""
    acknowledged = _entered("acknowledged", first=True)
    resolved = _entered("resolved", first=False)
    statement = select(
        Incident.severity,
        extract("epoch", acknowledged - Incident.created_at).label("to_acknowledge"),
        case(
            (Incident.status.in_(RESOLVED_STATES), extract("epoch", resolved - Incident.created_at)),
        ).label("to_resolve"),
    ).where(Incident.created_at >= period.start, Incident.created_at < period.end)
    if filters.severity is not None:
        statement = statement.where(Incident.severity == filters.severity)
    if filters.support_group_id is not None:
        statement = statement.where(Incident.support_group_id == filters.support_group_id)
    if filters.building_id is not None:
        statement = statement.where(Incident.building_id == filters.building_id)
    if filters.floor_id is not None:
        statement = statement.where(Incident.floor_id == filters.floor_id)
    if filters.zone_id is not None:
        statement = statement.where(Incident.zone_id == filters.zone_id)
    durations = statement.subquery("durations")
    return select(
        durations.c.severity,
        func.grouping(durations.c.severity).label("all_severities"),
        func.count().label("incidents"),
        *_duration_stats(durations.c.to_acknowledge, "to_acknowledge"),
        *_duration_stats(durations.c.to_resolve, "to_resolve"),
    ).group_by(func.grouping_sets(tuple_(durations.c.severity), tuple_()))

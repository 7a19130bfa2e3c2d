"""The dashboard's statements: who is on site by building and floor, and the counts of the summary's sections."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, distinct, func, literal, null, select, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from rtls_cambus.buildings.models import Building, Floor
from rtls_cambus.devices.models import Device
from rtls_cambus.incidents.models import Incident
from rtls_cambus.positions.models import PRESENT, TagPosition

UNRESOLVED: Sequence[str] = ("open", "acknowledged", "in_progress")
"""The statuses of an incident someone still has to work on."""

FLOOR_ROW = 0
BUILDING_ROW = 1
TOTAL_ROW = 3
"""`GROUPING(building_id, floor_id)` of a floor's row, a building's row and the site's total."""


async def people_on_site(session: AsyncSession, heard_after: datetime) -> Sequence[Row[Any]]:
    """People present and heard since `heard_after`: one row per floor, per building and for the whole site
    (`grouping_level` tells which), each counting distinct people, with the building's and floor's names.

    A person carrying two tags counts once in the total even when the tags are on two floors.
    """
    building_id, floor_id = TagPosition.building_id, TagPosition.floor_id
    counted = (
        select(
            building_id,
            floor_id,
            func.grouping(building_id, floor_id).label("grouping_level"),
            func.count(distinct(TagPosition.person_id)).label("people"),
        )
        .where(
            TagPosition.status == PRESENT,
            TagPosition.person_id.is_not(None),
            TagPosition.last_seen_at >= heard_after,
        )
        .group_by(func.grouping_sets(tuple_(building_id, floor_id), tuple_(building_id), tuple_()))
        .subquery("counted")
    )
    statement = (
        select(
            counted.c.grouping_level,
            counted.c.building_id,
            Building.name.label("building_name"),
            counted.c.floor_id,
            Floor.name.label("floor_name"),
            Floor.level.label("floor_level"),
            counted.c.people,
        )
        .outerjoin(Building, Building.id == counted.c.building_id)
        .outerjoin(Floor, Floor.id == counted.c.floor_id)
        .order_by(Building.name.nulls_last(), counted.c.building_id, Floor.level, counted.c.floor_id)
    )
    return (await session.execute(statement)).all()


def _devices() -> Any:
    return select(
        Device.kind.label("section"), Device.status.label("key"), null().label("detail"), func.count().label("amount")
    ).group_by(Device.kind, Device.status)


def _open_incidents() -> Any:
    return (
        select(
            literal("incident").label("section"),
            Incident.severity.label("key"),
            Incident.status.label("detail"),
            func.count().label("amount"),
        )
        .where(Incident.status.in_(UNRESOLVED))
        .group_by(Incident.severity, Incident.status)
    )


async def section_counts(session: AsyncSession) -> Sequence[Row[Any]]:
    """`(section, key, detail, amount)` rows: devices as `(kind, status, null, n)`, open incidents as
    `("incident", severity, status, n)`. Each section of the summary is one branch of this union."""
    return (await session.execute(union_all(_devices(), _open_incidents()))).all()

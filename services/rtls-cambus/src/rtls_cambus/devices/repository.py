"""Queries of devices and camera groups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate_scalars
from rtls_cambus.devices.models import CameraGroup, CameraGroupMember, Device
from rtls_cambus.rows import like_pattern


@dataclass(frozen=True)
class DeviceFilters:
    kind: str | None = None
    building_id: int | None = None
    floor_id: int | None = None
    zone_id: int | None = None
    status: str | None = None
    assigned: bool | None = None
    group_id: int | None = None
    search: str | None = None


async def list_devices(
    session: AsyncSession, filters: DeviceFilters, *, offset: int, limit: int
) -> tuple[Sequence[Device], int]:
    query = select(Device).order_by(Device.kind, Device.id)
    if filters.kind is not None:
        query = query.where(Device.kind == filters.kind)
    if filters.building_id is not None:
        query = query.where(Device.building_id == filters.building_id)
    if filters.floor_id is not None:
        query = query.where(Device.floor_id == filters.floor_id)
    if filters.zone_id is not None:
        query = query.where(Device.zone_id == filters.zone_id)
    if filters.status is not None:
        query = query.where(Device.status == filters.status)
    if filters.assigned is not None:
        query = query.where(Device.floor_id.is_not(None) if filters.assigned else Device.floor_id.is_(None))
    if filters.group_id is not None:
        query = query.where(
            exists().where(CameraGroupMember.device_id == Device.id, CameraGroupMember.group_id == filters.group_id)
        )
    if filters.search:
        pattern = like_pattern(filters.search)
        query = query.where(
            or_(
                Device.name.ilike(pattern, escape="\\"),
                Device.mac.ilike(pattern, escape="\\"),
                Device.code.ilike(pattern, escape="\\"),
            )
        )
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def get_device(session: AsyncSession, kind: str, device_id: int) -> Device | None:
    return await session.scalar(select(Device).where(Device.id == device_id, Device.kind == kind))


async def list_groups(
    session: AsyncSession, search: str | None, *, offset: int, limit: int
) -> tuple[Sequence[CameraGroup], int]:
    query = select(CameraGroup).order_by(CameraGroup.name, CameraGroup.id)
    if search:
        query = query.where(CameraGroup.name.ilike(like_pattern(search), escape="\\"))
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def get_group(session: AsyncSession, group_id: int) -> CameraGroup | None:
    return await session.get(CameraGroup, group_id)


async def add_member(session: AsyncSession, group_id: int, device_id: int) -> None:
    statement = insert(CameraGroupMember).values(group_id=group_id, device_id=device_id).on_conflict_do_nothing()
    await session.execute(statement)


async def remove_member(session: AsyncSession, group_id: int, device_id: int) -> bool:
    statement = (
        delete(CameraGroupMember)
        .where(CameraGroupMember.group_id == group_id, CameraGroupMember.device_id == device_id)
        .returning(CameraGroupMember.device_id)
    )
    return (await session.execute(statement)).first() is not None

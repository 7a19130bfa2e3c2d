"""Queries of devices, sensors and device MQTT credentials.

Devices, sensors and latest values live in each tenant's schema (`tenancy.tables`); their names resolve through
the search path that `TenantScope` (`enter_tenant`) sets for the transaction.
Credentials live in the central table `telemetry_ingest.device_credentials` (`DeviceCredential`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Row, Select, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.repository import LAST_USED_RESOLUTION
from mirante.db import paginate
from telemetry_ingest.tenancy.models import DeviceCredential
from telemetry_ingest.tenancy.tables import devices, latest_readings, sensors

DEVICE_SORTS: Final = {
    "device_id": (devices.c.device_id,),
    "name": (devices.c.name, devices.c.device_id),
    "first_seen": (devices.c.first_seen, devices.c.device_id),
    "last_seen": (devices.c.last_seen, devices.c.device_id),
}
"""Sort keys of the device list; ties are broken by device id in the same direction."""


@dataclass(frozen=True)
class DeviceFilters:
    """Filters of the device list: `search` in id or name (case-insensitive), exact site and asset, labels."""

    search: str | None = None
    site: str | None = None
    asset: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    """label key → value: the device must carry each pair."""
    label_keys: Sequence[str] = ()
    """label keys the device must carry, whatever their value."""


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(query: Select[Any], filters: DeviceFilters) -> Select[Any]:
    if filters.search:
        pattern = _like_pattern(filters.search)
        query = query.where(
            or_(devices.c.device_id.ilike(pattern, escape="\\"), devices.c.name.ilike(pattern, escape="\\"))
        )
    if filters.site is not None:
        query = query.where(devices.c.site == filters.site)
    if filters.asset is not None:
        query = query.where(devices.c.asset == filters.asset)
    if filters.labels:
        query = query.where(devices.c.labels.contains(dict(filters.labels)))
    for key in filters.label_keys:
        query = query.where(devices.c.labels.has_key(key))
    return query


def _sensor_count() -> Any:
    return (
        select(func.count())
        .select_from(sensors)
        .where(sensors.c.device_id == devices.c.device_id)
        .scalar_subquery()
        .label("sensor_count")
    )


async def list_devices(
    session: AsyncSession, filters: DeviceFilters, *, sort: str, offset: int, limit: int
) -> tuple[Sequence[Row[Any]], int]:
    """A page of devices with their sensor counts, and how many devices match in all."""
    descending = sort.startswith("-")
    columns = DEVICE_SORTS[sort.removeprefix("-")]
    order = [column.desc().nulls_last() if descending else column.asc().nulls_last() for column in columns]
    query = _filtered(select(devices, _sensor_count()), filters).order_by(*order)
    return await paginate(session, query, offset=offset, limit=limit)


async def get_device(session: AsyncSession, device_id: str) -> Row[Any] | None:
    """One device with its sensor count, or None."""
    query = select(devices, _sensor_count()).where(devices.c.device_id == device_id)
    return (await session.execute(query)).first()


async def device_exists(session: AsyncSession, device_id: str) -> bool:
    return bool(
        await session.scalar(select(select(devices.c.device_id).where(devices.c.device_id == device_id).exists()))
    )


def _sensors_with_latest() -> Select[Any]:
    return select(
        sensors,
        latest_readings.c.ts.label("latest_ts"),
        latest_readings.c.value.label("latest_value"),
        latest_readings.c.unit.label("latest_unit"),
        latest_readings.c.received_at.label("latest_received_at"),
    ).select_from(
        sensors.outerjoin(
            latest_readings,
            and_(latest_readings.c.device_id == sensors.c.device_id, latest_readings.c.sensor == sensors.c.sensor),
        )
    )


async def device_sensors(session: AsyncSession, device_id: str) -> Sequence[Row[Any]]:
    """The sensors of a device by sensor type, each with its latest reading (`latest_*` columns, NULL if none)."""
    query = _sensors_with_latest().where(sensors.c.device_id == device_id).order_by(sensors.c.sensor)
    rows: Sequence[Row[Any]] = (await session.execute(query)).all()
    return rows


async def get_sensor(session: AsyncSession, device_id: str, sensor: str) -> Row[Any] | None:
    """One sensor with its latest reading (`latest_*` columns), or None."""
    query = _sensors_with_latest().where(sensors.c.device_id == device_id, sensors.c.sensor == sensor)
    row: Row[Any] | None = (await session.execute(query)).first()
    return row


async def insert_device(session: AsyncSession, values: Mapping[str, Any]) -> bool:
    """Insert a device first and last seen now; False when the device id exists already."""
    now = func.now()
    statement = (
        insert(devices)
        .values(**values, first_seen=now, last_seen=now)
        .on_conflict_do_nothing(index_elements=[devices.c.device_id])
        .returning(devices.c.device_id)
    )
    return (await session.execute(statement)).first() is not None


async def update_device(session: AsyncSession, device_id: str, values: Mapping[str, Any]) -> bool:
    """Change the given columns of a device; False when there is no such device."""
    if not values:
        return await device_exists(session, device_id)
    statement = update(devices).where(devices.c.device_id == device_id).values(**values).returning(devices.c.device_id)
    return (await session.execute(statement)).first() is not None


async def update_sensor(session: AsyncSession, device_id: str, sensor: str, values: Mapping[str, Any]) -> bool:
    """Change the given columns of a sensor; False when the device has no such sensor."""
    where = and_(sensors.c.device_id == device_id, sensors.c.sensor == sensor)
    if not values:
        return bool(await session.scalar(select(select(sensors.c.sensor).where(where).exists())))
    statement = update(sensors).where(where).values(**values).returning(sensors.c.sensor)
    return (await session.execute(statement)).first() is not None


# --- credentials (central schema) ---------------------------------------------------------------------------


async def get_credential(session: AsyncSession, username: str, *, for_update: bool = False) -> DeviceCredential | None:
    """The credential row of a device username (active or revoked), or None when none was ever issued."""
    query = select(DeviceCredential).where(DeviceCredential.username == username)
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def save_credential(
    session: AsyncSession, *, tenant: str, device_id: str, username: str, secret_hash: str
) -> DeviceCredential:
    """Store a new secret for a device: insert its row, or replace the secret of the existing one.

    One row per device username (the column is unique), so issuing again replaces the hash in place: the old
    secret stops working in the same transaction, and `created_at` becomes the time of the new secret.
    """
    statement = (
        insert(DeviceCredential)
        .values(tenant_slug=tenant, device_id=device_id, username=username, secret_hash=secret_hash)
        .on_conflict_do_update(
            index_elements=[DeviceCredential.username],
            set_={"secret_hash": secret_hash, "created_at": func.now(), "last_used_at": None, "revoked_at": None},
        )
        .returning(DeviceCredential)
        .execution_options(populate_existing=True)
    )
    credential = await session.scalar(statement)
    assert credential is not None
    return credential


async def revoke_credential(session: AsyncSession, credential: DeviceCredential) -> None:
    """Mark a credential revoked now."""
    credential.revoked_at = func.now()
    await session.flush()
    await session.refresh(credential, ["revoked_at"])


@dataclass(frozen=True, slots=True)
class ActiveCredential:
    """What the broker check needs of an active credential."""

    id: int
    tenant: str
    device_id: str
    secret_hash: str
    last_used_at: datetime | None


async def active_credential(session: AsyncSession, username: str) -> ActiveCredential | None:
    """The active (not revoked) credential of a device username, or None. One indexed read, no ORM identity map."""
    query = select(
        DeviceCredential.id,
        DeviceCredential.tenant_slug,
        DeviceCredential.device_id,
        DeviceCredential.secret_hash,
        DeviceCredential.last_used_at,
    ).where(DeviceCredential.username == username, DeviceCredential.revoked_at.is_(None))
    row = (await session.execute(query)).first()
    if row is None:
        return None
    return ActiveCredential(
        id=row.id,
        tenant=row.tenant_slug,
        device_id=row.device_id,
        secret_hash=row.secret_hash,
        last_used_at=row.last_used_at,
    )


async def has_active_credential(session: AsyncSession, username: str) -> bool:
    query = select(DeviceCredential.id).where(
        DeviceCredential.username == username, DeviceCredential.revoked_at.is_(None)
    )
    return bool(await session.scalar(select(query.exists())))


async def touch_credential(session: AsyncSession, credential: ActiveCredential, now: datetime) -> None:
    """Record a successful login, at most once per minute per device.

    A reconnecting fleet would otherwise rewrite its rows on every connect; SKIP LOCKED makes a login that
    races another one for the same row skip the stamp rather than wait for it.
    """
    if credential.last_used_at is not None and now - credential.last_used_at < LAST_USED_RESOLUTION:
        return
    stale = (
        select(DeviceCredential.id)
        .where(
            DeviceCredential.id == credential.id,
            or_(
                DeviceCredential.last_used_at.is_(None),
                DeviceCredential.last_used_at < now - LAST_USED_RESOLUTION,
            ),
        )
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = update(DeviceCredential).where(DeviceCredential.id == stale).values(last_used_at=now)
    await session.execute(statement.execution_options(synchronize_session=False))

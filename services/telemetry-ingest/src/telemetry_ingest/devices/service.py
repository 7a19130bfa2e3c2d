"""Devices and sensors of a tenant (list, detail, registration, metadata) and their MQTT credentials.

Every function runs on a session already scoped to the tenant (`TenantScope`) and in the caller's transaction:
`flush`, never `commit`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.apikeys import SECRET_BYTES, hash_api_key
from mirante.bus import Event, emit
from telemetry_ingest.devices import repository
from telemetry_ingest.devices.errors import (
    CredentialsNotFoundError,
    DeviceExistsError,
    DeviceNotFoundError,
    SensorNotFoundError,
)
from telemetry_ingest.devices.identity import device_username
from telemetry_ingest.devices.repository import DeviceFilters
from telemetry_ingest.devices.schemas import (
    CredentialIssued,
    CredentialRead,
    DeviceCreate,
    DeviceDetail,
    DeviceSummary,
    SensorRead,
)
from telemetry_ingest.identifiers import TOPIC_TEMPLATE
from telemetry_ingest.tenancy.models import DeviceCredential
from telemetry_ingest.tenancy.service import SCHEMA, SOURCE

logger = logging.getLogger(__name__)

DEVICE_REGISTERED = "telemetry.device.registered"


async def list_devices(
    session: AsyncSession, filters: DeviceFilters, *, sort: str, offset: int, limit: int
) -> tuple[list[DeviceSummary], int]:
    """A page of the tenant's devices and the number of matching devices."""
    rows, count = await repository.list_devices(session, filters, sort=sort, offset=offset, limit=limit)
    return [DeviceSummary.of(row) for row in rows], count


async def get_device(session: AsyncSession, tenant: str, device_id: str) -> DeviceDetail:
    """A device with its sensors and their latest values; `DeviceNotFoundError` (404) when unknown."""
    row = await repository.get_device(session, device_id)
    if row is None:
        raise DeviceNotFoundError(tenant, device_id)
    sensors = [SensorRead.of(sensor) for sensor in await repository.device_sensors(session, device_id)]
    return DeviceDetail.build(row, sensors)


async def register_device(session: AsyncSession, tenant: str, body: DeviceCreate) -> DeviceDetail:
    """Register a device before it publishes (first and last seen: now) and queue `telemetry.device.registered`.

    `DeviceExistsError` (409) when the device is known, whether registered here or by its readings.
    """
    values = body.model_dump(exclude={"device_id"})
    if not await repository.insert_device(session, {"device_id": body.device_id, **values}):
        raise DeviceExistsError(body.device_id)
    device = await get_device(session, tenant, body.device_id)
    await emit(
        session,
        SCHEMA,
        Event(
            source=SOURCE,
            type=DEVICE_REGISTERED,
            subject=f"tenant/{tenant}/device/{body.device_id}",
            tenant=tenant,
            data={
                "tenant": tenant,
                "device_id": device.device_id,
                "name": device.name,
                "site": device.site,
                "asset": device.asset,
                "labels": device.labels,
                "first_seen": device.first_seen.isoformat(),
                "registered_by": "api",
            },
        ),
    )
    logger.info("device %s of tenant %s registered through the API", body.device_id, tenant)
    return device


async def update_device(session: AsyncSession, tenant: str, device_id: str, changes: Mapping[str, Any]) -> DeviceDetail:
    """Change name, labels, site or asset of a device; `DeviceNotFoundError` (404) when unknown."""
    if not await repository.update_device(session, device_id, changes):
        raise DeviceNotFoundError(tenant, device_id)
    return await get_device(session, tenant, device_id)


async def update_sensor(
    session: AsyncSession, tenant: str, device_id: str, sensor: str, changes: Mapping[str, Any]
) -> SensorRead:
    """Change name, unit or labels of a sensor; 404 when the device or its sensor is unknown."""
    if not await repository.update_sensor(session, device_id, sensor, changes):
        if not await repository.device_exists(session, device_id):
            raise DeviceNotFoundError(tenant, device_id)
        raise SensorNotFoundError(device_id, sensor)
    row = await repository.get_sensor(session, device_id, sensor)
    assert row is not None
    return SensorRead.of(row)


def _credential_read(credential: DeviceCredential) -> CredentialRead:
    return CredentialRead(
        tenant=credential.tenant_slug,
        device_id=credential.device_id,
        username=credential.username,
        active=credential.revoked_at is None,
        created_at=credential.created_at,
        last_used_at=credential.last_used_at,
        revoked_at=credential.revoked_at,
    )


def new_device_secret() -> str:
    """A random MQTT password with 256 bits of entropy (URL-safe, 43 characters)."""
    return secrets.token_urlsafe(SECRET_BYTES)


async def issue_credentials(session: AsyncSession, tenant: str, device_id: str) -> CredentialIssued:
    """Create the device's MQTT credentials, or rotate them: a new secret replaces the old one at once.

    The device must be known (404 otherwise: register it first). The secret is returned here only; the
    database keeps its SHA-256, which suffices for a 256-bit random secret.
    """
    if not await repository.device_exists(session, device_id):
        raise DeviceNotFoundError(tenant, device_id)
    username = device_username(tenant, device_id)
    previous = await repository.get_credential(session, username, for_update=True)
    replaced_active = previous is not None and previous.revoked_at is None
    secret = new_device_secret()
    credential = await repository.save_credential(
        session, tenant=tenant, device_id=device_id, username=username, secret_hash=hash_api_key(secret)
    )
    logger.info(
        "MQTT credentials of device %s of tenant %s %s", device_id, tenant, "rotated" if replaced_active else "issued"
    )
    return CredentialIssued(
        tenant=tenant,
        device_id=device_id,
        username=username,
        secret=secret,
        created_at=credential.created_at,
        replaced_active=replaced_active,
        publish_topic=TOPIC_TEMPLATE.format(tenant=tenant, device_id=device_id, sensor_type="{sensor_type}"),
    )


async def get_credentials(session: AsyncSession, tenant: str, device_id: str) -> CredentialRead:
    """The device's credential metadata (never the secret); 404 when none were ever issued."""
    credential = await repository.get_credential(session, device_username(tenant, device_id))
    if credential is None:
        if not await repository.device_exists(session, device_id):
            raise DeviceNotFoundError(tenant, device_id)
        raise CredentialsNotFoundError(device_id)
    return _credential_read(credential)


async def revoke_credentials(session: AsyncSession, tenant: str, device_id: str) -> CredentialRead:
    """Revoke the device's active credentials: the broker refuses its next login. 404 when none are active."""
    credential = await repository.get_credential(session, device_username(tenant, device_id), for_update=True)
    if credential is None or credential.revoked_at is not None:
        if credential is None and not await repository.device_exists(session, device_id):
            raise DeviceNotFoundError(tenant, device_id)
        raise CredentialsNotFoundError(device_id, f"device {device_id!r} has no active MQTT credentials")
    await repository.revoke_credential(session, credential)
    logger.info("MQTT credentials of device %s of tenant %s revoked", device_id, tenant)
    return _credential_read(credential)

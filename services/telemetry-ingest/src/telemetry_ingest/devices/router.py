"""HTTP endpoints of a tenant's devices: `/api/v1/tenants/{tenant}/devices[...]`.

Viewers read; operators register devices and change device and sensor metadata; admins manage MQTT credentials.
Staff reach every tenant, other callers only their own (`TenantScope`, `TenantOperator`, `TenantAdmin`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from mirante.web.pagination import Page, Pagination
from telemetry_ingest.devices import service
from telemetry_ingest.devices.schemas import (
    CredentialIssued,
    CredentialRead,
    DeviceCreate,
    DeviceDetail,
    DeviceFilterParams,
    DeviceIdPath,
    DeviceSort,
    DeviceSummary,
    DeviceUpdate,
    SensorPath,
    SensorRead,
    SensorUpdate,
)
from telemetry_ingest.tenancy.deps import TenantAdmin, TenantOperator, TenantScope

router = APIRouter(prefix="/api/v1/tenants/{tenant}/devices", tags=["devices"])


@router.get("")
async def list_devices(
    scope: TenantScope,
    pagination: Pagination,
    filters: DeviceFilterParams,
    sort: Annotated[DeviceSort, Query(description="sort key, `-` for descending")] = "device_id",
) -> Page[DeviceSummary]:
    """The tenant's devices, filtered by text, site, asset and labels, with how many sensors each has."""
    devices, count = await service.list_devices(
        scope.session, filters, sort=sort, offset=pagination.offset, limit=pagination.limit
    )
    return pagination.build(devices, count)


@router.post("", status_code=status.HTTP_201_CREATED, responses={409: {"description": "the device id is taken"}})
async def register_device(scope: TenantOperator, body: DeviceCreate, response: Response) -> DeviceDetail:
    """Register a device before it publishes (operators), e.g. to give it MQTT credentials.

    Devices also register themselves with their first reading. 409 when the device is known.
    """
    device = await service.register_device(scope.session, scope.slug, body)
    response.headers["Location"] = f"/api/v1/tenants/{scope.slug}/devices/{device.device_id}"
    return device


@router.get("/{device_id}")
async def get_device(scope: TenantScope, device_id: DeviceIdPath) -> DeviceDetail:
    """One device with its sensors (name, unit, labels, first and last seen) and each sensor's latest reading."""
    return await service.get_device(scope.session, scope.slug, device_id)


@router.patch("/{device_id}")
async def update_device(scope: TenantOperator, device_id: DeviceIdPath, body: DeviceUpdate) -> DeviceDetail:
    """Change a device's name, labels, site or asset (operators); omitted fields stay, null clears."""
    return await service.update_device(scope.session, scope.slug, device_id, body.changes())


@router.patch("/{device_id}/sensors/{sensor}")
async def update_sensor(
    scope: TenantOperator, device_id: DeviceIdPath, sensor: SensorPath, body: SensorUpdate
) -> SensorRead:
    """Change a sensor's name, unit or labels (operators); omitted fields stay, null clears."""
    return await service.update_sensor(scope.session, scope.slug, device_id, sensor, body.changes())


@router.post("/{device_id}/credentials", status_code=status.HTTP_201_CREATED)
async def issue_credentials(scope: TenantAdmin, device_id: DeviceIdPath, response: Response) -> CredentialIssued:
    """Create the device's MQTT credentials, or rotate them (admins): the previous secret stops working now.

    The answer holds the secret, shown only this once. The device logs in to the broker with username
    `<tenant>:<device_id>` and this secret. 404 when the device is unknown (register it first).
    """
    response.headers["Cache-Control"] = "no-store"
    return await service.issue_credentials(scope.session, scope.slug, device_id)


@router.get("/{device_id}/credentials")
async def get_credentials(scope: TenantAdmin, device_id: DeviceIdPath) -> CredentialRead:
    """The device's MQTT credentials without the secret: username, when issued, last used, revoked (admins)."""
    return await service.get_credentials(scope.session, scope.slug, device_id)


@router.delete("/{device_id}/credentials", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_credentials(scope: TenantAdmin, device_id: DeviceIdPath) -> None:
    """Revoke the device's MQTT credentials (admins): its next broker login is refused. 404 when none are active."""
    await service.revoke_credentials(scope.session, scope.slug, device_id)

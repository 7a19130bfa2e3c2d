"""Request and response bodies of devices (gateways, cameras) and camera groups."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mirante.types import REFUSES_NUL, Id64, Int32, JsonObject
from mirante.web.schema import Omittable
from rtls_cambus.fields import Body, Description, Name, Patch, ShortText
from rtls_cambus.identifiers import MacAddress

Kind = Literal["gateway", "camera"]
Status = Literal["unknown", "online", "offline"]

GatewayId = Annotated[Id64, Path(description="id of the gateway")]
CameraId = Annotated[Id64, Path(description="id of the camera")]
CameraGroupId = Annotated[Id64, Path(description="id of the camera group")]
KindFilter = Annotated[Kind | None, Query(description="only gateways or only cameras")]
StatusFilter = Annotated[Status | None, Query(description="only devices in this state")]
ZoneFilter = Annotated[Id64 | None, Query(description="only gateways of this zone")]
AssignedFilter = Annotated[
    bool | None, Query(description="only devices placed on a floor (true) or registered but unplaced (false)")
]
CameraGroupFilter = Annotated[Id64 | None, Query(description="only cameras of this group")]

Pixel = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False, description="pixels on the floor plan")]
RssiOffset = Annotated[Int32, Field(ge=-50, le=50, description="dB added to every reading of this gateway")]
RssiThreshold = Annotated[
    Int32, Field(ge=-127, le=0, description="dBm; readings weaker than this (after the offset) are ignored")
]
CameraCode = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$"),
    REFUSES_NUL,
    Field(description="code as the CAM-BUS topics carry it: 1 to 100 of `A-Z a-z 0-9 _ . : -`", examples=["cam-01"]),
]


class GatewayCreate(Body):
    """A gateway placed by hand; gateways that speak first register themselves without a floor."""

    mac: MacAddress
    name: ShortText | None = None
    floor_id: Id64 | None = Field(default=None, description="null leaves it unplaced")
    zone_id: Id64 | None = Field(default=None, description="a zone of the same floor")
    x_px: Pixel | None = None
    y_px: Pixel | None = None
    rssi_offset: RssiOffset = 0
    rssi_threshold: RssiThreshold | None = None


class GatewayUpdate(Patch):
    NOT_NULL = frozenset({"mac", "rssi_offset"})

    mac: Omittable[MacAddress] = None
    name: ShortText | None = None
    floor_id: Id64 | None = None
    zone_id: Id64 | None = None
    x_px: Pixel | None = None
    y_px: Pixel | None = None
    rssi_offset: Omittable[RssiOffset] = None
    rssi_threshold: RssiThreshold | None = None


class CameraCreate(Body):
    code: CameraCode
    building_id: Id64
    floor_id: Id64 | None = Field(default=None, description="a floor of the same building")
    name: ShortText | None = None
    info: JsonObject | None = None


class CameraUpdate(Patch):
    NOT_NULL = frozenset({"code", "building_id"})

    code: Omittable[CameraCode] = None
    building_id: Omittable[Id64] = None
    floor_id: Id64 | None = None
    name: ShortText | None = None
    info: JsonObject | None = None


class _DeviceBase(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: Kind
    name: str | None
    building_id: int | None
    floor_id: int | None
    status: Status
    last_seen_at: datetime | None
    created_at: datetime
    updated_at: datetime


class GatewayRead(_DeviceBase):
    mac: str
    zone_id: int | None
    x_px: float | None
    y_px: float | None
    rssi_offset: int
    rssi_threshold: int | None


class CameraRead(_DeviceBase):
    code: str
    info: dict[str, Any] | None


class DeviceRead(_DeviceBase):
    """Any device; the fields of the other kind are null."""

    mac: str | None
    zone_id: int | None
    x_px: float | None
    y_px: float | None
    rssi_offset: int | None
    rssi_threshold: int | None
    code: str | None
    info: dict[str, Any] | None


class CameraGroupCreate(Body):
    name: Name
    description: Description | None = None


class CameraGroupUpdate(Patch):
    NOT_NULL = frozenset({"name"})

    name: Omittable[Name] = None
    description: Description | None = None


class CameraGroupRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


class CameraMemberAdd(Body):
    device_id: Id64 = Field(description="id of a camera")

"""Response bodies and query parameters of positions and presence."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict

from mirante.types import DateTime, Id64

StatusFilter = Annotated[Literal["present", "unknown"] | None, Query(description="present or unknown")]
FreshFilter = Annotated[
    bool | None,
    Query(description="true: only tags heard within the freshness window; false: only those not heard within it"),
]
ZoneFilter = Annotated[Id64 | None, Query(description="only in this zone")]
GroupFilter = Annotated[Id64 | None, Query(description="only people of this person group")]
PersonFilter = Annotated[Id64 | None, Query(description="only this person")]
TagFilter = Annotated[Id64 | None, Query(description="only this tag")]
From = Annotated[DateTime | None, Query(alias="from", description="from this instant (RFC 3339 with offset)")]
To = Annotated[DateTime | None, Query(alias="to", description="before this instant (RFC 3339 with offset)")]
OpenFilter = Annotated[bool | None, Query(description="true: sessions still open; false: ended ones")]


class CurrentPosition(BaseModel):
    tag_id: int
    tag_mac: str
    person_id: int | None
    person_name: str | None
    status: str
    fresh: bool
    gateway_id: int | None
    gateway_mac: str | None
    gateway_name: str | None
    zone_id: int | None
    zone_name: str | None
    zone_restricted: bool | None
    floor_id: int | None
    floor_name: str | None
    floor_level: int | None
    building_id: int | None
    building_name: str | None
    x_px: float | None
    y_px: float | None
    rssi: float | None
    lead_db: float | None
    since: datetime | None
    last_seen_at: datetime | None


class PersonLocation(BaseModel):
    """Where a person is: the freshest of the tags they carry now; `status` unknown (places null) otherwise."""

    person_id: int
    status: str
    position: CurrentPosition | None


class HeardTag(BaseModel):
    tag_id: int
    tag_mac: str
    person_id: int | None
    person_name: str | None
    rssi: float
    last_heard_at: datetime
    placed_here: bool


class GatewayTags(BaseModel):
    gateway_id: int
    mac: str | None
    name: str | None
    floor_id: int | None
    zone_id: int | None
    status: str
    last_seen_at: datetime | None
    tags: list[HeardTag]


class PositionChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    tag_id: int
    tag_mac: str
    person_id: int | None
    status: str
    gateway_id: int | None
    zone_id: int | None
    zone_name: str | None
    floor_id: int | None
    building_id: int | None
    x_px: float | None
    y_px: float | None
    rssi: float | None
    at: datetime


class PresenceSessionRead(BaseModel):
    id: int
    person_id: int
    person_name: str | None
    tag_id: int
    zone_id: int
    zone_name: str | None
    zone_restricted: bool | None
    floor_id: int | None
    building_id: int | None
    started_at: datetime
    ended_at: datetime | None


class FeedTicket(BaseModel):
    ticket: str
    expires_in: int
    url: str


def row_dict(row: Any, entity: Any) -> dict[str, Any]:
    """The entity's columns and the row's labelled extras in one dict."""
    values = {column.key: getattr(entity, column.key) for column in entity.__table__.columns}
    values.update({key: value for key, value in row._mapping.items() if isinstance(key, str)})
    return values

"""Request and response bodies of zones."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from mirante.types import Id64
from mirante.web.schema import Omittable
from rtls_cambus.fields import Body, Description, Name, Patch

MAX_POLYGON_POINTS = 500

ZoneId = Annotated[Id64, Path(description="id of the zone")]
RestrictedFilter = Annotated[bool | None, Query(description="only restricted (true) or open (false) zones")]

PixelCoordinate = Annotated[float, Field(allow_inf_nan=False, ge=0, le=1_000_000)]
Polygon = Annotated[
    list[tuple[PixelCoordinate, PixelCoordinate]],
    Field(
        min_length=3,
        max_length=MAX_POLYGON_POINTS,
        description="the zone's outline on the floor plan: [[x, y], ...] in plan pixels, at least 3 points, "
        "inside the plan and not crossing itself; the floor must have a plan",
        examples=[[[10, 10], [200, 10], [200, 120], [10, 120]]],
    ),
]


class ZoneCreate(Body):
    floor_id: Id64
    name: Name
    description: Description | None = None
    restricted: StrictBool = Field(default=False, description="entering it is worth an alert")
    polygon: Polygon | None = None


class ZoneUpdate(Patch):
    """The floor of a zone cannot change: its gateways are on that floor."""

    NOT_NULL = frozenset({"name", "restricted"})

    name: Omittable[Name] = None
    description: Description | None = None
    restricted: Omittable[StrictBool] = None
    polygon: Polygon | None = None


class ZoneRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    floor_id: int
    name: str
    description: str | None
    restricted: bool
    polygon: list[Any] | None
    created_at: datetime
    updated_at: datetime

"""Request and response bodies of floor plans."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, computed_field

from mirante.types import Id64
from mirante.web.schema import Omittable
from rtls_cambus.fields import Patch, ShortText

PlanId = Annotated[Id64, Path(description="id of the floor plan")]

Scale = Annotated[
    float, Field(gt=0, le=100_000, allow_inf_nan=False, description="pixels per metre on the plan", examples=[50.0])
]
Coordinate = Annotated[
    float,
    Field(ge=-1_000_000, le=1_000_000, allow_inf_nan=False, description="pixels from the plan's left or top edge"),
]


class FloorPlanUpdate(Patch):
    NOT_NULL = frozenset({"scale_px_per_m", "origin_x_px", "origin_y_px"})

    name: ShortText | None = None
    scale_px_per_m: Omittable[Scale] = None
    origin_x_px: Omittable[Coordinate] = None
    origin_y_px: Omittable[Coordinate] = None


class FloorPlanRead(BaseModel):
    """A floor plan without its image; fetch the image from `image_url` with the same credentials."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    floor_id: int
    name: str | None
    content_type: str
    width_px: int
    height_px: int
    size_bytes: int
    sha256: str
    scale_px_per_m: float
    origin_x_px: float = Field(description="pixel column of the point (0 m, 0 m)")
    origin_y_px: float = Field(description="pixel row of the point (0 m, 0 m); metres grow down and to the right")
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def image_url(self) -> str:
        return f"/api/v1/floor-plans/{self.id}/image"

"""Request and response bodies of buildings and floors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mirante.types import REFUSES_NUL, Id64, Int32
from mirante.web.schema import Omittable
from rtls_cambus.fields import Body, Description, Name, Patch, ShortText

BuildingId = Annotated[Id64, Path(description="id of the building")]
FloorId = Annotated[Id64, Path(description="id of the floor")]

Code = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$"),
    REFUSES_NUL,
    Field(description="short name as the CAM-BUS topics carry it: 1 to 64 of `A-Z a-z 0-9 _ . -`", examples=["hq"]),
]
Level = Annotated[Int32, Field(ge=-200, le=500, description="0 for the ground floor, negative below it")]


class BuildingCreate(Body):
    name: Name
    code: Code | None = None
    address: ShortText | None = None
    description: Description | None = None


class BuildingUpdate(Patch):
    NOT_NULL = frozenset({"name"})

    name: Omittable[Name] = None
    code: Code | None = None
    address: ShortText | None = None
    description: Description | None = None


class BuildingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    code: str | None
    address: str | None
    description: str | None
    created_at: datetime
    updated_at: datetime


class FloorCreate(Body):
    building_id: Id64
    level: Level
    name: ShortText | None = None
    description: Description | None = None


class FloorUpdate(Patch):
    """The building of a floor cannot change: its plan, zones and gateways belong to it."""

    NOT_NULL = frozenset({"level"})

    level: Omittable[Level] = None
    name: ShortText | None = None
    description: Description | None = None


class FloorRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    building_id: int
    level: int
    name: str | None
    description: str | None
    created_at: datetime
    updated_at: datetime


LevelFilter = Annotated[Int32 | None, Query(description="only floors at this level")]

"""Request and response bodies of tags and their assignments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row

from mirante.types import Id64
from mirante.web.schema import Omittable
from rtls_cambus.fields import Body, Description, Patch, ShortText
from rtls_cambus.identifiers import MacAddress

TagId = Annotated[Id64, Path(description="id of the tag")]
PersonFilter = Annotated[Id64 | None, Query(description="only the tag this person carries now")]
AssignedFilter = Annotated[bool | None, Query(description="only tags someone carries (true) or nobody (false)")]


class TagCreate(Body):
    mac: MacAddress
    label: ShortText | None = Field(default=None, description="what is printed on the tag")
    notes: Description | None = None
    person_id: Id64 | None = Field(default=None, description="give the tag to this person at once")


class TagUpdate(Patch):
    NOT_NULL = frozenset({"mac"})

    mac: Omittable[MacAddress] = None
    label: ShortText | None = None
    notes: Description | None = None


class TagRead(BaseModel):
    id: int
    mac: str
    label: str | None
    notes: str | None
    person_id: int | None = Field(description="who carries it now; null when nobody")
    assigned_since: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Row[Any]) -> TagRead:
        values: tuple[Any, ...] = tuple(row)
        tag, person_id, assigned_from = values
        return cls(
            id=tag.id,
            mac=tag.mac,
            label=tag.label,
            notes=tag.notes,
            person_id=person_id,
            assigned_since=assigned_from,
            created_at=tag.created_at,
            updated_at=tag.updated_at,
        )


class AssignmentSet(Body):
    person_id: Id64


class AssignmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    tag_id: int
    person_id: int
    assigned_from: datetime
    assigned_to: datetime | None = Field(description="null while the person still carries the tag")

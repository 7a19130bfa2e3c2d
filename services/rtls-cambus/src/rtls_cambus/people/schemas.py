"""Request and response bodies of people and person groups."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from mirante.types import REFUSES_NUL, Id64
from mirante.web.schema import Omittable
from rtls_cambus.fields import Body, Description, Name, Patch

PersonId = Annotated[Id64, Path(description="id of the person")]
GroupId = Annotated[Id64, Path(description="id of the person group")]
ActiveFilter = Annotated[bool | None, Query(description="only active (true) or inactive (false) people")]
GroupFilter = Annotated[Id64 | None, Query(description="only members of this person group")]

ExternalId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=100),
    REFUSES_NUL,
    Field(description="badge or employee number, unique; null or blank clears it"),
]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=320), REFUSES_NUL]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=50), REFUSES_NUL]
JobTitle = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=100),
    REFUSES_NUL,
    Field(description="job title or visitor, at most 100 characters; null or blank clears it"),
]


class PersonCreate(Body):
    full_name: Name
    external_id: ExternalId | None = None
    email: Email | None = None
    phone: Phone | None = None
    role: JobTitle | None = None
    notes: Description | None = None
    active: StrictBool = True


class PersonUpdate(Patch):
    NOT_NULL = frozenset({"full_name", "active"})

    full_name: Omittable[Name] = None
    external_id: ExternalId | None = None
    email: Email | None = None
    phone: Phone | None = None
    role: JobTitle | None = None
    notes: Description | None = None
    active: Omittable[StrictBool] = None


class PersonRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    full_name: str
    external_id: str | None
    email: str | None
    phone: str | None
    role: str | None
    notes: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


class GroupCreate(Body):
    name: Name
    description: Description | None = None


class GroupUpdate(Patch):
    NOT_NULL = frozenset({"name"})

    name: Omittable[Name] = None
    description: Description | None = None


class GroupRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


class MemberAdd(Body):
    person_id: Id64

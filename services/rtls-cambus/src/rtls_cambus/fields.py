"""Request field types and body bases every catalogue feature uses."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Final, Self

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from mirante.types import REFUSES_NUL, Id64, NotBlank, Text
from rtls_cambus.rows import column_values

NAME_MAX_LENGTH: Final = 200
SEARCH_MAX_LENGTH: Final = 200

Name = Annotated[
    str,
    NotBlank(max_length=NAME_MAX_LENGTH),
    Field(description=f"1 to {NAME_MAX_LENGTH} characters, not only white space"),
]


Description = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=10_000),
    REFUSES_NUL,
    Field(description="free text, at most 10,000 characters; null or blank clears it"),
]
ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=200),
    REFUSES_NUL,
    Field(description="at most 200 characters; null or blank clears it"),
]

Search = Annotated[
    Text | None,
    Query(max_length=SEARCH_MAX_LENGTH, description="part of the name (any case)"),
]


class Severity(StrEnum):
    """How urgent an incident or an alert is."""

    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Patch(Body):
    """Omitted fields stay as they are; null clears an optional field. Fields named in `NOT_NULL` (declared
    `Omittable[...] = None`) may be omitted but not cleared."""

    NOT_NULL: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _required_not_null(self) -> Self:
        for name in self.NOT_NULL & self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, with their new values (blank optional text becomes null)."""
        return column_values({name: getattr(self, name) for name in self.model_fields_set})


def search_text(q: str | None) -> str | None:
    return q.strip() if q and q.strip() else None


BuildingFilter = Annotated[Id64 | None, Query(description="only those of this building")]
FloorFilter = Annotated[Id64 | None, Query(description="only those of this floor")]

"""Request and response bodies of the inspection-type catalogue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mirante.types import Text
from mirante.web.schema import Omittable
from vision_orchestrator.identifiers import TypeName

Description = Annotated[Text, Field(max_length=2000)]


class InspectionTypeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TypeName = Field(examples=["blob_detection"])
    description: Description = ""


class InspectionTypeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: Omittable[Description] = None

    @model_validator(mode="after")
    def _no_null(self) -> InspectionTypeUpdate:
        if "description" in self.model_fields_set and self.description is None:
            raise ValueError("description cannot be null")
        return self


class InspectionTypeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    description: str
    created_at: datetime
    updated_at: datetime

"""CVAT's job representation (`JobRead`), validated: only the fields the mirror relies on are required."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Status = Literal["annotation", "validation", "completed"]
STATUSES: tuple[Status, ...] = ("annotation", "validation", "completed")
STAGES = ("annotation", "validation", "acceptance")
STATES = ("new", "in progress", "completed", "rejected")


class InvalidJobPayloadError(ValueError):
    """A job object from CVAT (API or webhook) lacks a required field or has one of the wrong type."""


def derive_status(stage: str, state: str) -> Status:
    """CVAT's legacy job status, derived from stage and state the way CVAT derives it."""
    if stage == "annotation":
        return "annotation"
    if stage == "acceptance" and state == "completed":
        return "completed"
    return "validation"


class CvatUser(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int
    username: str


class CvatJob(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int = Field(gt=0)
    task_id: int | None = None
    task_name: str | None = None
    project_id: int | None = None
    project_name: str | None = None
    assignee: CvatUser | None = None
    stage: str = Field(min_length=1, max_length=20)
    state: str = Field(min_length=1, max_length=20)
    type: str | None = None
    frame_count: int | None = None
    created_date: datetime | None = None
    updated_date: datetime

    @property
    def status(self) -> Status:
        return derive_status(self.stage, self.state)

    @classmethod
    def parse(cls, raw: Any) -> CvatJob:
        """Validate a job object; `InvalidJobPayloadError` names the first bad fields."""
        if not isinstance(raw, dict):
            raise InvalidJobPayloadError("a job must be a JSON object")
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in item['loc']) or 'job'}: {item['msg']}" for item in error.errors()[:5]
            )
            raise InvalidJobPayloadError(f"invalid job: {problems}") from None


@dataclass(frozen=True)
class AnnotationCounts:
    """Counts from `/api/jobs/{id}/annotations`: shapes and tags are manual, tracks are interpolated objects."""

    manual: int
    interpolated: int

    @property
    def total(self) -> int:
        return self.manual + self.interpolated

    @classmethod
    def from_annotations(cls, data: Any) -> AnnotationCounts:
        if not isinstance(data, dict):
            raise InvalidJobPayloadError("annotations must be a JSON object")
        shapes, tags, tracks = (data.get(key) or [] for key in ("shapes", "tags", "tracks"))
        if not all(isinstance(items, list) for items in (shapes, tags, tracks)):
            raise InvalidJobPayloadError("annotations: shapes, tags and tracks must be lists")
        return cls(manual=len(shapes) + len(tags), interpolated=len(tracks))

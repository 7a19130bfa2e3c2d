"""CVAT's job representation (`JobRead`), validated: only the fields the mirror relies on are required."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from cvat_sync.cvat.errors import FieldProblem, InvalidJobPayloadError

Status = Literal["annotation", "validation", "completed"]
STATUSES: tuple[Status, ...] = ("annotation", "validation", "completed")
STAGES = ("annotation", "validation", "acceptance")
STATES = ("new", "in progress", "completed", "rejected")
MAX_BIGINT = 2**63 - 1
MAX_INT4 = 2**31 - 1
# CVAT stamps jobs with the server's clock: a date outside these bounds is a corrupt or forged value, and
# PostgreSQL would store year 1 as -infinity, which then compares with nothing.
EARLIEST_DATE = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_DATE = datetime(9999, 12, 31, tzinfo=UTC)


def _real_timestamp(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise PydanticCustomError("naive_datetime", "must carry a UTC offset (CVAT sends e.g. 2025-03-02T09:15:27Z)")
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise PydanticCustomError("date_out_of_range", "out of range: must be between 1970-01-01 and 9999-12-31")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "must not contain NUL characters")
    return value


CvatDate = Annotated[datetime, AfterValidator(_real_timestamp)]
Text = Annotated[str, AfterValidator(_no_nul)]
BigId = Annotated[int, Field(ge=-MAX_BIGINT - 1, le=MAX_BIGINT)]


def derive_status(stage: str, state: str) -> Status:
    """CVAT's legacy job status, derived from stage and state the way CVAT derives it."""
    if stage == "annotation":
        return "annotation"
    if stage == "acceptance" and state == "completed":
        return "completed"
    return "validation"


class CvatUser(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: BigId
    username: Text = Field(max_length=150)


class CvatJob(BaseModel):
    """The fields of a CVAT job the mirror stores, bounded as their columns are (ids bigint, counts int4)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int = Field(gt=0, le=MAX_BIGINT)
    task_id: BigId | None = None
    task_name: Text | None = Field(default=None, max_length=500)
    project_id: BigId | None = None
    project_name: Text | None = Field(default=None, max_length=500)
    assignee: CvatUser | None = None
    stage: Text = Field(min_length=1, max_length=20)
    state: Text = Field(min_length=1, max_length=20)
    type: Text | None = Field(default=None, max_length=30)
    frame_count: int | None = Field(default=None, ge=0, le=MAX_INT4)
    created_date: CvatDate | None = None
    updated_date: CvatDate

    @property
    def status(self) -> Status:
        return derive_status(self.stage, self.state)

    @classmethod
    def parse(cls, raw: Any) -> CvatJob:
        """Validate a job object; `InvalidJobPayloadError` names the first bad fields.

        The whole object is kept as JSONB, which cannot hold NUL characters, so they are refused anywhere in it.
        """
        if not isinstance(raw, dict):
            raise InvalidJobPayloadError("a job must be a JSON object", (FieldProblem("job", "must be an object"),))
        try:
            job = cls.model_validate(raw)
        except ValidationError as error:
            raise invalid_payload("job", error) from None
        nul_at = _nul_path(raw)
        if nul_at is not None:
            problem = FieldProblem(nul_at, "must not contain NUL characters")
            raise InvalidJobPayloadError(f"invalid job: {problem}", (problem,))
        return job


def invalid_payload(what: str, error: ValidationError) -> InvalidJobPayloadError:
    """The error for a CVAT object (`what`: job, task, project) that failed validation, naming its fields."""
    problems = tuple(
        FieldProblem(".".join(str(part) for part in item["loc"]) or what, item["msg"]) for item in error.errors()[:5]
    )
    return InvalidJobPayloadError(f"invalid {what}: {'; '.join(map(str, problems))}", problems)


def _nul_path(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (value or key) holding a NUL character, if any."""
    if isinstance(value, str):
        return (path or "job") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return inner
            found = _nul_path(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


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

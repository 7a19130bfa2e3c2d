"""Request and response bodies of incidents, support groups and incident rules."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from mirante.types import Id64, NotBlank
from mirante.web.schema import Omittable
from rtls_cambus.conditions import NOT_BLANK_TEMPLATE_PATTERN, Conditions, EventType, template_problem
from rtls_cambus.fields import Body, Description, Name, Patch, Severity

IncidentId = Annotated[Id64, Path(description="id of the incident")]
AttachmentId = Annotated[Id64, Path(description="id of the attachment")]
SupportGroupId = Annotated[Id64, Path(description="id of the support group")]
RuleId = Annotated[Id64, Path(description="id of the incident rule")]
UserId = Annotated[Id64, Path(description="id of the user (identity API)")]

MAX_ASSIGNEES = 50


class Status(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    in_progress = "in_progress"
    resolved = "resolved"
    closed = "closed"


Title = Annotated[str, NotBlank(max_length=500), Field(description="1 to 500 characters, not only white space")]
MessageBody = Annotated[
    str, NotBlank(max_length=10_000), Field(description="1 to 10,000 characters, not only white space")
]
UserIds = Annotated[list[Id64], Field(max_length=MAX_ASSIGNEES, description="ids of active users (identity API)")]

SeverityFilter = Annotated[Severity | None, Query(description="only of this severity")]
StatusFilter = Annotated[Status | None, Query(description="only in this status")]
GroupFilter = Annotated[Id64 | None, Query(description="only those of this support group")]
AssigneeFilter = Annotated[Id64 | None, Query(description="only those assigned to this user")]


class IncidentCreate(Body):
    title: Title
    description: Description | None = None
    severity: Severity
    building_id: Id64 | None = None
    floor_id: Id64 | None = None
    zone_id: Id64 | None = None
    support_group_id: Id64 | None = None
    assignee_ids: UserIds = []


class IncidentUpdate(Patch):
    """The status changes through `POST /incidents/{id}/status`, the assignees through `PUT .../assignees`."""

    NOT_NULL = frozenset({"title", "severity"})

    title: Omittable[Title] = None
    description: Description | None = None
    severity: Omittable[Severity] = None
    building_id: Id64 | None = None
    floor_id: Id64 | None = None
    zone_id: Id64 | None = None
    support_group_id: Id64 | None = None


class StatusChange(Body):
    status: Status
    note: Description | None = None


class AssigneesPut(Body):
    user_ids: UserIds


class IncidentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    description: str | None
    severity: Severity
    status: Status
    building_id: int | None
    floor_id: int | None
    zone_id: int | None
    support_group_id: int | None
    assignee_ids: list[int]
    rule_id: int | None
    source_event_id: str | None
    source_event_type: str | None
    created_by: int | None
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    in_progress_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None


class StatusChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    from_status: Status | None
    to_status: Status
    changed_by: int | None
    changed_by_kind: str
    changed_by_name: str
    note: str | None
    changed_at: datetime


class MessageCreate(Body):
    body: MessageBody


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    incident_id: int
    author_id: int
    author_kind: str
    author_name: str
    body: str
    created_at: datetime


class AttachmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    incident_id: int
    stored_name: str
    original_name: str | None
    content_type: str
    size_bytes: int
    sha256: str
    uploaded_by: int
    uploaded_by_name: str
    created_at: datetime


class SupportGroupCreate(Body):
    name: Name
    description: Description | None = None
    member_ids: UserIds = []


class SupportGroupUpdate(Patch):
    NOT_NULL = frozenset({"name"})

    name: Omittable[Name] = None
    description: Description | None = None


class MemberAdd(Body):
    user_id: Id64


class SupportGroupRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    member_ids: list[int]
    created_at: datetime
    updated_at: datetime


TitleTemplate = Annotated[
    str,
    NotBlank(max_length=500),
    # The pattern tells clients and fuzzers the grammar; `template_problem` checks it and says what is wrong.
    Field(
        description="title of the incidents it opens; {dotted.path} is replaced from the event's data, "
        "{{ and }} are literal braces",
        json_schema_extra={"pattern": NOT_BLANK_TEMPLATE_PATTERN},
    ),
]


def _check_rule(event_type: str | None, template: str | None) -> None:
    if event_type is not None and event_type.startswith("rtls.incident."):
        raise ValueError("a rule on incident events would open incidents from its own incidents")
    if template is not None and (problem := template_problem(template)):
        raise ValueError(f"title_template: {problem}")


class RuleCreate(Body):
    name: Name
    enabled: StrictBool = True
    event_type: EventType
    conditions: Conditions = []
    title_template: TitleTemplate
    severity: Severity
    support_group_id: Id64 | None = None

    @model_validator(mode="after")
    def _valid_rule(self) -> Self:
        _check_rule(self.event_type, self.title_template)
        return self


class RuleUpdate(Patch):
    NOT_NULL = frozenset({"name", "enabled", "event_type", "conditions", "title_template", "severity"})

    name: Omittable[Name] = None
    enabled: Omittable[StrictBool] = None
    event_type: Omittable[EventType] = None
    conditions: Omittable[Conditions] = None
    title_template: Omittable[TitleTemplate] = None
    severity: Omittable[Severity] = None
    support_group_id: Id64 | None = None

    @model_validator(mode="after")
    def _valid_rule(self) -> Self:
        _check_rule(self.event_type, self.title_template)
        return self

    def changes(self) -> dict[str, Any]:
        values = super().changes()
        if "conditions" in values and values["conditions"] is not None:
            values["conditions"] = [condition.model_dump(mode="json") for condition in self.conditions or []]
        return values


class RuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    enabled: bool
    event_type: str
    conditions: list[dict[str, Any]]
    title_template: str
    severity: Severity
    support_group_id: int | None
    created_at: datetime
    updated_at: datetime

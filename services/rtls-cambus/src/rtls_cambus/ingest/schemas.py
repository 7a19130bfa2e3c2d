"""Request and response bodies of camera events and camera commands."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mirante.types import REFUSES_NUL, DateTime, JsonObject, Text
from rtls_cambus.fields import Body

EventType = Literal["new", "update", "end"]

SinceFilter = Annotated[DateTime | None, Query(description="events still going on at or after this time")]
UntilFilter = Annotated[DateTime | None, Query(description="events that started before this time")]
LabelFilter = Annotated[Text | None, Query(max_length=100, description="only events of this label, e.g. person")]
AnalyticFilter = Annotated[
    Text | None, Query(max_length=100, description="only events of this analytic (the topic's <analytic>)")
]
TypeFilter = Annotated[
    EventType | None, Query(description="only events whose last message was of this type (end: finished)")
]

CommandName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$"),
    REFUSES_NUL,
    Field(description="1 to 100 of `A-Z a-z 0-9 _ . : -`", examples=["reboot", "ptz.goto_preset"]),
]


class CameraEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    camera_id: int
    analytic: str
    event_id: str = Field(description="the camera's id of the event, the same in its new, update and end messages")
    type: EventType = Field(description="type of its last message; end means it is over")
    label: str | None
    sub_label: str | None
    score: float | None
    top_score: float | None
    zones: list[str] = Field(description="zones the object is in (as of the last message)")
    entered_zones: list[str]
    started_at: datetime
    ended_at: datetime | None
    messages: int = Field(description="new/update/end messages received for it")
    data: dict[str, Any] = Field(description="the last message's event object, as the camera sent it")
    updated_at: datetime


class CameraCommand(Body):
    command: CommandName
    params: JsonObject | None = Field(default=None, description="arguments of the command, as the camera expects")


class CommandResult(BaseModel):
    command_id: str = Field(description="id sent with the command, for the camera's answer to refer to")
    topic: str
    qos: int
    acknowledged: bool = Field(description="true: the broker acknowledged the message (QoS 1 PUBACK)")
    published_at: datetime

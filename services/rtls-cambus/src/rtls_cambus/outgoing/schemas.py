"""Bodies and answers of the webhook API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints
from pydantic_core import PydanticCustomError

from mirante.types import REFUSES_NUL, Id64, Text
from rtls_cambus.outgoing.event_types import SUITE_EVENT_TYPES

SubscriptionId = Annotated[Id64, Path(description="a webhook subscription")]
DeliveryId = Annotated[Id64, Path(description="a delivery of that subscription")]

URL_PATTERN: Final = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@\x00]+([/?#][^\s\x00]*)?$"
"""An http(s) URL with a host and no credentials; whether the host may be reached is the target policy's call."""

# A string type of its own, NUL refusal last: a pattern added on top of `Text` validates but is left out of the
# schema, which would then promise any text.
Url = Annotated[
    str,
    StringConstraints(min_length=8, max_length=2000, pattern=URL_PATTERN),
    REFUSES_NUL,
    Field(
        description="http(s) URL the events are posted to, without credentials; its host must resolve to addresses "
        "the target policy allows",
    ),
]


def _known_event_type(name: str) -> str:
    if name not in SUITE_EVENT_TYPES:
        raise PydanticCustomError(
            "unknown_event_type", "unknown event type {name} (see /api/v1/webhooks/event-types)", {"name": name}
        )
    return name


EventType = Annotated[
    str, AfterValidator(_known_event_type), Field(json_schema_extra={"enum": sorted(SUITE_EVENT_TYPES)})
]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=100)]
DeliveryStatus = Literal["pending", "delivered", "failed"]


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    event_types: EventTypes
    description: Annotated[Text, Field(max_length=500)] | None = None
    enabled: StrictBool = True


class SubscriptionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Annotated[Text, Field(max_length=500)] | None = None
    enabled: StrictBool | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_seconds: Annotated[int, Field(ge=0, le=30 * 86400)] | None = Field(
        default=None, description="how long the old secret keeps signing too (default: the service's setting)"
    )


class SubscriptionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(SubscriptionRead):
    secret: str = Field(description="whsec_...: shown this once; verify deliveries with it")


class EventTypeRead(BaseModel):
    type: str
    description: str


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempted_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    response_excerpt: str | None


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    msg_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: list[AttemptRead] = []

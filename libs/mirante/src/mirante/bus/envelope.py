"""The event envelope shared by every service: CloudEvents 1.0 attribute names plus `tenant`.

On a stream an event is one entry with three fields: `id` and `type` (readable without parsing, for
tooling and dead-letter triage) and `event`, the JSON of the whole envelope.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
"""Dotted lower-case segments, e.g. `cvat.job.created` (domain, entity, past-tense verb)."""

MAX_TYPE_LENGTH = 200
MAX_SUBJECT_LENGTH = 500
MAX_TENANT_LENGTH = 100
MAX_SOURCE_LENGTH = 500

FIELD_ID = "id"
FIELD_TYPE = "type"
FIELD_EVENT = "event"

_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)

StreamFields = Mapping[bytes, bytes] | Mapping[str, str] | Mapping[bytes | str, bytes | str]
"""The field map of a stream entry as redis-py returns it (bytes, or str with `decode_responses`)."""


class InvalidEventError(Exception):
    """An event envelope or stream entry is malformed; `reason` says what is wrong.

    Deliberately not a `ValueError`: pydantic would fold it back into a `ValidationError`.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""A UUID as `str(uuid.UUID(...))` writes it: taken as it is, without parsing it and writing it again."""
_PARSED_JSON = object()
"""The validation context of an envelope just parsed from JSON text."""


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "envelope"
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


class Event(BaseModel):
    """One event. Build it with `type`, `source` and `data`; `id` and `time` default to new values.

    Any invalid attribute raises `InvalidEventError` (also when constructing directly).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=_new_id, description="a UUID; consumers dedupe on it")
    source: str = Field(min_length=1, max_length=MAX_SOURCE_LENGTH, description="e.g. mirante/cvat-sync")
    type: str = Field(max_length=MAX_TYPE_LENGTH, description="dotted, past tense, e.g. cvat.job.created")
    time: AwareDatetime = Field(default_factory=_now, description="when it happened, in UTC")
    subject: str | None = Field(default=None, min_length=1, max_length=MAX_SUBJECT_LENGTH)
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, JsonValue] = Field(default_factory=dict)
    tenant: str | None = Field(default=None, min_length=1, max_length=MAX_TENANT_LENGTH)

    @model_validator(mode="wrap")
    @classmethod
    def _raise_invalid_event(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as error:
            raise InvalidEventError(f"invalid event: {_describe(error)}") from error

    @field_validator("data", mode="wrap")
    @classmethod
    def _json_data(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        # Parsed from JSON text, the data holds JSON values only: checking each of them again took a third of the
        # time of reading an event from a stream.
        if info.context is _PARSED_JSON and type(value) is dict:
            return value
        return handler(value)

    @field_validator("id")
    @classmethod
    def _canonical_uuid(cls, value: str) -> str:
        if _CANONICAL_UUID.fullmatch(value):
            return value
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("must be a UUID") from None

    @field_validator("type")
    @classmethod
    def _dotted_type(cls, value: str) -> str:
        if not _EVENT_TYPE.fullmatch(value):
            raise ValueError("must be dotted lower-case segments such as cvat.job.created")
        return value

    @field_validator("time")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @cached_property
    def event_uuid(self) -> uuid.UUID:
        """The id as a `uuid.UUID` (the inbox and outbox key)."""
        return uuid.UUID(self.id)

    def envelope(self) -> dict[str, Any]:
        """The envelope as a JSON-compatible dict (what the outbox stores)."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        """The envelope as compact JSON."""
        return self.model_dump_json()

    def to_fields(self) -> dict[str, str]:
        """The fields of the stream entry that carries this event."""
        return {FIELD_ID: self.id, FIELD_TYPE: self.type, FIELD_EVENT: self.to_json()}

    @classmethod
    def from_envelope(cls, envelope: object) -> Event:
        """Validate a decoded envelope (a dict); raises `InvalidEventError`."""
        if not isinstance(envelope, dict):
            raise InvalidEventError("invalid event: the envelope is not a JSON object")
        return cls.model_validate(envelope)

    @classmethod
    def from_json(cls, payload: str | bytes) -> Event:
        """Parse the JSON of an envelope; raises `InvalidEventError`."""
        try:
            envelope = orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise InvalidEventError(f"invalid event: not JSON ({error})") from None
        if not isinstance(envelope, dict):
            raise InvalidEventError("invalid event: the envelope is not a JSON object")
        return cls.model_validate(envelope, context=_PARSED_JSON)

    @classmethod
    def from_fields(cls, fields: StreamFields) -> Event:
        """Rebuild the event of a stream entry; raises `InvalidEventError` for anything malformed.

        The `id` and `type` fields must agree with the envelope, so tools that read only them are not misled.
        """
        text = _decoded_fields(fields)
        missing = [name for name in (FIELD_ID, FIELD_TYPE, FIELD_EVENT) if name not in text]
        if missing:
            raise InvalidEventError(f"invalid event entry: missing field(s) {', '.join(missing)}")
        event = cls.from_json(text[FIELD_EVENT])
        if text[FIELD_TYPE] != event.type:
            raise InvalidEventError(
                f"invalid event entry: field type {text[FIELD_TYPE]!r} differs from envelope {event.type!r}"
            )
        if text[FIELD_ID] != event.id and _canonical_or_none(text[FIELD_ID]) != event.id:
            raise InvalidEventError(
                f"invalid event entry: field id {text[FIELD_ID]!r} differs from envelope {event.id!r}"
            )
        return event


def _as_text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEventError("invalid event entry: a field is not UTF-8") from None
    return value


def _decoded_fields(fields: StreamFields) -> dict[str, str]:
    if not isinstance(fields, Mapping):
        raise InvalidEventError("invalid event entry: fields are not a mapping")
    return {_as_text(key): _as_text(value) for key, value in fields.items()}


def _canonical_or_none(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None

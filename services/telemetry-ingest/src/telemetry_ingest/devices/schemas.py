"""Request and response bodies of the device, sensor and device-credential endpoints."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import Depends, Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import Row

from mirante.types import REFUSES_NUL, TEXT_PATTERN, NotBlank
from mirante.types import Text as StorableText
from mirante.web.errors import ValidationFailedError
from mirante.web.schema import Omittable
from telemetry_ingest.devices.repository import DeviceFilters
from telemetry_ingest.identifiers import IDENTIFIER_PATTERN, MAX_UNIT_LENGTH

TEXT_MAX_LENGTH: Final = 200
MAX_LABEL_FILTERS: Final = 10
MAX_LABELS: Final = 32
LABEL_KEY_PATTERN: Final = r"[A-Za-z0-9_.-]{1,64}"
LABEL_VALUE_MAX_LENGTH: Final = 256
# `key` or `key:value`, the value anything PostgreSQL text holds (`.` would stop at a line break the filter accepts).
LABEL_FILTER_PATTERN: Final = rf"^{LABEL_KEY_PATTERN}(:[^\x00]{{0,{LABEL_VALUE_MAX_LENGTH}}})?$"
"""Label keys: 1 to 64 of `A-Z a-z 0-9 _ . -` (no `:`, which separates key and value in the `label` filter)."""

_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)

DEVICE_ID_DESCRIPTION = "device id: 1 to 128 of `A-Z a-z 0-9 _ . : -`, as in the MQTT topic"

DeviceIdPath = Annotated[str, Path(pattern=f"^{IDENTIFIER_PATTERN}$", description=DEVICE_ID_DESCRIPTION)]
SensorPath = Annotated[
    str, Path(pattern=f"^{IDENTIFIER_PATTERN}$", description="sensor type: 1 to 128 of `A-Z a-z 0-9 _ . : -`")
]

DeviceSort = Literal["device_id", "-device_id", "name", "-name", "first_seen", "-first_seen", "last_seen", "-last_seen"]

Text = Annotated[
    str,
    NotBlank(max_length=TEXT_MAX_LENGTH),
    Field(description=f"1 to {TEXT_MAX_LENGTH} characters, not only white space; null clears it"),
]
Unit = Annotated[
    str,
    NotBlank(max_length=MAX_UNIT_LENGTH),
    Field(
        description=f"display unit, 1 to {MAX_UNIT_LENGTH} characters, not only white space; null clears it",
        examples=["celsius"],
    ),
]


def is_label_key(key: str) -> bool:
    """Whether `key` can be a label key."""
    return _LABEL_KEY.fullmatch(key) is not None


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not is_label_key(key):
            raise ValueError(f"invalid label key {key!r}: use 1 to 64 of A-Z a-z 0-9 _ . -")
        if len(value) > LABEL_VALUE_MAX_LENGTH:
            raise ValueError(f"label {key!r}: values have at most {LABEL_VALUE_MAX_LENGTH} characters")
    return labels


Labels = Annotated[
    dict[str, StorableText],
    AfterValidator(_check_labels),
    Field(
        description=f"up to {MAX_LABELS} string labels; keys 1 to 64 of `A-Z a-z 0-9 _ . -`, values up to "
        f"{LABEL_VALUE_MAX_LENGTH} characters. Replaces all labels; `{{}}` removes them",
        examples=[{"floor": "3", "zone": "east"}],
        # Declared only: `_check_labels` applies the same rules with messages that name the key.
        json_schema_extra={
            "maxProperties": MAX_LABELS,
            "propertyNames": {"pattern": f"^{LABEL_KEY_PATTERN}$"},
            "additionalProperties": {"type": "string", "maxLength": LABEL_VALUE_MAX_LENGTH, "pattern": TEXT_PATTERN},
        },
    ),
]


class _Patch(BaseModel):
    """Omitted fields stay as they are; null clears a field (labels cannot be null: send `{}`)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _labels_not_null(self) -> Any:
        if "labels" in self.model_fields_set and getattr(self, "labels", None) is None:
            raise ValueError("labels cannot be null: send {} to remove every label")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, with their new values."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class DeviceCreate(BaseModel):
    """A device registered before it publishes (devices also register themselves with their first reading)."""

    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(pattern=f"^{IDENTIFIER_PATTERN}$", description=DEVICE_ID_DESCRIPTION, examples=["d-001"])
    name: Text | None = None
    labels: Labels = Field(default_factory=dict)
    site: Text | None = None
    asset: Text | None = None


class DeviceUpdate(_Patch):
    """Device metadata to change."""

    name: Text | None = None
    labels: Omittable[Labels] = None
    site: Text | None = None
    asset: Text | None = None


class SensorUpdate(_Patch):
    """Sensor metadata to change."""

    name: Text | None = None
    unit: Unit | None = None
    labels: Omittable[Labels] = None


class LatestValue(BaseModel):
    """The newest reading of a sensor (by its own timestamp, not by arrival)."""

    ts: datetime
    value: float
    unit: str | None
    received_at: datetime


class SensorRead(BaseModel):
    """A sensor of a device, with its newest reading when it has one."""

    device_id: str
    sensor: str = Field(description="sensor type, as in the MQTT topic")
    name: str | None
    unit: str | None
    labels: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    latest: LatestValue | None

    @classmethod
    def of(cls, row: Row[Any]) -> SensorRead:
        fields = row._mapping
        latest = None
        if fields["latest_ts"] is not None:
            latest = LatestValue(
                ts=fields["latest_ts"],
                value=fields["latest_value"],
                unit=fields["latest_unit"],
                received_at=fields["latest_received_at"],
            )
        return cls(
            device_id=fields["device_id"],
            sensor=fields["sensor"],
            name=fields["name"],
            unit=fields["unit"],
            labels=fields["labels"] or {},
            first_seen=fields["first_seen"],
            last_seen=fields["last_seen"],
            latest=latest,
        )


class DeviceSummary(BaseModel):
    """A device as the list shows it."""

    device_id: str
    name: str | None
    labels: dict[str, Any]
    site: str | None
    asset: str | None
    first_seen: datetime = Field(description="first reading, or registration for a device registered in advance")
    last_seen: datetime
    sensor_count: int

    @classmethod
    def of(cls, row: Row[Any]) -> DeviceSummary:
        return cls.model_validate(_device_fields(row))


def _device_fields(row: Row[Any]) -> dict[str, Any]:
    fields = dict(row._mapping)
    fields["labels"] = fields.get("labels") or {}
    return fields


class DeviceDetail(DeviceSummary):
    """A device with its sensors and their newest readings."""

    sensors: list[SensorRead]

    @classmethod
    def build(cls, row: Row[Any], sensors: list[SensorRead]) -> DeviceDetail:
        return cls.model_validate({**_device_fields(row), "sensors": sensors})


class CredentialRead(BaseModel):
    """A device's MQTT credentials without the secret."""

    tenant: str
    device_id: str
    username: str = Field(description="MQTT username: `<tenant>:<device_id>`")
    active: bool = Field(description="false once revoked")
    created_at: datetime = Field(description="when the current secret was issued")
    last_used_at: datetime | None = Field(description="last successful broker login (to the minute)")
    revoked_at: datetime | None


class CredentialIssued(BaseModel):
    """New MQTT credentials of a device. The secret is shown only in this response: store it on the device."""

    tenant: str
    device_id: str
    username: str = Field(description="MQTT username: `<tenant>:<device_id>`")
    secret: str = Field(description="MQTT password; only its SHA-256 is stored, it cannot be shown again")
    created_at: datetime
    replaced_active: bool = Field(description="true when an active secret existed and stopped working now")
    publish_topic: str = Field(description="where the device publishes; `{sensor_type}` is each sensor's name")


async def device_filters(
    q: Annotated[
        StorableText | None,
        Query(max_length=TEXT_MAX_LENGTH, description="part of the device id or name (any case)"),
    ] = None,
    site: Annotated[
        StorableText | None, Query(min_length=1, max_length=TEXT_MAX_LENGTH, description="exact site")
    ] = None,
    asset: Annotated[
        StorableText | None, Query(min_length=1, max_length=TEXT_MAX_LENGTH, description="exact asset")
    ] = None,
    label: Annotated[
        # A `str` with the pattern, not `Text` narrowed by one: pydantic leaves a pattern added to an annotated
        # type out of the JSON Schema.
        list[Annotated[str, StringConstraints(pattern=LABEL_FILTER_PATTERN), REFUSES_NUL]] | None,
        Query(
            description="`key:value` (the device carries that label with that value) or `key` (it carries the "
            f"label); repeat for several (at most {MAX_LABEL_FILTERS}), all must hold",
            examples=["floor:3"],
            max_length=MAX_LABEL_FILTERS,
        ),
    ] = None,
) -> DeviceFilters:
    """The filters of the device list."""
    labels: dict[str, str] = {}
    keys: list[str] = []
    for item in label or []:
        key, separator, value = item.partition(":")
        if not is_label_key(key):
            raise ValidationFailedError(
                f"invalid label filter {item!r}: use key:value or key, keys being 1 to 64 of A-Z a-z 0-9 _ . -",
                details=[{"field": "query.label", "message": "invalid label filter"}],
            )
        if not separator:
            keys.append(key)
        elif key in labels and labels[key] != value:
            raise ValidationFailedError(f"label {key!r} is filtered with two different values")
        else:
            labels[key] = value
    search = q.strip() if q and q.strip() else None
    return DeviceFilters(search=search, site=site, asset=asset, labels=labels, label_keys=tuple(keys))


DeviceFilterParams = Annotated[DeviceFilters, Depends(device_filters)]

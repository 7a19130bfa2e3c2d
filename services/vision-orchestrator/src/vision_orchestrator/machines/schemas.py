"""Request and response bodies of machines and their credentials, as the API contract names their fields."""

from __future__ import annotations

from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyAddress,
    StrictBool,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from mirante.types import Int32, JsonObject, Text
from mirante.web.schema import Omittable
from vision_orchestrator.identifiers import TypeName
from vision_orchestrator.tables import Machine, MachineStatus

MAX_CAPACITY = 1000
MAX_TYPES = 64

Name = Annotated[Text, Field(min_length=1, max_length=200)]
Place = Annotated[Text, Field(max_length=200)]
Port = Annotated[Int32, Field(ge=1, le=65535, examples=[5000])]
Capacity = Annotated[Int32, Field(ge=1, le=MAX_CAPACITY, description="inspections it runs at once", examples=[2])]
SupportedTypes = Annotated[
    list[TypeName], Field(max_length=MAX_TYPES, description="names from /api/v1/inspection-types/")
]


def _text_only(value: object) -> object:
    # Lax parsing takes an integer for an address (0 is 0.0.0.0); the contract's address is a string.
    if not isinstance(value, str | IPv4Address | IPv6Address):
        raise ValueError("an IP address is a string, e.g. '192.168.1.101'")
    return value


IpAddress = Annotated[
    IPvAnyAddress,
    BeforeValidator(_text_only),
    WithJsonSchema({"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]}),
    Field(examples=["192.168.1.101"]),
]
HardwareSpecs = Annotated[JsonObject, Field(examples=[{"gpu": "RTX 3080", "cpu": "Intel i7-10700K", "memory": "32GB"}])]


def _unique(types: list[str] | None) -> list[str] | None:
    return None if types is None else list(dict.fromkeys(types))


class MachineWrite(BaseModel):
    """Every writable field of a machine: the body of POST and PUT."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(examples=["MV-Factory-B"])
    location: Place | None = Field(default=None, examples=["Linha de Produção B"])
    line: Place | None = Field(default=None, description="production line or cell, used by `nearest`")
    ip_address: IpAddress
    port: Port
    max_concurrent_inspections: Capacity
    supported_inspection_types: SupportedTypes = []
    hardware_specs: HardwareSpecs = {}
    maintenance: StrictBool = Field(default=False, description="kept out of dispatch while true")

    _unique_types = field_validator("supported_inspection_types")(_unique)


class MachineUpdate(BaseModel):
    """PATCH: the fields given change, the others stay; `location` and `line` take null to clear."""

    model_config = ConfigDict(extra="forbid")

    name: Omittable[Name] = None
    location: Place | None = None
    line: Place | None = None
    ip_address: Omittable[IpAddress] = None
    port: Omittable[Port] = None
    max_concurrent_inspections: Omittable[Capacity] = None
    supported_inspection_types: Omittable[SupportedTypes] = None
    hardware_specs: Omittable[HardwareSpecs] = None
    maintenance: Omittable[StrictBool] = None

    _unique_types = field_validator("supported_inspection_types")(_unique)

    @model_validator(mode="after")
    def _no_null_for_required(self) -> MachineUpdate:
        nulled = [name for name in self.model_fields_set if getattr(self, name) is None and name not in NULLABLE]
        if nulled:
            raise ValueError(f"{', '.join(sorted(nulled))} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


NULLABLE = frozenset({"location", "line"})


def storable(values: dict[str, Any]) -> dict[str, Any]:
    """Column values of a machine's fields (the address as text)."""
    if isinstance(values.get("ip_address"), IPv4Address | IPv6Address):
        values = {**values, "ip_address": str(values["ip_address"])}
    return values


class MachineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["mv_abc123def456"])
    name: str
    location: str | None
    line: str | None
    ip_address: str
    port: int
    status: MachineStatus
    last_heartbeat: datetime | None
    max_concurrent_inspections: int
    current_inspections: int
    supported_inspection_types: list[str]
    hardware_specs: dict[str, Any]
    maintenance: bool
    is_available: bool = Field(description="online, below capacity and not in maintenance")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, machine: Machine) -> MachineRead:
        return cls(
            id=machine.id,
            name=machine.name,
            location=machine.location,
            line=machine.line,
            ip_address=str(machine.ip_address),
            port=machine.port,
            status=MachineStatus(machine.status),
            last_heartbeat=machine.last_heartbeat,
            max_concurrent_inspections=machine.max_concurrent_inspections,
            current_inspections=machine.current_inspections,
            supported_inspection_types=list(machine.supported_inspection_types),
            hardware_specs=machine.hardware_specs,
            maintenance=machine.maintenance,
            is_available=is_available(machine),
            created_at=machine.created_at,
            updated_at=machine.updated_at,
        )


def is_available(machine: Machine) -> bool:
    """Whether dispatch may give the machine more work: online, below capacity, not in maintenance."""
    return (
        machine.status == MachineStatus.online
        and not machine.maintenance
        and machine.current_inspections < machine.max_concurrent_inspections
    )


class CredentialIssued(BaseModel):
    """A new credential: `credential` and `webhook_secret` are shown this once. The machine sends the credential
    as `Authorization: Bearer ...` and may sign its calls with the secret (Standard Webhooks), which the
    orchestrator also signs its calls to the machine with."""

    machine_id: str
    credential: str
    webhook_secret: str = Field(description="Standard Webhooks key, `whsec_<base64>`")
    created_at: datetime
    replaced_active: bool = Field(description="an active credential existed and stopped working now")


class CredentialRead(BaseModel):
    machine_id: str
    active: bool
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class MachineRegistered(MachineRead):
    """A new machine with its credential and webhook secret, shown only in this answer."""

    credential: str = Field(description="the machine's bearer secret, `mvc_...`")
    webhook_secret: str = Field(description="Standard Webhooks key, `whsec_<base64>`")
    credential_created_at: datetime


class MachineFilters(BaseModel):
    status: MachineStatus | None = None
    maintenance: bool | None = None
    is_available: bool | None = None
    inspection_type: TypeName | None = None
    location: Place | None = None


async def machine_filters(
    status: Annotated[MachineStatus | None, Query(description="online, busy or offline")] = None,
    maintenance: Annotated[bool | None, Query(description="in maintenance or not")] = None,
    is_available: Annotated[bool | None, Query(description="available for dispatch or not")] = None,
    inspection_type: Annotated[TypeName | None, Query(description="machines declaring this type")] = None,
    location: Annotated[Place | None, Query(min_length=1, description="exact location")] = None,
) -> MachineFilters:
    return MachineFilters(
        status=status,
        maintenance=maintenance,
        is_available=is_available,
        inspection_type=inspection_type,
        location=location,
    )


MachineFilterParams = Annotated[MachineFilters, Depends(machine_filters)]
MachineSort = Literal["name", "-name", "created_at", "-created_at"]

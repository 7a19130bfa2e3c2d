"""Request and response bodies of the tenant endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mirante.auth.schemas import TENANT_SLUG_PATTERN
from mirante.types import JSON_NUMBER, NotBlank
from mirante.web.schema import Omittable
from telemetry_ingest.tenancy.models import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS, NAME_MAX_LENGTH, Tenant
from telemetry_ingest.tenancy.naming import SCHEMA_PREFIX, check_new_slug

TenantName = Annotated[
    str,
    NotBlank(max_length=NAME_MAX_LENGTH),
    Field(description=f"display name, 1 to {NAME_MAX_LENGTH} characters, not only white space"),
]
RetentionDays = Annotated[
    int,
    JSON_NUMBER,
    Field(
        ge=MIN_RETENTION_DAYS,
        le=MAX_RETENTION_DAYS,
        description=f"days of readings kept ({MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS})",
    ),
]


class TenantCreate(BaseModel):
    """A new tenant. Its data goes to schema `tenant_<slug>`; the slug is also the tenant claim of its users."""

    model_config = ConfigDict(extra="forbid")

    slug: str = Field(
        description="a lower-case letter, then up to 47 of `a-z 0-9 _ -`; must not start with `tenant_`",
        examples=["acme"],
        # Declared only: `check_new_slug` applies the same rules with messages that say what is wrong.
        json_schema_extra={"pattern": TENANT_SLUG_PATTERN, "not": {"pattern": f"^{SCHEMA_PREFIX}"}},
    )
    name: TenantName
    retention_days: RetentionDays | None = Field(default=None, description="default: the service's setting")

    @field_validator("slug")
    @classmethod
    def _valid_slug(cls, slug: str) -> str:
        return check_new_slug(slug)


class TenantUpdate(BaseModel):
    """Fields to change; omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: Omittable[TenantName] = None
    retention_days: Omittable[RetentionDays] = None

    @model_validator(mode="after")
    def _not_null(self) -> TenantUpdate:
        for field in ("name", "retention_days"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class TenantRead(BaseModel):
    """A tenant as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    slug: str
    name: str
    schema_name: str = Field(description="the PostgreSQL schema holding the tenant's data")
    retention_days: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, tenant: Tenant) -> TenantRead:
        return cls.model_validate(tenant)

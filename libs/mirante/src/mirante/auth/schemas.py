"""Request and response models of the identity API. Inputs are explicit and closed (`extra="forbid"`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from mirante.auth.apikeys import MAX_SCOPES, SCOPE_PATTERN, normalize_scopes
from mirante.auth.models import API_KEY_NAME_MAX_LENGTH, EMAIL_MAX_LENGTH, USERNAME_MAX_LENGTH
from mirante.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from mirante.auth.roles import Role
from mirante.types import REFUSES_NUL, DateTime, NotBlank, Text
from mirante.web.schema import Omittable

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{2,149}$"
TENANT_SLUG_PATTERN = r"^[a-z][a-z0-9_-]{0,47}$"
# A pragmatic shape check: one @, no spaces, a dot in the domain. Deliverability is not our business.
# `\s` differs between regex engines (the validator's counts U+0085 as a space, JavaScript's counts U+FEFF), so
# both are named: every engine then refuses the same characters and clients see the rule the server applies.
# NUL is named too: PostgreSQL text cannot hold it, and the pattern must stay visible in the schema.
_NOT_AT_OR_SPACE = r"[^@\s\x00\x85\ufeff]"
EMAIL_PATTERN = rf"^{_NOT_AT_OR_SPACE}{{1,64}}@{_NOT_AT_OR_SPACE}+\.{_NOT_AT_OR_SPACE}+$"


def _lower(value: str) -> str:
    return value.lower()


Username = Annotated[
    str,
    StringConstraints(pattern=USERNAME_PATTERN, max_length=USERNAME_MAX_LENGTH),
    AfterValidator(_lower),
    Field(description="3 to 150 characters: letters, digits and `. _ @ -`; case-insensitive (stored lower-case)"),
]
NewPassword = Annotated[
    str,
    Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH, description="8 to 1024 characters"),
    # After the bounds, so the CLI's messages about them speak of characters.
    REFUSES_NUL,
]
Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=EMAIL_MAX_LENGTH)]
TenantSlug = Annotated[
    str,
    StringConstraints(pattern=TENANT_SLUG_PATTERN),
    Field(description="tenant slug: a lower-case letter, then up to 47 of `a-z 0-9 _ -`"),
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Input):
    """Credentials, as a form (OAuth2 password flow) or JSON."""

    model_config = ConfigDict(extra="ignore")

    username: Annotated[Text, Field(min_length=1, max_length=USERNAME_MAX_LENGTH)]
    password: Annotated[Text, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
    grant_type: Literal["password"] | None = None


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires")


class SignupRequest(_Input):
    username: Username
    password: NewPassword
    email: Email | None = None


class UserCreate(_Input):
    username: Username
    password: NewPassword
    email: Email | None = None
    role: Role = Role.viewer
    is_staff: StrictBool = False
    tenant: TenantSlug | None = None
    is_active: StrictBool = True


class UserUpdate(_Input):
    """Fields to change; omitted fields stay as they are. `email` and `tenant` may be set to null."""

    role: Omittable[Role] = None
    is_staff: Omittable[StrictBool] = None
    tenant: TenantSlug | None = None
    is_active: Omittable[StrictBool] = None
    password: Omittable[NewPassword] = None
    email: Email | None = None

    @model_validator(mode="after")
    def _required_fields_not_null(self) -> UserUpdate:
        for name in ("role", "is_staff", "is_active", "password"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    email: str | None
    role: Role
    is_staff: bool
    tenant: str | None
    is_active: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


class UserFilters(BaseModel):
    role: Role | None = None
    is_active: bool | None = None
    search: Text | None = Field(default=None, max_length=USERNAME_MAX_LENGTH)


class ApiKeyCreate(_Input):
    name: Annotated[str, NotBlank(max_length=API_KEY_NAME_MAX_LENGTH)]
    scopes: Annotated[
        list[Annotated[str, StringConstraints(pattern=SCOPE_PATTERN)]], Field(min_length=1, max_length=MAX_SCOPES)
    ]
    role: Role = Role.viewer
    tenant: TenantSlug | None = None
    expires_at: DateTime | None = Field(default=None, description="RFC 3339 expiry, in the future; omit for none")

    @field_validator("scopes")
    @classmethod
    def _valid_scopes(cls, scopes: list[str]) -> list[str]:
        return normalize_scopes(scopes)

    @field_validator("expires_at")
    @classmethod
    def _future_expiry(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value <= datetime.now(UTC):
            raise ValueError("expires_at must be in the future")
        return value


class ApiKeyOut(BaseModel):
    """An API key as listed: never the key itself nor its hash."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    role: Role
    scopes: list[str]
    tenant: str | None
    created_by: int | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the API key; shown only in this response, store it now")


class PasswordChange(_Input):
    current_password: Annotated[Text, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
    new_password: NewPassword


class PrincipalOut(BaseModel):
    """Who the request is authenticated as."""

    kind: Literal["user", "api_key"]
    id: int
    name: str
    role: Role
    is_staff: bool
    tenant: str | None
    scopes: list[str]

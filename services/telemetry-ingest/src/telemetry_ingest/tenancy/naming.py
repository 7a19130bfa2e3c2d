"""Names derived from a tenant slug: its schema and its daily readings partitions.

A slug follows `mirante.auth.schemas.TENANT_SLUG_PATTERN` (the tenant claim of users and API keys), which allows
`-`; the schema is `tenant_<slug>` exactly, so SQL must always quote it (`quoted(schema)`), never interpolate it bare.
"""

from __future__ import annotations

import re
from datetime import date

from mirante import partitions
from mirante.auth.schemas import TENANT_SLUG_PATTERN

SCHEMA_PREFIX = "tenant_"
READINGS = "readings"
"""The partitioned table of every tenant schema."""

_SLUG = re.compile(TENANT_SLUG_PATTERN)
_SCHEMA = re.compile("^" + re.escape(SCHEMA_PREFIX) + TENANT_SLUG_PATTERN.removeprefix("^"))


class InvalidTenantSlugError(ValueError):
    """A tenant slug does not follow the slug pattern."""


def check_slug(slug: str) -> str:
    """Return `slug` when it is a valid tenant slug, else raise `InvalidTenantSlugError` saying why."""
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        raise InvalidTenantSlugError(
            f"invalid tenant slug {slug!r}: use a lower-case letter, then up to 47 lower-case letters, digits, "
            "'_' or '-'"
        )
    return slug


def check_new_slug(slug: str) -> str:
    """`check_slug`, and refuse slugs starting with `tenant_`: a string that does always names a schema."""
    check_slug(slug)
    if slug.startswith(SCHEMA_PREFIX):
        raise InvalidTenantSlugError(f"invalid tenant slug {slug!r}: it must not start with {SCHEMA_PREFIX!r}")
    return slug


def schema_for(slug: str) -> str:
    """The schema of the tenant `slug`: `tenant_<slug>` (raises `InvalidTenantSlugError` for a bad slug)."""
    return SCHEMA_PREFIX + check_slug(slug)


def check_schema(schema: str) -> str:
    """Return `schema` when it is a tenant schema name, else raise `ValueError` (schemas are interpolated in SQL)."""
    if not isinstance(schema, str) or not _SCHEMA.fullmatch(schema):
        raise ValueError(f"not a tenant schema name: {schema!r}")
    return schema


def slug_of(schema: str) -> str:
    """The slug whose schema is `schema`."""
    return check_schema(schema).removeprefix(SCHEMA_PREFIX)


def quoted(schema: str) -> str:
    """`"tenant_<slug>"`: the tenant schema as a quoted SQL identifier, after checking it."""
    return f'"{check_schema(schema)}"'


def partition_name(day: date) -> str:
    """The name of the readings partition holding `day` (UTC): `readings_pYYYYMMDD`."""
    return partitions.partition_name(READINGS, day)

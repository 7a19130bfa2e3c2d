"""Alembic environment of the `identity` history (schema `identity`)."""

from mirante.auth.models import Base
from mirante.migrations import run_migrations

run_migrations(Base.metadata, schema="identity")

"""Alembic environment of the `cvat_sync` history (schema `cvat_sync`)."""

from cvat_sync.db import Base
from mirante.migrations import run_migrations

run_migrations(Base.metadata, schema="cvat_sync")

"""Alembic environment of the `cvat_sync` history (schema `cvat_sync`)."""

import cvat_sync.models  # noqa: F401 (registers every table on Base.metadata)
from cvat_sync.db import Base
from mirante.migrations import run_migrations

run_migrations(Base.metadata, schema="cvat_sync")

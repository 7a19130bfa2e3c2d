"""Alembic environment of the `recording_storage` history (schema `recording_storage`)."""

import recording_storage.models  # noqa: F401 (registers every table on Base.metadata)
from mirante.migrations import run_migrations
from recording_storage.db import Base

run_migrations(Base.metadata, schema="recording_storage")

"""Alembic environment of the `recording_storage` history (schema `recording_storage`)."""

from mirante.migrations import run_migrations
from recording_storage.db import Base

run_migrations(Base.metadata, schema="recording_storage")

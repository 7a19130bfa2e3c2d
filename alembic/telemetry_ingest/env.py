"""Alembic environment of the `telemetry_ingest` history (schema `telemetry_ingest`)."""

from mirante.migrations import run_migrations
from telemetry_ingest.db import Base

run_migrations(Base.metadata, schema="telemetry_ingest")

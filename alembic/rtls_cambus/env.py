"""Alembic environment of the `rtls_cambus` history (schema `rtls_cambus`)."""

import rtls_cambus.models  # noqa: F401 (registers every table on Base.metadata)
from mirante.migrations import run_migrations
from rtls_cambus.db import Base

run_migrations(Base.metadata, schema="rtls_cambus")

"""Alembic environment of the `vision_orchestrator` history (schema `vision_orchestrator`)."""

import vision_orchestrator.tables  # noqa: F401 (registers every table on Base.metadata)
from mirante.migrations import run_migrations
from vision_orchestrator.db import Base

run_migrations(Base.metadata, schema="vision_orchestrator")

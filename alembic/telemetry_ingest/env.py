"""Alembic environment of the `telemetry_ingest` history (schema `telemetry_ingest`).

Tenant schemas have their own revisions inside the package (`telemetry_ingest.tenancy.migrations`), applied per
tenant by the service; this history holds only the central schema.
"""

import telemetry_ingest.tenancy.models  # noqa: F401 (registers every table on Base.metadata)
from mirante.migrations import run_migrations
from telemetry_ingest.db import Base

run_migrations(Base.metadata, schema="telemetry_ingest")

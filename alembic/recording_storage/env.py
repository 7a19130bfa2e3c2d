"""Alembic environment of the `recording_storage` history (schema `recording_storage`)."""

import recording_storage.models  # noqa: F401 (registers every table on Base.metadata)
from mirante.migrations import run_migrations
from recording_storage.db import Base
from recording_storage.storage import s3_models  # noqa: F401 (the S3 backend's bookkeeping tables)

run_migrations(Base.metadata, schema="recording_storage")

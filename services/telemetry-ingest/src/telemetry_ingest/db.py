"""Declarative base of the `telemetry_ingest` schema."""

from sqlalchemy.orm import DeclarativeBase

from mirante.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("telemetry_ingest")

"""Declarative base of the `recording_storage` schema."""

from sqlalchemy.orm import DeclarativeBase

from mirante.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("recording_storage")

"""Declarative base of the `cvat_sync` schema."""

from sqlalchemy.orm import DeclarativeBase

from mirante.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("cvat_sync")

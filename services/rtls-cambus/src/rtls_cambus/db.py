"""Declarative base of the `rtls_cambus` schema."""

from sqlalchemy.orm import DeclarativeBase

from mirante.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("rtls_cambus")

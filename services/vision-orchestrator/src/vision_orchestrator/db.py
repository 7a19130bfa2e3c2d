"""Declarative base of the `vision_orchestrator` schema."""

from sqlalchemy.orm import DeclarativeBase

from mirante.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata("vision_orchestrator")

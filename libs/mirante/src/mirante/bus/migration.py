"""Migration operations that create the bus tables in a service's schema (used by its first revision)."""

from __future__ import annotations

from alembic import op
from mirante.bus.tables import bus_tables


def create_bus_tables(schema: str) -> None:
    bind = op.get_bind()
    for table in bus_tables(schema):
        table.create(bind)


def drop_bus_tables(schema: str) -> None:
    bind = op.get_bind()
    for table in reversed(bus_tables(schema)):
        table.drop(bind)

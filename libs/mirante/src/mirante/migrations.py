"""Alembic glue: one history per schema, each keeping its version table inside its own schema.

Every `alembic/<history>/env.py` calls `run_migrations(...)`. `upgrade_all` runs the identity history and the
history of every installed service, in that order, on one connection.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from alembic import command, context
from mirante.bus.tables import INBOX, OUTBOX
from mirante.db import checked_identifier, engine_scope

IDENTITY_HISTORY = "identity"
VERSION_TABLE = "alembic_version"
BUS_TABLES = frozenset({OUTBOX, INBOX})


class MigrationError(RuntimeError):
    """Migrations could not be located or applied."""


def find_alembic_ini(start: Path | None = None) -> Path:
    """`MIRANTE_ALEMBIC_INI` when set, else the nearest `alembic.ini` from `start` (or the cwd) upwards."""
    explicit = os.environ.get("MIRANTE_ALEMBIC_INI")
    if explicit:
        if not Path(explicit).is_file():
            raise MigrationError(f"MIRANTE_ALEMBIC_INI names {explicit}, which is not a file")
        return Path(explicit)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "alembic.ini"
        if candidate.is_file():
            return candidate
    raise MigrationError("alembic.ini not found; run from the repository or set MIRANTE_ALEMBIC_INI")


def history_config(history: str, ini: Path | None = None) -> Config:
    """The Alembic configuration of `history`; `MigrationError` when `alembic.ini` has no such section."""
    path = ini or find_alembic_ini()
    config = Config(str(path), ini_section=checked_identifier(history))
    # Alembic itself raises its CommandError for a missing section, which callers do not expect.
    if not config.file_config.has_section(history) or not config.get_main_option("script_location"):
        raise MigrationError(f"{path} has no [{history}] section")
    return config


PARTITION_SUFFIX = re.compile(r"_(default|p[0-9]{8})$")
"""How the partitions of a partitioned table are named: `<table>_default` and `<table>_pYYYYMMDD` (one a day)."""


def _partitioned_tables(metadata: MetaData | None) -> frozenset[str]:
    if metadata is None:
        return frozenset()
    return frozenset(
        table.name for table in metadata.tables.values() if table.dialect_options["postgresql"].get("partition_by")
    )


def include_only(schema: str, metadata: MetaData | None = None) -> Any:
    """Alembic's `include_name` for the history that owns `schema`: its schema only, without the bus tables
    (`mirante.bus`'s, not the models') nor the partitions of the models' partitioned tables (made at run time,
    named as `PARTITION_SUFFIX` says)."""
    partitioned = _partitioned_tables(metadata)

    def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
        if type_ == "schema":
            return name == schema
        if type_ != "table" or name is None:
            return True
        if name in BUS_TABLES:
            return False
        suffix = PARTITION_SUFFIX.search(name)
        return suffix is None or name[: suffix.start()] not in partitioned

    return include_name


def _configure_and_run(connection: Connection, metadata: MetaData, schema: str) -> None:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        version_table_schema=schema,
        include_schemas=True,
        include_name=include_only(schema, metadata),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(url: str, metadata: MetaData, schema: str) -> None:
    async with engine_scope(url, pooled=False) as engine, engine.begin() as connection:
        await connection.run_sync(_configure_and_run, metadata, schema)


def run_migrations(metadata: MetaData, schema: str) -> None:
    """Body of an Alembic `env.py` for the history that owns `schema`.

    A caller that already holds a connection passes it in `config.attributes["connection"]` (see
    `upgrade_all`); the `alembic` command line connects with `MIRANTE_DATABASE_URL` or `-x url=...`.
    """
    schema = checked_identifier(schema)
    if context.is_offline_mode():
        raise MigrationError("offline (--sql) migrations are not supported")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection, metadata, schema)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("MIRANTE_DATABASE_URL")
    if not url:
        from mirante.devstack import resolve_database_url

        url = resolve_database_url()
    asyncio.run(_run_online(url, metadata, schema))


def _upgrade_sync(connection: Connection, histories: Sequence[str], ini: Path, revision: str) -> None:
    for history in histories:
        config = history_config(history, ini)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


async def upgrade_histories(
    connection: AsyncConnection, histories: Iterable[str], ini: Path | None = None, revision: str = "head"
) -> None:
    """Upgrade `histories` in order on an open async connection (the caller commits)."""
    path = ini or find_alembic_ini()
    await connection.run_sync(_upgrade_sync, list(histories), path, revision)


def installed_histories() -> list[str]:
    """The identity history followed by the history of every installed service."""
    from mirante.service import discover_services

    return [IDENTITY_HISTORY, *(spec.history for spec in discover_services())]


async def upgrade_all(url: str, ini: Path | None = None) -> list[str]:
    """Bring every installed history to head on the database at `url`; returns the histories run."""
    histories = installed_histories()
    async with engine_scope(url, pooled=False) as engine, engine.begin() as connection:
        # One migrator at a time across processes (replicas may start together).
        await connection.execute(text("SELECT pg_advisory_xact_lock(7242861)"))
        await upgrade_histories(connection, histories, ini)
    return histories

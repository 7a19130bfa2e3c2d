"""Alembic histories: one schema each, its version table inside it, at head, matching the models, re-runnable."""

from __future__ import annotations

import argparse
import asyncio
import runpy
import uuid
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from alembic import command
from mirante import migrations
from mirante.db import async_url, plain_url
from mirante.devstack import StackUrls
from mirante.migrations import (
    BUS_TABLES,
    IDENTITY_HISTORY,
    VERSION_TABLE,
    MigrationError,
    find_alembic_ini,
    history_config,
    include_only,
    installed_histories,
    upgrade_all,
)
from mirante.service import discover_services
from mirante.testing.database import create_test_database, drop_test_database

HISTORIES = installed_histories()


@cache
def env_py_arguments(history: str) -> tuple[MetaData, str]:
    """The `(metadata, schema)` the history's `env.py` hands to `run_migrations`, read by running it with a
    stand-in that only records them."""
    location = history_config(history).get_main_option("script_location")
    assert location is not None
    recorded: list[tuple[MetaData, str]] = []

    def record(metadata: MetaData, schema: str) -> None:
        recorded.append((metadata, schema))

    original = migrations.run_migrations
    migrations.run_migrations = record
    try:
        runpy.run_path(str(Path(location) / "env.py"))
    finally:
        migrations.run_migrations = original
    assert len(recorded) == 1, f"{history}/env.py must call run_migrations once"
    return recorded[0]


def history_metadata(history: str) -> MetaData:
    return env_py_arguments(history)[0]


def head_of(history: str) -> str | None:
    return ScriptDirectory.from_config(history_config(history)).get_current_head()


async def schema_state(engine: AsyncEngine) -> dict[str, Any]:
    """Version and table identities (oids) of every history's schema: equal only if nothing was rebuilt."""
    state: dict[str, Any] = {}
    async with engine.connect() as connection:
        for history in HISTORIES:
            versions = await connection.scalars(text(f'SELECT version_num FROM "{history}".{VERSION_TABLE}'))
            tables = await connection.execute(
                text(
                    "SELECT c.relname, c.oid::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'i') ORDER BY c.relname"
                ),
                {"schema": history},
            )
            state[history] = {"versions": list(versions), "relations": [tuple(row) for row in tables]}
    return state


@pytest_asyncio.fixture
async def empty_database(mirante_urls: StackUrls) -> AsyncIterator[str]:
    """A new database with no history applied yet; dropped afterwards."""
    name = f"mirante_migrate_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(plain_url(mirante_urls.database_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(mirante_urls.database_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        await drop_test_database(mirante_urls.database_url, url)


def test_the_identity_history_comes_first_then_every_service() -> None:
    assert [IDENTITY_HISTORY, *(spec.history for spec in discover_services())] == HISTORIES
    assert len(set(HISTORIES)) == len(HISTORIES)


@pytest.mark.parametrize("history", HISTORIES)
def test_each_env_py_migrates_the_schema_named_after_its_history(history: str) -> None:
    metadata, schema = env_py_arguments(history)

    assert schema == history
    assert {table.schema for table in metadata.tables.values()} <= {history}


async def test_each_history_has_its_schema_and_version_table_at_head(db_engine: AsyncEngine) -> None:
    async with db_engine.connect() as connection:
        for history in HISTORIES:
            versions = list(await connection.scalars(text(f'SELECT version_num FROM "{history}".{VERSION_TABLE}')))
            assert versions == [head_of(history)], history
        stray = await connection.scalar(text(f"SELECT to_regclass('public.{VERSION_TABLE}')"))

    assert stray is None


async def test_each_history_creates_tables_only_in_its_own_schema(db_engine: AsyncEngine) -> None:
    async with db_engine.connect() as connection:
        for history in HISTORIES:
            metadata = history_metadata(history)
            expected = {table.name for table in metadata.tables.values()}
            if history != IDENTITY_HISTORY:
                expected |= BUS_TABLES
            rows = await connection.scalars(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :schema"),
                {"schema": history},
            )
            not_partition = include_only(history, metadata)
            found = {name for name in rows if name in BUS_TABLES or not_partition(name, "table", {})}
            assert found == expected | {VERSION_TABLE}, history


async def test_upgrade_all_again_changes_nothing(database_url: str, db_engine: AsyncEngine) -> None:
    before = await schema_state(db_engine)

    histories = await upgrade_all(database_url)

    assert histories == HISTORIES
    assert await schema_state(db_engine) == before


async def test_a_copy_of_the_migrated_template_is_at_head_and_apart(
    mirante_urls: StackUrls, migrated_template: str, db_engine: AsyncEngine
) -> None:
    # The run's database is a copy too: a table made in a new copy must not show up in it.
    url = await create_test_database(mirante_urls.database_url, prefix="mirante_copy", template=migrated_template)
    try:
        connection = await asyncpg.connect(plain_url(url))
        try:
            for history in HISTORIES:
                versions = await connection.fetch(f'SELECT version_num FROM "{history}".{VERSION_TABLE}')
                assert [row["version_num"] for row in versions] == [head_of(history)], history
            await connection.execute("CREATE TABLE public.only_in_the_copy ()")
        finally:
            await connection.close()
        async with db_engine.connect() as run_database:
            assert await run_database.scalar(text("SELECT to_regclass('public.only_in_the_copy')")) is None
    finally:
        await drop_test_database(mirante_urls.database_url, url)


def _autogenerate_diff(connection: Connection, history: str) -> list[Any]:
    metadata = history_metadata(history)

    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "include_name": include_only(history, metadata),
            "compare_type": True,
            "version_table": VERSION_TABLE,
            "version_table_schema": history,
            "target_metadata": metadata,
        },
    )
    return list(compare_metadata(context, metadata))


def test_partitions_of_a_partitioned_table_are_left_out_of_autogenerate() -> None:
    metadata = MetaData(schema="fleet")
    Table("beats", metadata, Column("at", DateTime(timezone=True)), postgresql_partition_by="RANGE (at)")
    Table("machines", metadata, Column("id", Integer, primary_key=True))
    include = include_only("fleet", metadata)

    assert include("beats", "table", {})
    assert not include("beats_default", "table", {})
    assert not include("beats_p20260101", "table", {})
    assert include("beats_archive", "table", {})
    assert include("machines_default", "table", {})  # machines is not partitioned
    assert not include("outbox", "table", {})
    assert include("fleet", "schema", {})
    assert not include("other", "schema", {})


@pytest.mark.parametrize("history", HISTORIES)
async def test_autogenerate_finds_nothing_to_add(db_engine: AsyncEngine, history: str) -> None:
    async with db_engine.connect() as connection:
        diff = await connection.run_sync(_autogenerate_diff, history)

    assert diff == [], f"{history}: the models and the migrations differ: {diff}"


def test_alembic_check_through_each_env_py(database_url: str) -> None:
    """The command-line path of every `env.py` (`alembic -n <history> -x url=... check`) sees no change."""
    for history in HISTORIES:
        config = history_config(history)
        config.cmd_opts = argparse.Namespace(x=[f"url={database_url}"])

        command.check(config)


async def test_upgrade_all_builds_an_empty_database(empty_database: str) -> None:
    engine = create_async_engine(async_url(empty_database), poolclass=NullPool)
    try:
        histories = await upgrade_all(empty_database)
        state = await schema_state(engine)
    finally:
        await engine.dispose()

    assert histories == HISTORIES
    assert {history: entry["versions"] for history, entry in state.items()} == {h: [head_of(h)] for h in HISTORIES}


async def test_replicas_migrating_at_once_do_not_collide(empty_database: str) -> None:
    results = await asyncio.gather(
        upgrade_all(empty_database), upgrade_all(empty_database), upgrade_all(empty_database)
    )

    assert list(results) == [HISTORIES] * 3
    engine = create_async_engine(async_url(empty_database), poolclass=NullPool)
    try:
        state = await schema_state(engine)
    finally:
        await engine.dispose()
    assert all(entry["versions"] == [head_of(history)] for history, entry in state.items())


# --- locating the configuration ---


def test_history_config_points_at_the_history_folder() -> None:
    config = history_config(IDENTITY_HISTORY)

    location = config.get_main_option("script_location")
    assert location is not None
    assert Path(location) == find_alembic_ini().parent / "alembic" / IDENTITY_HISTORY


def test_history_config_refuses_an_unknown_history() -> None:
    with pytest.raises(MigrationError, match=r"no \[no_such_history\] section"):
        history_config("no_such_history")


def test_history_config_refuses_a_name_that_is_not_an_identifier() -> None:
    with pytest.raises(ValueError, match="not a valid SQL identifier"):
        history_config("../identity")


def test_history_config_refuses_an_ini_without_the_history(tmp_path: Path) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_text("[other]\nscript_location = somewhere\n")

    with pytest.raises(MigrationError):
        history_config(IDENTITY_HISTORY, ini)


def test_find_alembic_ini_honours_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ini = tmp_path / "deploy" / "alembic.ini"
    ini.parent.mkdir()
    ini.write_text(f"[{IDENTITY_HISTORY}]\nscript_location = {find_alembic_ini().parent}/alembic/identity\n")
    monkeypatch.setenv("MIRANTE_ALEMBIC_INI", str(ini))

    assert find_alembic_ini() == ini
    assert find_alembic_ini(start=Path("/")) == ini
    assert history_config(IDENTITY_HISTORY).config_file_name == str(ini)


def test_find_alembic_ini_refuses_a_variable_naming_no_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MIRANTE_ALEMBIC_INI", str(tmp_path / "missing.ini"))

    with pytest.raises(MigrationError, match="MIRANTE_ALEMBIC_INI"):
        find_alembic_ini()


def test_find_alembic_ini_searches_upwards(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MIRANTE_ALEMBIC_INI", raising=False)
    (tmp_path / "alembic.ini").write_text("[identity]\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)

    assert find_alembic_ini(start=nested) == tmp_path / "alembic.ini"
    monkeypatch.chdir(nested)
    assert find_alembic_ini() == tmp_path / "alembic.ini"


def test_find_alembic_ini_without_one_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MIRANTE_ALEMBIC_INI", raising=False)
    if any((folder / "alembic.ini").is_file() for folder in (tmp_path, *tmp_path.parents)):
        pytest.skip("an alembic.ini exists above the temporary folder")

    with pytest.raises(MigrationError, match=r"alembic\.ini not found"):
        find_alembic_ini(start=tmp_path)

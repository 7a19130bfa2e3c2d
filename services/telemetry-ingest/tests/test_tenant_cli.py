"""`telemetry-ingest tenant create|list|upgrade`: one real process for the console script, the remaining cases
through the same entry point in a thread of this process (a new process pays the service's whole import)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from mirante.db import plain_url
from mirante.devstack import StackUrls
from mirante.testing.cli import run_entry_point
from telemetry_ingest.cli import main

COMMAND = str(Path(sys.executable).with_name("telemetry-ingest"))


def new_slug(prefix: str = "cli-") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def env(database_url: str, mirante_urls: StackUrls, tmp_path: Path) -> dict[str, str]:
    """What a user exports: the suite's servers and this run's database."""
    return {
        "MIRANTE_DATABASE_URL": database_url,
        "MIRANTE_REDIS_URL": mirante_urls.redis_url,
        "MIRANTE_MQTT_URL": mirante_urls.mqtt_url,
        "MIRANTE_DATA_DIR": str(tmp_path / "data"),
        "MIRANTE_LOG_LEVEL": "WARNING",
    }


async def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], *args: str
) -> tuple[int, str, str]:
    """`telemetry-ingest ARGS` through the console entry point, in a thread of this process."""
    prefixes = ("TELEMETRY_INGEST_", "MIRANTE_")
    return await run_entry_point(main, args, env=env, env_prefixes=prefixes, monkeypatch=monkeypatch, capsys=capsys)


async def test_create_list_and_upgrade_in_a_real_process(
    env: dict[str, str], tmp_path: Path, db_engine: AsyncEngine, committed_tenant_slugs: list[str]
) -> None:
    slug = new_slug()
    committed_tenant_slugs.append(slug)
    inherited = {
        key: value for key, value in os.environ.items() if not key.startswith(("TELEMETRY_INGEST_", "MIRANTE_"))
    }

    process = await asyncio.create_subprocess_exec(
        *(COMMAND, "tenant", "create", slug, "--name", "Real Process", "--retention-days", "45"),
        env={**inherited, **env},
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)

    assert process.returncode == 0, stderr.decode()
    assert stdout.decode() == f"created tenant {slug} (Real Process): schema tenant_{slug}, readings kept 45 days\n"
    async with db_engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT name, retention_days FROM telemetry_ingest.tenants WHERE slug = :s"), {"s": slug}
            )
        ).one()
        version = await connection.scalar(text(f'SELECT version_num FROM "tenant_{slug}".alembic_version'))
        events = await connection.scalar(
            text(
                "SELECT count(*) FROM telemetry_ingest.outbox WHERE type = 'telemetry.tenant.created' AND tenant = :s"
            ),
            {"s": slug},
        )
    assert tuple(row) == ("Real Process", 45)
    assert (version, events) == ("0001", 1)


async def test_create_refuses_bad_and_taken_slugs_with_exit_code_2(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    db_engine: AsyncEngine,
    committed_tenant_slugs: list[str],
) -> None:
    slug = new_slug()
    committed_tenant_slugs.append(slug)
    code, out, err = await run(monkeypatch, capsys, env, "tenant", "create", slug, "--name", "Acme")
    assert code == 0, err
    assert f"created tenant {slug} (Acme)" in out and "readings kept 365 days" in out

    code, out, err = await run(monkeypatch, capsys, env, "tenant", "create", slug, "--name", "Again")
    assert (code, out) == (2, "")
    assert err.strip() == f"error: tenant {slug!r} already exists"

    code, out, err = await run(monkeypatch, capsys, env, "tenant", "create", "Bad Slug", "--name", "x")
    assert (code, out) == (2, "")
    assert "error: invalid tenant slug 'Bad Slug'" in err
    code, _, err = await run(monkeypatch, capsys, env, "tenant", "create", "tenant_x", "--name", "x")
    assert code == 2 and "must not start with 'tenant_'" in err
    code, _, err = await run(monkeypatch, capsys, env, "tenant", "create", new_slug(), "--name", " ")
    assert code == 2 and "name must have 1 to 200 characters" in err

    usage_errors = {
        ("--name", "x", "--retention-days", "0"): "must be between 1 and 3650 days, got 0",
        ("--name", "x", "--retention-days", "x"): "not a number: 'x'",
        (): "the following arguments are required: --name",
    }
    for args, message in usage_errors.items():
        with pytest.raises(SystemExit) as stopped:
            await run(monkeypatch, capsys, env, "tenant", "create", new_slug(), *args)
        assert stopped.value.code == 2, args
        assert message in capsys.readouterr().err

    async with db_engine.connect() as connection:
        names = list(
            await connection.scalars(text("SELECT name FROM telemetry_ingest.tenants WHERE slug LIKE 'cli-%'"))
        )
    assert "Again" not in names and "x" not in names


async def test_list_shows_every_tenant(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    committed_tenant_slugs: list[str],
) -> None:
    slugs = [new_slug(), new_slug()]
    committed_tenant_slugs.extend(slugs)
    for slug, days in zip(slugs, ("7", "3650"), strict=True):
        code, _, err = await run(
            monkeypatch, capsys, env, "tenant", "create", slug, "--name", f"Name of {slug}", "--retention-days", days
        )
        assert code == 0, err

    code, out, err = await run(monkeypatch, capsys, env, "tenant", "list")

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["SLUG", "SCHEMA", "RETENTION", "CREATED", "NAME"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[slugs[0]][1:3] == [f"tenant_{slugs[0]}", "7"]
    assert rows[slugs[1]][1:3] == [f"tenant_{slugs[1]}", "3650"]
    assert " ".join(rows[slugs[1]][4:]) == f"Name of {slugs[1]}"
    assert [line.split()[0] for line in lines[1:]] == sorted(rows), "by slug"


async def test_upgrade_brings_every_tenant_to_head_and_says_what_it_did(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    db_engine: AsyncEngine,
    committed_tenant_slugs: list[str],
) -> None:
    ready, bare = new_slug(), new_slug("cli-bare-")
    committed_tenant_slugs.extend([ready, bare])
    code, _, err = await run(monkeypatch, capsys, env, "tenant", "create", ready, "--name", "Ready")
    assert code == 0, err
    async with db_engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO telemetry_ingest.tenants (slug, name, schema_name) VALUES (:s, 'Bare', :schema)"),
            {"s": bare, "schema": f"tenant_{bare}"},
        )

    code, out, err = await run(monkeypatch, capsys, env, "tenant", "upgrade")

    assert code == 0, err
    lines = out.splitlines()
    assert f"tenant_{bare}: upgraded empty -> 0001" in lines
    assert f"tenant_{ready}: already at 0001" in lines
    assert lines[-1].endswith(", 1 upgraded") and " at 0001" in lines[-1]
    async with db_engine.connect() as connection:
        assert await connection.scalar(text(f'SELECT version_num FROM "tenant_{bare}".alembic_version')) == "0001"

    code, out, err = await run(monkeypatch, capsys, env, "tenant", "upgrade")
    assert code == 0, err
    assert out.splitlines()[-1].endswith(", 0 upgraded"), "a second upgrade has nothing to do"


async def test_an_unmigrated_database_is_a_clear_error(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], mirante_urls: StackUrls
) -> None:
    name = f"telemetry_cli_empty_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(plain_url(mirante_urls.database_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        empty = make_url(mirante_urls.database_url).set(database=name).render_as_string(hide_password=False)

        code, out, err = await run(monkeypatch, capsys, {**env, "MIRANTE_DATABASE_URL": empty}, "tenant", "list")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    assert (code, out) == (2, "")
    assert "does not exist" in err and "mirante migrate" in err

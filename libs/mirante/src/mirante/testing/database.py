"""A fresh database per test run, with every installed history migrated."""

from __future__ import annotations

import uuid

import asyncpg
from sqlalchemy.engine import make_url

from mirante.db import checked_identifier, plain_url
from mirante.migrations import upgrade_all


async def _admin_connection(server_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(plain_url(server_url))


async def create_test_database(server_url: str, prefix: str = "mirante_test") -> str:
    """Create an empty database on the server of `server_url`, migrate it, and return its URL."""
    name = checked_identifier(f"{prefix}_{uuid.uuid4().hex[:12]}")
    admin = await _admin_connection(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    await upgrade_all(url)
    return url


async def drop_test_database(server_url: str, database_url: str) -> None:
    name = checked_identifier(make_url(database_url).database or "")
    admin = await _admin_connection(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()

"""Fresh databases for tests, with every installed history migrated.

Migrating takes seconds (every history, under a server-wide advisory lock that other runs on the same server
contend for); copying a migrated database with `CREATE DATABASE ... TEMPLATE` takes a fraction of one. A test run
therefore migrates one template database once (the `migrated_template` fixture of the plugin) and gives each
database it needs a copy of it: `create_test_database(server_url, template=name)`.
"""

from __future__ import annotations

import uuid

import asyncpg
from sqlalchemy.engine import make_url

from mirante.db import checked_identifier, plain_url
from mirante.migrations import upgrade_all


async def _admin_connection(server_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(plain_url(server_url))


async def create_test_database(server_url: str, prefix: str = "mirante_test", *, template: str | None = None) -> str:
    """Create a database on the server of `server_url` and return its URL: a copy of the migrated database
    `template` when given (nobody may be connected to it), else an empty one migrated here."""
    name = checked_identifier(f"{prefix}_{uuid.uuid4().hex[:12]}")
    copied_from = f' TEMPLATE "{checked_identifier(template)}"' if template is not None else ""
    admin = await _admin_connection(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{copied_from}')
    finally:
        await admin.close()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    if template is None:
        await upgrade_all(url)
    return url


def database_name(database_url: str) -> str:
    """The database a URL names (for `create_test_database(..., template=...)`)."""
    return checked_identifier(make_url(database_url).database or "")


async def drop_test_database(server_url: str, database_url: str) -> None:
    name = database_name(database_url)
    admin = await _admin_connection(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()

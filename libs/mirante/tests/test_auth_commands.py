"""CLI operations on users and API keys, and the identity tables as the migration creates them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, insert, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.auth.apikeys import hash_api_key
from mirante.auth.commands import create_api_key, create_user
from mirante.auth.errors import DuplicateUsernameError, InvalidIdentityInputError
from mirante.auth.models import Base, User
from mirante.auth.passwords import verify_password
from mirante.auth.principal import principal_for_api_key
from mirante.auth.roles import Role


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:10]}"


async def test_create_user(db_session: AsyncSession) -> None:
    name = unique("Cli.User")

    user = await create_user(db_session, name, "password-123", role="operator", staff=True, tenant="acme")

    assert user.id > 0
    assert (user.username, user.role, user.is_staff, user.tenant, user.is_active) == (
        name.lower(),
        "operator",
        True,
        "acme",
        True,
    )
    assert user.password_hash.startswith("scrypt$") and "password-123" not in user.password_hash
    assert verify_password("password-123", user.password_hash)
    assert user.created_at is not None and user.updated_at is not None


async def test_create_user_refuses_duplicates_in_any_case(db_session: AsyncSession) -> None:
    name = unique("dup")
    await create_user(db_session, name, "password-123")

    with pytest.raises(DuplicateUsernameError, match="already taken"):
        await create_user(db_session, name.upper(), "password-123", role=Role.admin)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"password": "short"}, "password"),
        ({"password": ""}, "password"),
        ({"role": "superuser"}, "role"),
        ({"tenant": "Not A Slug"}, "tenant"),
        ({"username": "no"}, "username"),
        ({"username": "with/slash"}, "username"),
    ],
)
async def test_create_user_bad_input(db_session: AsyncSession, fields: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"username": unique("bad"), "password": "password-123", **fields}

    with pytest.raises(InvalidIdentityInputError) as caught:
        await create_user(db_session, **arguments)

    assert caught.value.status_code == 422
    assert [detail["field"] for detail in caught.value.details] == [field]
    assert caught.value.message.startswith(f"invalid user: {field}: ")


async def test_create_api_key(db_session: AsyncSession) -> None:
    expires_at = datetime.now(UTC) + timedelta(days=7)

    key, plaintext = await create_api_key(
        db_session, "  nightly export ", ["b:read", "a:write", "b:read"], role="operator", expires_at=expires_at
    )

    assert plaintext.startswith(f"mk_{key.prefix}_") and len(key.prefix) == 8
    assert len(plaintext) >= len("mk_12345678_") + 43
    assert key.key_hash == hash_api_key(plaintext) and plaintext not in key.key_hash
    assert (key.name, key.scopes, key.role, key.created_by) == (
        "nightly export",
        ["a:write", "b:read"],
        "operator",
        None,
    )
    assert key.expires_at == expires_at
    principal = await principal_for_api_key(db_session, plaintext)
    assert (principal.kind, principal.id, principal.role, principal.scopes) == (
        "api_key",
        key.id,
        Role.operator,
        frozenset({"a:write", "b:read"}),
    )
    other_key, other_plaintext = await create_api_key(db_session, "other", ["*"])
    assert other_plaintext != plaintext and other_key.prefix != key.prefix
    assert other_key.role == "viewer"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"scopes": []}, "scopes"),
        ({"scopes": ["UPPER"]}, "scopes.0"),
        ({"scopes": ["a b"]}, "scopes.0"),
        ({"name": ""}, "name"),
        ({"role": "owner"}, "role"),
        ({"expires_at": datetime.now(UTC) - timedelta(minutes=1)}, "expires_at"),
        ({"expires_at": datetime(2099, 1, 1)}, "expires_at"),
    ],
)
async def test_create_api_key_bad_input(db_session: AsyncSession, fields: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"name": "key", "scopes": ["*"], **fields}

    with pytest.raises(InvalidIdentityInputError) as caught:
        await create_api_key(db_session, **arguments)

    assert [detail["field"] for detail in caught.value.details] == [field]


# --- the tables, as the migration made them ---


def _autogenerate_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "include_name": lambda name, kind, parents: name == "identity" if kind == "schema" else True,
            "compare_type": True,
            "version_table_schema": "identity",
            "target_metadata": Base.metadata,
        },
    )
    return list(compare_metadata(context, Base.metadata))


async def test_migration_matches_the_models(db_engine: AsyncEngine) -> None:
    async with db_engine.connect() as connection:
        diff = await connection.run_sync(_autogenerate_diff)
        revision = await connection.scalar(text("SELECT version_num FROM identity.alembic_version"))

    assert diff == []
    assert revision == "0002"


async def test_database_enforces_lower_case_unique_usernames_and_roles(db_session: AsyncSession) -> None:
    name = unique("raw")
    row = {"username": name, "password_hash": "x", "role": "viewer"}
    await db_session.execute(insert(User).values(**row))

    for bad in ({**row, "username": name.upper()}, {**row, "username": unique("r"), "role": "root"}, row):
        with pytest.raises(IntegrityError):
            async with db_session.begin_nested():
                await db_session.execute(insert(User).values(**bad))

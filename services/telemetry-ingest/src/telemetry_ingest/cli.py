"""The `telemetry-ingest` command: `serve`, `tenant create|list|upgrade` and `retention run`.

Exit codes: 0 done, 2 for bad arguments or a refused change (bad slug, slug taken) and for an unreachable or
unmigrated database (the message says which).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from mirante.cli import run_service_cli
from telemetry_ingest.main import SERVICE
from telemetry_ingest.retention.cli import add_retention_commands

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work(session)` in one committed transaction on the configured (or a running, or embedded) database."""
    from mirante.db import one_transaction
    from mirante.devstack import ensure_stack
    from telemetry_ingest.config import Settings

    settings = Settings()

    async def run(database_url: str) -> T:
        async with one_transaction(database_url, settings.infra.database) as session:
            return await work(session)

    with ensure_stack(settings.infra.core.data_dir) as urls:
        return asyncio.run(run(urls.database_url))


def cmd_tenant_create(args: argparse.Namespace) -> int:
    from telemetry_ingest.config import Settings
    from telemetry_ingest.tenancy.service import create_tenant

    retention_days = args.retention_days or Settings().default_retention_days

    async def work(session: AsyncSession) -> str:
        tenant = await create_tenant(session, slug=args.slug, name=args.name, retention_days=retention_days)
        return (
            f"created tenant {tenant.slug} ({tenant.name}): schema {tenant.schema_name}, "
            f"readings kept {tenant.retention_days} days"
        )

    print(_in_transaction(work))
    return 0


def cmd_tenant_list(args: argparse.Namespace) -> int:
    from telemetry_ingest.tenancy.repository import all_tenants

    async def work(session: AsyncSession) -> list[tuple[str, ...]]:
        return [
            (tenant.slug, tenant.schema_name, str(tenant.retention_days), f"{tenant.created_at:%Y-%m-%d}", tenant.name)
            for tenant in await all_tenants(session)
        ]

    rows = _in_transaction(work)
    if not rows:
        print("no tenants")
        return 0
    table = [("SLUG", "SCHEMA", "RETENTION", "CREATED", "NAME"), *rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]) - 1)]
    for row in table:
        print("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]))
    return 0


def cmd_tenant_upgrade(args: argparse.Namespace) -> int:
    from telemetry_ingest.tenancy.migrator import SchemaUpgrade, head_revision
    from telemetry_ingest.tenancy.service import upgrade_all_tenants

    async def work(session: AsyncSession) -> list[SchemaUpgrade]:
        return await upgrade_all_tenants(session)

    upgrades = _in_transaction(work)
    for upgrade in upgrades:
        if upgrade.changed:
            print(f"{upgrade.schema}: upgraded {upgrade.before or 'empty'} -> {upgrade.after}")
        else:
            print(f"{upgrade.schema}: already at {upgrade.after}")
    changed = sum(upgrade.changed for upgrade in upgrades)
    print(f"{len(upgrades)} tenant schema(s) at {head_revision()}, {changed} upgraded")
    return 0


def _retention_days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 1 <= days <= 3650:
        raise argparse.ArgumentTypeError(f"must be between 1 and 3650 days, got {days}")
    return days


def add_tenant_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`telemetry-ingest tenant create|list|upgrade`."""
    tenant = commands.add_parser("tenant", help="manage tenants (each has its own schema tenant_<slug>)")
    actions = tenant.add_subparsers(dest="tenant_command", required=True)

    create = actions.add_parser(
        "create",
        help="create a tenant and provision its schema",
        description="Register a tenant, create schema tenant_<SLUG> with every tenant migration, and publish "
        "telemetry.tenant.created. Exit code 2 when the slug is invalid or taken.",
    )
    create.add_argument("slug", help="a lower-case letter, then up to 47 of a-z 0-9 _ - (not starting with tenant_)")
    create.add_argument("--name", required=True, help="display name")
    create.add_argument(
        "--retention-days",
        type=_retention_days,
        help="days of readings kept (default: TELEMETRY_INGEST_DEFAULT_RETENTION_DAYS, 365)",
    )
    create.set_defaults(handler=cmd_tenant_create)

    listing = actions.add_parser("list", help="list every tenant")
    listing.set_defaults(handler=cmd_tenant_list)

    upgrade = actions.add_parser(
        "upgrade",
        help="bring every tenant schema to the newest tenant migration",
        description="Apply the tenant migrations each tenant schema lacks, one transaction for all, and print "
        "what changed. Waits while another process (a starting replica) upgrades.",
    )
    upgrade.set_defaults(handler=cmd_tenant_upgrade)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Every command beyond `serve`: `tenant ...`, `retention run`."""
    add_tenant_commands(commands)
    add_retention_commands(commands)


def main(argv: list[str] | None = None) -> int:
    return run_service_cli(SERVICE, argv, extend=add_commands)

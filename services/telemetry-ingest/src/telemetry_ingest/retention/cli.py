"""`telemetry-ingest retention run`: one retention sweep now, printing what it dropped.

Exit codes: 0 when every tenant was swept, 1 when some tenant failed (its error is printed; the sweep goes on
with the others), 2 for bad arguments or an unknown tenant.
"""

from __future__ import annotations

import argparse
import asyncio

from telemetry_ingest.tenancy.naming import InvalidTenantSlugError, check_slug


def _slug(value: str) -> str:
    try:
        return check_slug(value)
    except InvalidTenantSlugError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def cmd_retention_run(args: argparse.Namespace) -> int:
    from mirante.db import create_sessionmaker, engine_scope
    from mirante.devstack import ensure_stack
    from telemetry_ingest.config import Settings
    from telemetry_ingest.retention.sweeper import TenantRetention, run_retention, transaction_scope

    settings = Settings()
    slugs: list[str] | None = args.tenant or None

    async def run(database_url: str) -> list[TenantRetention]:
        async with engine_scope(database_url, settings.infra.database) as engine:
            return await run_retention(
                transaction_scope(create_sessionmaker(engine)),
                slugs=slugs,
                lock_timeout_seconds=settings.retention_lock_timeout_seconds,
            )

    with ensure_stack(settings.infra.core.data_dir) as urls:
        results = asyncio.run(run(urls.database_url))
    for result in results:
        if result.error is not None:
            print(f"{result.slug}: FAILED ({result.error})")
            continue
        dropped = ", ".join(result.dropped_partitions) or "nothing"
        print(
            f"{result.slug}: keeps {result.retention_days} days (from {result.cutoff.isoformat()}): dropped {dropped}; "
            f"{result.deleted_rejected} rejected reading(s) deleted"
        )
    total = sum(len(result.dropped_partitions) for result in results)
    failed = sum(result.error is not None for result in results)
    print(f"{len(results)} tenant(s) swept, {total} partition(s) dropped, {failed} failed")
    return 1 if failed else 0


def add_retention_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`telemetry-ingest retention run [--tenant SLUG ...]`."""
    retention = commands.add_parser("retention", help="drop readings older than each tenant's retention")
    actions = retention.add_subparsers(dest="retention_command", required=True)
    run = actions.add_parser(
        "run",
        help="sweep now",
        description="Drop the readings partitions (and rejected readings) of days older than each tenant's "
        "retention_days, one transaction per tenant, and print what was dropped. The service does the same "
        "every TELEMETRY_INGEST_RETENTION_INTERVAL_SECONDS.",
    )
    run.add_argument(
        "--tenant", action="append", type=_slug, metavar="SLUG", help="only this tenant (repeatable; default: all)"
    )
    run.set_defaults(handler=cmd_retention_run)

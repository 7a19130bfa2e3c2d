"""The `cvat-sync` command: `serve`, and `sync` (a pull sync from CVAT in the foreground).

`cvat-sync sync` exits 0 when the run succeeded, 1 when it failed (the run is recorded with its error),
and 2 for bad arguments, missing CVAT credentials, or when another run is queued or running.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from typing import TextIO

from sqlalchemy.exc import DBAPIError, ProgrammingError

from cvat_sync.config import Settings
from cvat_sync.cvat.client import auth_mode
from cvat_sync.cvat.errors import CvatConfigurationError
from cvat_sync.cvat.payloads import STATUSES
from cvat_sync.main import SERVICE
from cvat_sync.sync import repository
from cvat_sync.sync.errors import InvalidSyncFiltersError, SyncAlreadyRunningError
from cvat_sync.sync.filters import SyncFilters
from cvat_sync.sync.models import SyncRun
from cvat_sync.sync.runner import reap_abandoned_runs, run_lock
from cvat_sync.sync.service import execute_run, run_summary, start_run
from cvat_sync.sync.stats import MAX_JOB_ERRORS, SyncStats
from mirante.cli import run_service_cli
from mirante.db import create_sessionmaker, engine_scope
from mirante.devstack import ensure_stack
from mirante.runtime import freeze_startup_objects
from mirante.settings import CoreSettings

EXIT_FAILED = 1
EXIT_USAGE = 2
BAR_WIDTH = 30
LINE_INTERVAL_SECONDS = 2.0
SHOWN_JOB_ERRORS = 5


class ProgressLine:
    """The progress of a sync on stderr: one line redrawn in place on a terminal, a line every few seconds
    otherwise (logs, pipes)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.interactive = stream.isatty()
        self.last_line = 0.0
        self.drawn = False

    def __call__(self, stats: SyncStats) -> None:
        now = time.monotonic()
        if not self.interactive and now - self.last_line < LINE_INTERVAL_SECONDS:
            return
        self.last_line = now
        line = self.render(stats)
        if self.interactive:
            self.stream.write(f"\r{line}\033[K")
        else:
            self.stream.write(f"{line}\n")
        self.stream.flush()
        self.drawn = True

    def done(self) -> None:
        if self.interactive and self.drawn:
            self.stream.write("\n")
            self.stream.flush()

    @staticmethod
    def render(stats: SyncStats) -> str:
        counts = f"created {stats.created} updated {stats.updated} unchanged {stats.unchanged} failed {stats.failed}"
        if not stats.expected:
            return f"sync: {stats.fetched} jobs  {counts}"
        share = min(1.0, stats.fetched / stats.expected)
        filled = round(share * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return f"sync [{bar}] {share:4.0%} {stats.fetched}/{stats.expected} jobs  {counts}"


def summary(run: SyncRun) -> str:
    """The final statistics, as printed on stdout."""
    seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at else 0.0
    lines = [
        f"sync run {run.id}: {run.status} in {seconds:.1f} s: {run_summary(run)}",
        f"  fetched   {run.fetched}",
        f"  created   {run.created}",
        f"  updated   {run.updated}",
        f"  unchanged {run.unchanged}",
        f"  deleted   {run.deleted}",
        f"  failed    {run.failed}",
    ]
    shown = (run.job_errors or [])[:SHOWN_JOB_ERRORS]
    lines.extend(f"    job {item['job_id'] or '?'}: {item['message']}" for item in shown)
    if run.failed > len(shown):
        lines.append(f"    ... {run.failed - len(shown)} more (the run's job_errors lists the first {MAX_JOB_ERRORS})")
    skipped = run.fetched - run.created - run.updated - run.unchanged - run.failed
    if run.filters.get("status") and skipped > 0:
        lines.append(f"  ({skipped} listed jobs were not in status {run.filters['status']!r})")
    if run.error:
        lines.append(f"  error: {run.error}")
    return "\n".join(lines)


async def _sync(database_url: str, settings: Settings, filters: SyncFilters, force: bool) -> int:
    freeze_startup_objects()
    async with engine_scope(database_url, settings.infra.database) as engine, run_lock(engine) as held:
        sessionmaker = create_sessionmaker(engine)
        if not held:
            async with sessionmaker() as session:
                active = await repository.active_run(session)
            message = f"sync run {active.id} is {active.status}" if active is not None else "a sync is running"
            print(f"error: {message}; wait for it to finish", file=sys.stderr)
            return EXIT_USAGE
        await reap_abandoned_runs(sessionmaker)
        async with sessionmaker() as session, session.begin():
            run = await start_run(
                session, filters=filters, force=force, trigger="cli", started_by=_user(), status="running"
            )
            run_id = run.id
        progress = ProgressLine(sys.stderr)
        try:
            run = await execute_run(sessionmaker, settings, run_id, on_progress=progress)
        finally:
            progress.done()
    print(summary(run))
    return 0 if run.status == "success" else EXIT_FAILED


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def cmd_sync(args: argparse.Namespace) -> int:
    try:
        filters = SyncFilters(
            project_id=args.project_id, task_id=args.task_id, assignee=args.assignee, status=args.status
        )
    except InvalidSyncFiltersError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    settings = Settings()
    try:
        auth_mode(settings)
    except CvatConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with ensure_stack(CoreSettings().data_dir) as urls:
            return asyncio.run(_sync(urls.database_url, settings, filters, args.force))
    except SyncAlreadyRunningError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return EXIT_USAGE
    except ProgrammingError as error:
        print(f"error: {error.orig}; is the database migrated? run `mirante migrate`", file=sys.stderr)
        return EXIT_USAGE
    except (DBAPIError, OSError) as error:
        print(f"error: the database failed: {getattr(error, 'orig', None) or error}", file=sys.stderr)
        return EXIT_FAILED


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive id, got {number}")
    return number


def add_sync_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`cvat-sync sync`: the pull sync, with CVAT's filters, in the foreground."""
    sync = commands.add_parser(
        "sync",
        help="pull jobs from CVAT now (progress on stderr, statistics on stdout)",
        description="Mirror CVAT jobs: new and changed ones are written (with annotation counts), unchanged ones "
        "skipped; an unfiltered sync also marks jobs CVAT no longer has as deleted. Exit code 0 on success, 1 "
        "when the sync failed, 2 for bad arguments or when another sync is running.",
    )
    sync.add_argument("--project-id", type=_positive, help="only jobs of this CVAT project")
    sync.add_argument("--task-id", type=_positive, help="only jobs of this CVAT task")
    sync.add_argument("--assignee", help="only jobs assigned to this CVAT username")
    sync.add_argument("--status", choices=STATUSES, help="only jobs in this (derived) status")
    sync.add_argument("--force", action="store_true", help="rewrite every job and recount its annotations")
    sync.set_defaults(handler=cmd_sync)


def main(argv: list[str] | None = None) -> int:
    return run_service_cli(SERVICE, argv, extend=add_sync_command)

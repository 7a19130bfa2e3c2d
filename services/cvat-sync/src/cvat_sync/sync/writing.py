"""The writing side of a sync: jobs in committed batches through `JobMirror`, and the run's counts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cvat_sync.cvat.client import ListedJob
from cvat_sync.jobs.service import Incoming, JobMirror, Outcome
from cvat_sync.sync import repository
from cvat_sync.sync.fetching import JobFetcher
from cvat_sync.sync.stats import ProgressCallback, SyncStats

logger = logging.getLogger(__name__)

PROGRESS_SECONDS = 1.0
REFUSED_BY_DATABASE = "the database refused to store it; the details are in the service log"
_NOT_WRITTEN = (Outcome.UNCHANGED, Outcome.STALE)


class BatchWriter:
    """Writes the jobs a sync found new or changed through `JobMirror`, in committed batches of `batch_size`,
    and keeps the run's counts: written with every batch, and at least every `PROGRESS_SECONDS` otherwise."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        stats: SyncStats,
        fetcher: JobFetcher,
        batch_size: int,
        *,
        run_id: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.stats = stats
        self.fetcher = fetcher
        self.batch_size = batch_size
        self.run_id = run_id
        self.on_progress = on_progress
        self._recorded_at = 0.0
        self._committing: asyncio.Task[None] | None = None

    async def finish(self) -> None:
        """When the run stops early, the batch already being committed still finishes (or fails on its own)."""
        committing, self._committing = self._committing, None
        if committing is None:
            return
        try:
            await committing
        except Exception:
            logger.exception("sync: the last batch could not be committed either")

    async def write(self, items: Sequence[ListedJob], *, force: bool) -> None:
        """Apply `items` in committed batches of `sync_write_batch`. Each batch's annotations are counted
        while the previous batch commits; commits stay one at a time and in order."""
        for first in range(0, len(items), self.batch_size):
            batch = items[first : first + self.batch_size]
            prepared = await self.fetcher.prepare_all(batch)
            await self.settle()
            self._committing = asyncio.create_task(self._commit(batch, prepared, force=force))
        await self.progress(wrote=bool(items))

    async def settle(self) -> None:
        """Wait for the batch being committed; its failure is raised here."""
        committing, self._committing = self._committing, None
        if committing is not None:
            await committing

    async def _commit(self, items: Sequence[ListedJob], prepared: Sequence[Incoming | None], *, force: bool) -> None:
        """Write a batch in one transaction; when the database refuses one of its rows, write the batch again
        job by job, so only the jobs it refuses are left out (and recorded as failed)."""
        incoming = [item for item in prepared if item is not None]
        try:
            await self._store(incoming, force=force)
            return
        except DBAPIError as error:
            if not _refused_rows(error):
                raise
            logger.warning(
                "sync: the database refused a batch of %d jobs (%s); one by one now", len(incoming), error.orig
            )
        for item in incoming:
            try:
                await self._store([item], force=force)
            except DBAPIError as error:
                if not _refused_rows(error):
                    raise
                logger.warning("sync: the database refused job %d: %s", item.job.id, error.orig)
                self.stats.job_failed(item.job.id, REFUSED_BY_DATABASE)

    async def _store(self, incoming: Sequence[Incoming], *, force: bool) -> None:
        counted = (self.stats.created, self.stats.updated, self.stats.unchanged)
        try:
            async with self.sessionmaker() as session, session.begin():
                if incoming:
                    mirror = JobMirror(session, source="sync")
                    locked = await mirror.stored([item.job.id for item in incoming])
                    outcomes = await mirror.apply(incoming, force=force, stored=locked)
                    self.stats.created += outcomes.count(Outcome.CREATED)
                    self.stats.updated += outcomes.count(Outcome.UPDATED)
                    self.stats.unchanged += sum(outcome in _NOT_WRITTEN for outcome in outcomes)
                # The counts travel with the batch they count.
                await self.record_progress(session)
        except Exception:
            self.stats.created, self.stats.updated, self.stats.unchanged = counted
            raise

    async def progress(self, *, wrote: bool) -> None:
        if not wrote and self.run_id is not None and time.monotonic() - self._recorded_at >= PROGRESS_SECONDS:
            async with self.sessionmaker() as session, session.begin():
                await self.record_progress(session)
        if self.on_progress is not None:
            self.on_progress(self.stats)

    async def record_progress(self, session: AsyncSession) -> None:
        if self.run_id is not None:
            await repository.record_progress(session, self.run_id, self.stats.as_dict())
            self._recorded_at = time.monotonic()


def _refused_rows(error: DBAPIError) -> bool:
    """Data (class 22) and integrity (class 23) errors are about the rows written, not about the database."""
    sqlstate = str(getattr(error.orig, "sqlstate", None) or "")
    return sqlstate[:2] in ("22", "23")

"""Pull sync from CVAT: stream `/api/jobs` and write what is new or changed (the run itself: `sync.service`).

Memory stays flat: pages are streamed (read ahead while the previous ones are written), each page is
compared with the stored versions as it arrives, annotation counts are fetched only for the jobs that must
be written, and writes are committed in batches of `sync_write_batch`, so a late failure keeps every batch
already written. Unchanged jobs cost no write.

A full sync lists jobs in id order and reads the stored versions in the same order, a chunk at a time,
merging the two: stored live jobs inside a page's id range (or above the last page) that CVAT did not list
are looked up one by one and marked deleted only when CVAT answers 404. "Not listed" alone is no proof:
page-number pagination skips an item whenever a job on an earlier page disappears during the listing.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cvat_sync.config import Settings
from cvat_sync.cvat.client import CvatClient, JobPage, ListedJob
from cvat_sync.cvat.payloads import CvatJob
from cvat_sync.jobs.service import JobMirror
from cvat_sync.sync import repository
from cvat_sync.sync.fetching import JobFetcher, read_ahead
from cvat_sync.sync.filters import SyncFilters
from cvat_sync.sync.stats import ProgressCallback, SyncStats
from cvat_sync.sync.stored import StoredJobs
from cvat_sync.sync.writing import BatchWriter

logger = logging.getLogger(__name__)

PREFETCH_PAGES = 4
DELETION_CHECK_CHUNK = 500


class SyncEngine:
    """One pull sync over a `CvatClient`, writing through `JobMirror` in committed batches.

    `stats` is live (also after a failure); with `run_id` the counts are written to that run's row with
    every write and at least every `PROGRESS_SECONDS`, and `on_progress` is called after every page.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        client: CvatClient,
        settings: Settings,
        *,
        run_id: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.client = client
        self.stats = SyncStats()
        self.fetcher = JobFetcher(client, settings.cvat_concurrency, self.stats)
        self.writer = BatchWriter(
            sessionmaker, self.stats, self.fetcher, settings.sync_write_batch, run_id=run_id, on_progress=on_progress
        )
        self._full = False
        self._in_id_order = True
        self._stored = StoredJobs(sessionmaker)

    async def run(self, filters: SyncFilters, *, force: bool = False) -> SyncStats:
        """Sync the jobs matching `filters`; CVAT errors that stop the run (auth, unreachable) propagate."""
        self._full = filters.is_full
        listing = self.client.iter_jobs(
            project_id=filters.project_id, task_id=filters.task_id, assignee=filters.assignee
        )
        pending: list[ListedJob] = []
        try:
            async for page in read_ahead(listing.pages(), PREFETCH_PAGES):
                self._count_page(page)
                accepted = [item for item in page.jobs if filters.accepts(item[1])]
                # Decided page by page, so unchanged jobs are dropped at once; the others wait for a batch.
                pending.extend(await self._changed(accepted, self._listed_ids(page), force=force))
                if len(pending) >= self.writer.batch_size:
                    await self.writer.write(pending, force=force)
                    pending = []
                else:
                    await self.writer.progress(wrote=False)
            await self.writer.write(pending, force=force)
            await self.writer.settle()
            if self._full:
                await self._check_jobs_listed_nowhere(force=force)
                await self.writer.settle()
        finally:
            await self._stored.close()
            await self.writer.finish()
        return self.stats

    def _count_page(self, page: JobPage) -> None:
        self.stats.expected = page.count
        self.stats.fetched += page.size
        for item in page.invalid:
            logger.warning("sync: skipped an invalid job object (id %s): %s", item.job_id, item.reason)
            self.stats.job_failed(item.job_id, item.reason)

    def _listed_ids(self, page: JobPage) -> list[int]:
        """Every id the page names (invalid objects included: unreadable is not deleted), in order. Notices
        when CVAT does not list in ascending id order (`sort=id` ignored), which rules out range checks."""
        valid = [job.id for _, job in page.jobs]
        if any(later <= earlier for earlier, later in itertools.pairwise(valid)):
            self._in_id_order = False
        return sorted([*valid, *(item.job_id for item in page.invalid if item.job_id is not None)])

    async def _changed(
        self, items: Sequence[ListedJob], listed: Sequence[int] | None, *, force: bool
    ) -> list[ListedJob]:
        """The new and changed jobs among `items` (the others are counted unchanged).

        With `listed` (the ids of one page of a full sync listed in id order) the stored versions come from
        `_stored`, read in id order alongside the listing, which also yields the stored live jobs inside the
        page's id range that CVAT did not list: those are resolved here. Otherwise they are read by id.
        """
        unlisted: list[int] = []
        if listed and self._full and self._in_id_order and listed[0] > self._stored.position:
            stored = dict(await self._stored.take_through(listed[-1]))
            named = set(listed)
            unlisted = [job_id for job_id in stored if job_id not in named]
        else:
            if listed and self._full:
                self._in_id_order = False
            async with self.sessionmaker() as session:
                stored = await repository.live_versions(session, [job.id for _, job in items])
        changed = [item for item in items if force or not _up_to_date(item[1], stored.get(item[1].id))]
        self.stats.unchanged += len(items) - len(changed)
        if unlisted:
            await self._resolve_unlisted(unlisted, force=force)
        return changed

    async def _check_jobs_listed_nowhere(self, *, force: bool) -> None:
        """After a full listing: the stored live jobs above the last listed id were not listed either."""
        if not self._in_id_order:
            logger.warning("sync: CVAT did not list jobs in id order; deleted jobs are not looked for this time")
            return
        while chunk := await self._stored.take_chunk():
            await self._resolve_unlisted([job_id for job_id, _ in chunk], force=force)

    async def _resolve_unlisted(self, ids: Sequence[int], *, force: bool) -> None:
        """Stored live jobs the listing did not name: deleted when CVAT answers 404 for them, written like
        listed jobs when CVAT still has them (page-number pagination skips an item whenever a job on an
        earlier page disappears during the listing)."""
        for first in range(0, len(ids), DELETION_CHECK_CHUNK):
            chunk = ids[first : first + DELETION_CHECK_CHUNK]
            found = await self.fetcher.look_up_all(chunk)
            present = [item for item in found if isinstance(item, tuple)]
            gone = [job_id for job_id, item in zip(chunk, found, strict=True) if item == "gone"]
            self.stats.fetched += len(present)
            await self.writer.write(await self._changed(present, None, force=force), force=force)
            if gone:
                async with self.sessionmaker() as session, session.begin():
                    mirror = JobMirror(session, source="sync")
                    stored = await mirror.stored(gone)
                    self.stats.deleted += await mirror.mark_deleted(list(stored.values()))
                    await self.writer.record_progress(session)


def _up_to_date(job: CvatJob, stored_updated_at: datetime | None) -> bool:
    """The stored live copy is at least as new (the read-only twin of `jobs.service.is_newer`)."""
    return stored_updated_at is not None and stored_updated_at >= job.updated_date

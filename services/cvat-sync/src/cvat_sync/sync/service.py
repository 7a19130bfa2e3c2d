"""Pull sync from CVAT: stream `/api/jobs`, write what is new or changed, record the run.

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

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cvat_sync.config import Settings
from cvat_sync.cvat.client import CvatClient, JobPage, ListedJob, auth_mode
from cvat_sync.cvat.errors import (
    CvatConfigurationError,
    CvatError,
    CvatNotFoundError,
    CvatPermissionError,
    CvatResponseError,
    InvalidJobPayloadError,
)
from cvat_sync.cvat.payloads import STATUSES, CvatJob, Status
from cvat_sync.jobs.service import SCHEMA, SOURCE, Incoming, JobMirror, Outcome
from cvat_sync.sync import repository
from cvat_sync.sync.errors import (
    ActiveRunExistsError,
    CvatNotConfiguredError,
    InvalidSyncFiltersError,
    SyncAlreadyRunningError,
    SyncRunNotFoundError,
)
from cvat_sync.sync.models import SyncRun
from mirante.aio import cancel_and_wait
from mirante.bus import Event, emit

logger = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")
ProgressCallback = Callable[["SyncStats"], None]
PREFETCH_PAGES = 4
PROGRESS_SECONDS = 1.0
DELETION_CHECK_CHUNK = 500
STORED_CHUNK = 2000
TRIGGERS = ("cli", "api", "web")
MAX_JOB_ERRORS = 100
REFUSED_BY_DATABASE = "the database refused to store it; the details are in the service log"
INTERNAL_ERROR_MESSAGE = "internal error: the sync stopped unexpectedly; the details are in the service log"


@dataclass(frozen=True)
class SyncFilters:
    """What a sync covers: CVAT's own filters (sent as query parameters) and the derived status (local)."""

    project_id: int | None = None
    task_id: int | None = None
    assignee: str | None = None
    status: Status | None = None

    def __post_init__(self) -> None:
        for name in ("project_id", "task_id"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 1):
                raise InvalidSyncFiltersError(f"{name} must be a positive integer, got {value!r}")
        if self.assignee is not None and (not isinstance(self.assignee, str) or not self.assignee.strip()):
            raise InvalidSyncFiltersError("assignee must be a non-empty CVAT username")
        if self.status is not None and self.status not in STATUSES:
            raise InvalidSyncFiltersError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    @property
    def is_full(self) -> bool:
        """No filter at all: only such a sync may conclude that unseen jobs were deleted."""
        return all(value is None for value in asdict(self).values())

    def as_json(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SyncFilters:
        known = {name: data.get(name) for name in ("project_id", "task_id", "assignee", "status")}
        return cls(**known)

    def accepts(self, job: CvatJob) -> bool:
        return self.status is None or job.status == self.status


@dataclass
class SyncStats:
    """Counts of one sync. `fetched` counts every job object CVAT listed; jobs left out by the status filter
    are fetched but neither created, updated, unchanged nor failed (see `skipped`). `job_errors` says why the
    first `MAX_JOB_ERRORS` failed jobs failed."""

    expected: int | None = None
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    job_errors: list[dict[str, Any]] = field(default_factory=list)

    def job_failed(self, job_id: int | None, message: str) -> None:
        """Count a job the sync goes on without, keeping the reason of the first few."""
        self.failed += 1
        if len(self.job_errors) < MAX_JOB_ERRORS:
            self.job_errors.append({"job_id": job_id, "message": message})

    @property
    def skipped(self) -> int:
        return max(0, self.fetched - self.created - self.updated - self.unchanged - self.failed)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, int | None]:
        """The counts alone, without the reasons."""
        return {name: value for name, value in asdict(self).items() if name != "job_errors"}


def run_progress(run: SyncRun) -> float | None:
    """Fetched over expected, 0 to 1 (1 once the run succeeded); None before CVAT reported a count."""
    if run.status == "success":
        return 1.0
    if not run.expected:
        return None
    return min(1.0, run.fetched / run.expected)


def run_duration_seconds(run: SyncRun) -> float | None:
    if run.started_at is None:
        return None
    end = run.finished_at or datetime.now(UTC)
    return round((end - run.started_at).total_seconds(), 3)


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
        self.batch_size = settings.sync_write_batch
        self.concurrency = asyncio.Semaphore(settings.cvat_concurrency)
        self.run_id = run_id
        self.on_progress = on_progress
        self.stats = SyncStats()
        self._full = False
        self._in_id_order = True
        self._stored = StoredJobs(sessionmaker)
        self._recorded_at = 0.0
        self._committing: asyncio.Task[None] | None = None

    async def run(self, filters: SyncFilters, *, force: bool = False) -> SyncStats:
        """Sync the jobs matching `filters`; CVAT errors that stop the run (auth, unreachable) propagate."""
        self._full = filters.is_full
        listing = self.client.iter_jobs(
            project_id=filters.project_id, task_id=filters.task_id, assignee=filters.assignee
        )
        pending: list[ListedJob] = []
        try:
            async for page in _read_ahead(listing.pages(), PREFETCH_PAGES):
                self._count_page(page)
                accepted = [item for item in page.jobs if filters.accepts(item[1])]
                # Decided page by page, so unchanged jobs are dropped at once; the others wait for a batch.
                pending.extend(await self._changed(accepted, self._listed_ids(page), force=force))
                if len(pending) >= self.batch_size:
                    await self._write(pending, force=force)
                    pending = []
                else:
                    await self._progress(wrote=False)
            await self._write(pending, force=force)
            await self._settle()
            if self._full:
                await self._check_jobs_listed_nowhere(force=force)
                await self._settle()
        finally:
            await self._stored.close()
            await self._keep_last_batch()
        return self.stats

    async def _keep_last_batch(self) -> None:
        """When the run stops early, the batch already being committed still finishes (or fails on its own)."""
        committing, self._committing = self._committing, None
        if committing is None:
            return
        try:
            await committing
        except Exception:
            logger.exception("sync: the last batch could not be committed either")

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

    async def _write(self, items: Sequence[ListedJob], *, force: bool) -> None:
        """Apply `items` in committed batches of `sync_write_batch`. Each batch's annotations are counted
        while the previous batch commits; commits stay one at a time and in order."""
        for first in range(0, len(items), self.batch_size):
            batch = items[first : first + self.batch_size]
            prepared = await self._bounded_all(self._prepare, batch)
            await self._settle()
            self._committing = asyncio.create_task(self._commit(batch, prepared, force=force))
        await self._progress(wrote=bool(items))

    async def _settle(self) -> None:
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
                await self._record_progress(session)
        except Exception:
            self.stats.created, self.stats.updated, self.stats.unchanged = counted
            raise

    async def _progress(self, *, wrote: bool) -> None:
        if not wrote and self.run_id is not None and time.monotonic() - self._recorded_at >= PROGRESS_SECONDS:
            async with self.sessionmaker() as session, session.begin():
                await self._record_progress(session)
        if self.on_progress is not None:
            self.on_progress(self.stats)

    async def _record_progress(self, session: AsyncSession) -> None:
        if self.run_id is not None:
            await repository.record_progress(session, self.run_id, self.stats.as_dict())
            self._recorded_at = time.monotonic()

    async def _prepare(self, item: ListedJob) -> Incoming | None:
        """Names (when the listing lacks them) and annotation counts; None when this job failed."""
        raw, job = item
        try:
            job = await self._with_names(job)
            counts = await self.client.annotation_counts(job.id)
        except (CvatResponseError, CvatPermissionError) as error:
            logger.warning("sync: job %d failed: %s", job.id, error)
            self.stats.job_failed(job.id, str(error))
            return None
        return Incoming(job=job, raw=raw, counts=counts)

    async def _with_names(self, job: CvatJob) -> CvatJob:
        names: dict[str, str | None] = {}
        if job.task_id is not None and job.task_name is None:
            names["task_name"] = await self.client.task_name(job.task_id)
        if job.project_id is not None and job.project_name is None:
            names["project_name"] = await self.client.project_name(job.project_id)
        return job.model_copy(update=names) if names else job

    async def _bounded_all(self, call: Callable[[A], Coroutine[Any, Any, T]], items: Sequence[A]) -> list[T]:
        """`call` on each of `items`, at most `cvat_concurrency` in flight; the first fatal error cancels the rest.

        Each coroutine is created only once its task runs: a task cancelled before it starts would otherwise
        leave a coroutine that was never awaited."""

        async def bounded(item: A) -> T:
            async with self.concurrency:
                return await call(item)

        if not items:
            return []
        tasks: list[asyncio.Task[T]] = []
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(bounded(item)) for item in items]
        except BaseExceptionGroup as errors:
            raise errors.exceptions[0] from None
        return [task.result() for task in tasks]

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
            found = await self._bounded_all(self._lookup, chunk)
            present = [item for item in found if isinstance(item, tuple)]
            gone = [job_id for job_id, item in zip(chunk, found, strict=True) if item == "gone"]
            self.stats.fetched += len(present)
            await self._write(await self._changed(present, None, force=force), force=force)
            if gone:
                async with self.sessionmaker() as session, session.begin():
                    mirror = JobMirror(session, source="sync")
                    stored = await mirror.stored(gone)
                    self.stats.deleted += await mirror.mark_deleted(list(stored.values()))
                    await self._record_progress(session)

    async def _lookup(self, job_id: int) -> ListedJob | str | None:
        """The job as CVAT has it now, "gone" on 404, None when it cannot be read."""
        try:
            raw = await self.client.get_json(f"/api/jobs/{job_id}")
            return raw, CvatJob.parse(raw)
        except CvatNotFoundError:
            return "gone"
        except (CvatResponseError, CvatPermissionError, InvalidJobPayloadError) as error:
            logger.warning("sync: could not confirm whether job %d still exists: %s", job_id, error)
            self.stats.job_failed(job_id, f"could not confirm it still exists: {error}")
            return None


class StoredJobs:
    """The live stored jobs in ascending id order, read `STORED_CHUNK` at a time (keyset paging) and one chunk
    ahead, so a full sync can merge them with CVAT's id-ordered listing without waiting on the database."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self.position = 0
        self._buffer: collections.deque[tuple[int, datetime]] = collections.deque()
        self._read_upto = 0
        self._exhausted = False
        self._reading: asyncio.Task[None] | None = None

    async def take_through(self, high: int) -> list[tuple[int, datetime]]:
        """`(id, cvat_updated_at)` of every stored live job with `position < id <= high`; moves to `high`."""
        taken: list[tuple[int, datetime]] = []
        while True:
            while self._buffer and self._buffer[0][0] <= high:
                taken.append(self._buffer.popleft())
            if self._buffer or (self._exhausted and self._reading is None):
                break
            await self._next_chunk()
        self.position = max(self.position, high)
        self._read_ahead()
        return taken

    async def take_chunk(self) -> list[tuple[int, datetime]]:
        """The next stored live jobs after `position` (at most a chunk or so); empty at the end."""
        if not self._buffer and not (self._exhausted and self._reading is None):
            await self._next_chunk()
        taken = list(self._buffer)
        self._buffer.clear()
        if taken:
            self.position = taken[-1][0]
        return taken

    async def close(self) -> None:
        """Cancel a read still under way (the sync stopped early)."""
        reading, self._reading = self._reading, None
        if reading is not None:
            await cancel_and_wait(reading)

    def _read_ahead(self) -> None:
        if self._reading is not None and self._reading.done():
            reading, self._reading = self._reading, None
            reading.result()
        if self._reading is None and not self._exhausted and len(self._buffer) < STORED_CHUNK // 2:
            self._reading = asyncio.create_task(self._read())

    async def _next_chunk(self) -> None:
        reading, self._reading = self._reading, None
        await (reading if reading is not None else self._read())

    async def _read(self) -> None:
        async with self.sessionmaker() as session:
            rows = await repository.live_versions_after(session, self._read_upto, STORED_CHUNK)
        self._exhausted = len(rows) < STORED_CHUNK
        if rows:
            self._read_upto = rows[-1][0]
            self._buffer.extend(rows)


def _refused_rows(error: DBAPIError) -> bool:
    """Data (class 22) and integrity (class 23) errors are about the rows written, not about the database."""
    sqlstate = str(getattr(error.orig, "sqlstate", None) or "")
    return sqlstate[:2] in ("22", "23")


def _up_to_date(job: CvatJob, stored_updated_at: datetime | None) -> bool:
    """The stored live copy is at least as new (the read-only twin of `jobs.service.is_newer`)."""
    return stored_updated_at is not None and stored_updated_at >= job.updated_date


_NOT_WRITTEN = (Outcome.UNCHANGED, Outcome.STALE)


async def _read_ahead(pages: AsyncIterator[JobPage], depth: int) -> AsyncIterator[JobPage]:
    """Fetch up to `depth` pages ahead of the consumer, so CVAT's latency overlaps the database writes."""
    queue: asyncio.Queue[JobPage | BaseException | None] = asyncio.Queue(maxsize=depth)

    async def produce() -> None:
        try:
            async for page in pages:
                await queue.put(page)
            await queue.put(None)
        except Exception as error:
            await queue.put(error)

    producer = asyncio.create_task(produce())
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        await cancel_and_wait(producer)


# -- runs ----------------------------------------------------------------------------------------------------


def check_cvat_configured(settings: Settings) -> None:
    """`CvatNotConfiguredError` (503) when the settings hold no usable CVAT credential."""
    try:
        auth_mode(settings)
    except CvatConfigurationError as error:
        raise CvatNotConfiguredError(str(error)) from None


async def start_run(
    session: AsyncSession,
    *,
    filters: SyncFilters,
    force: bool,
    trigger: str,
    started_by: str | None,
    status: str = "queued",
) -> SyncRun:
    """Record a new run (`queued` for the worker, or `running` for a foreground sync that holds the run
    lock); `SyncAlreadyRunningError` (409) names the active run."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}")
    if status not in ("queued", "running"):
        raise ValueError("a new run is queued or running")
    values: dict[str, Any] = {
        "status": status,
        "trigger": trigger,
        "started_by": started_by,
        "filters": filters.as_json(),
        "force": force,
    }
    if status == "running":
        values["started_at"] = datetime.now(UTC)
    try:
        return await repository.insert_run(session, values)
    except ActiveRunExistsError:
        raise SyncAlreadyRunningError(await repository.active_run(session)) from None


async def get_run(session: AsyncSession, run_id: int) -> SyncRun:
    run = await repository.get_run(session, run_id)
    if run is None:
        raise SyncRunNotFoundError(run_id)
    return run


async def list_runs(
    session: AsyncSession, *, offset: int, limit: int, status: str | None = None
) -> tuple[list[SyncRun], int]:
    return await repository.list_runs(session, offset=offset, limit=limit, status=status)


async def execute_run(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    run_id: int,
    *,
    client: CvatClient | None = None,
    on_progress: ProgressCallback | None = None,
) -> SyncRun:
    """Carry out a run already marked running, then record its counts and outcome and emit
    `cvat.sync.completed`. CVAT and internal errors end the run as `error`; they are not raised."""
    async with sessionmaker() as session:
        run = await get_run(session, run_id)
        filters, force = SyncFilters.from_json(run.filters), run.force
    stats = SyncStats()
    status, error = "success", None
    try:
        own_client = client or CvatClient(settings)
        engine = SyncEngine(sessionmaker, own_client, settings, run_id=run_id, on_progress=on_progress)
        stats = engine.stats
        try:
            await engine.run(filters, force=force)
        finally:
            if client is None:
                await own_client.aclose()
    except CvatError as failure:
        status, error = "error", str(failure)
    except asyncio.CancelledError:
        await asyncio.shield(
            _finish(sessionmaker, run_id, stats, "error", "interrupted: the process stopped during the sync")
        )
        raise
    except Exception:
        logger.exception("sync run %d failed", run_id)
        status, error = "error", INTERNAL_ERROR_MESSAGE
    return await _finish(sessionmaker, run_id, stats, status, error)


async def _finish(
    sessionmaker: async_sessionmaker[AsyncSession], run_id: int, stats: SyncStats, status: str, error: str | None
) -> SyncRun:
    async with sessionmaker() as session, session.begin():
        run = await repository.get_run(session, run_id, refresh=True)
        if run is None:
            raise SyncRunNotFoundError(run_id)
        for name, value in stats.as_dict().items():
            setattr(run, name, value)
        run.status, run.error, run.finished_at = status, error, datetime.now(UTC)
        await session.flush()
        await emit(session, SCHEMA, _completed_event(run))
    logger.info("sync run %d: %s %s", run_id, status, stats.counts())
    return run


def _completed_event(run: SyncRun) -> Event:
    data = {
        "run_id": run.id,
        "status": run.status,
        "trigger": run.trigger,
        "started_by": run.started_by,
        "filters": run.filters,
        "force": run.force,
        "expected": run.expected,
        "fetched": run.fetched,
        "created": run.created,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "deleted": run.deleted,
        "failed": run.failed,
        "duration_seconds": run_duration_seconds(run),
        "error": run.error,
    }
    return Event(source=SOURCE, type="cvat.sync.completed", subject=f"sync-run/{run.id}", data=data)


__all__ = [
    "ProgressCallback",
    "SyncEngine",
    "SyncFilters",
    "SyncStats",
    "execute_run",
    "get_run",
    "list_runs",
    "start_run",
]

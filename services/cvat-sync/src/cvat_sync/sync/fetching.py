"""What a sync asks CVAT for besides the listing: pages read ahead, names the listing lacks, annotation
counts, and whether a job the listing did not name still exists."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from cvat_sync.cvat.client import CvatClient, JobPage, ListedJob
from cvat_sync.cvat.errors import CvatNotFoundError, CvatPermissionError, CvatResponseError, InvalidJobPayloadError
from cvat_sync.cvat.payloads import CvatJob
from cvat_sync.jobs.service import Incoming
from cvat_sync.sync.stats import SyncStats
from mirante.aio import cancel_and_wait

logger = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")

LookedUp = ListedJob | str | None
"""A job as CVAT has it now, "gone" when CVAT answered 404, None when it could not be read."""


class JobFetcher:
    """Requests about single jobs, at most `concurrency` in flight; a job that fails is counted in `stats`
    and the sync goes on without it."""

    def __init__(self, client: CvatClient, concurrency: int, stats: SyncStats) -> None:
        self.client = client
        self.concurrency = asyncio.Semaphore(concurrency)
        self.stats = stats

    async def prepare_all(self, items: Sequence[ListedJob]) -> list[Incoming | None]:
        """Each listed job with its names and annotation counts, in order; None for a job that failed."""
        return await self._bounded_all(self._prepare, items)

    async def look_up_all(self, ids: Sequence[int]) -> list[LookedUp]:
        """Each job as CVAT has it now, in order (see `LookedUp`)."""
        return await self._bounded_all(self._lookup, ids)

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

    async def _lookup(self, job_id: int) -> LookedUp:
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


async def read_ahead(pages: AsyncIterator[JobPage], depth: int) -> AsyncIterator[JobPage]:
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

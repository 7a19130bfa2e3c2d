"""Recounting the annotations of jobs webhooks touched, off the webhook's request path.

CVAT's job webhooks carry no annotation counts, yet an annotation save is what most `update:job` deliveries
announce. A webhook that writes a job marks its counts as asked for (`jobs.counts_requested_at`) in its own
transaction; once it has answered, the job id is handed to this process's `CountRefresher`, which fetches
`/api/jobs/{id}/annotations/` and stores the counts:

- coalesced: a job asked for again before its recount started is recounted once (`recount_delay_seconds`
  after the first request, so a burst of webhooks for one job costs one fetch);
- bounded: at most `recount_concurrency` fetches in flight, each given up after `recount_timeout_seconds`;
- never in the webhook's way: the webhook's answer and its update do not wait for the recount, and a recount
  that fails is logged and leaves the request standing, so the next sync recounts the job.

The request is in the database, not only in memory: a recount lost to a restart, or asked for while no
CVAT credentials are configured, is still done by the next sync.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cvat_sync.config import Settings
from cvat_sync.cvat.client import CvatClient
from cvat_sync.cvat.errors import CvatConfigurationError, CvatError
from cvat_sync.jobs.service import JobMirror
from cvat_sync.webhooks.service import SOURCE
from mirante.aio import cancel_and_wait, wait_event

if TYPE_CHECKING:
    from fastapi import FastAPI

logger = logging.getLogger(__name__)

IDLE_SECONDS = 60.0


class CountRefresher:
    """Recounts the annotations of the jobs handed to `request`, coalesced and bounded (see the module)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], client: CvatClient, settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.client = client
        self.delay = settings.recount_delay_seconds
        self.timeout = settings.recount_timeout_seconds
        self.slots = asyncio.Semaphore(settings.recount_concurrency)
        self._due: dict[int, float] = {}
        self._in_flight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()

    def request(self, job_ids: Iterable[int]) -> None:
        """Ask for the jobs' counts; a job already waiting keeps its turn (that is the coalescing)."""
        due = time.monotonic() + self.delay
        for job_id in job_ids:
            self._due.setdefault(job_id, due)
        self._wakeup.set()

    async def run(self) -> None:
        """Start each recount when it is due, until cancelled (recounts under way are cancelled too; their
        requests stay in the database for the next sync)."""
        try:
            while True:
                self._wakeup.clear()
                now = time.monotonic()
                # A job being recounted waits for that recount to end: it may have read the annotations before
                # the change that asked again.
                ready = [job_id for job_id, at in self._due.items() if at <= now and job_id not in self._in_flight]
                for job_id in ready:
                    del self._due[job_id]
                    self._start(job_id)
                waiting = [at for job_id, at in self._due.items() if job_id not in self._in_flight]
                await wait_event(self._wakeup, max(0.0, min(waiting) - now) if waiting else IDLE_SECONDS)
        finally:
            for task in list(self._tasks):
                await cancel_and_wait(task)

    def _start(self, job_id: int) -> None:
        self._in_flight.add(job_id)
        task = asyncio.create_task(self._recount(job_id))
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._ended(job_id, done))

    def _ended(self, job_id: int, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight.discard(job_id)
        if job_id in self._due:
            self._wakeup.set()

    async def _recount(self, job_id: int) -> None:
        async with self.slots:
            asked_before = datetime.now(UTC)
            try:
                async with asyncio.timeout(self.timeout):
                    counts = await self.client.annotation_counts(job_id)
                async with self.sessionmaker() as session, session.begin():
                    stored = await JobMirror(session, source=SOURCE).record_counts(
                        job_id, counts, asked_before=asked_before
                    )
            except TimeoutError:
                logger.warning(
                    "annotation counts of job %d not refreshed: CVAT took longer than %s s; the next sync counts them",
                    job_id,
                    self.timeout,
                )
                return
            except CvatError as error:
                logger.warning(
                    "annotation counts of job %d not refreshed: %s; the next sync counts them", job_id, error
                )
                return
            except Exception:
                logger.exception("annotation counts of job %d not refreshed; the next sync counts them", job_id)
                return
        if stored:
            logger.info("annotation counts of job %d refreshed: %s", job_id, counts)


def count_refresher(app: FastAPI) -> CountRefresher | None:
    """This process's refresher, when its worker runs (None in apps started without workers, or while CVAT is
    not configured: then the next sync counts)."""
    refresher: CountRefresher | None = getattr(app.state, "count_refresher", None)
    return refresher


async def count_refresh_worker(app: FastAPI) -> None:
    """The app's worker behind `count_refresher`: one CVAT client for the app's lifetime."""
    settings: Settings = app.state.settings
    try:
        client = CvatClient(settings)
    except CvatConfigurationError as error:
        logger.info("webhooks will not recount annotations (%s); syncs count them", error)
        return
    try:
        refresher = CountRefresher(app.state.sessionmaker, client, settings)
        app.state.count_refresher = refresher
        await refresher.run()
    finally:
        app.state.count_refresher = None
        await client.aclose()

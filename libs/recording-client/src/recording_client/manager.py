"""`UploadManager`: a persistent queue of recordings, uploaded by N concurrent workers that resume, retry and
respect the bandwidth limit and the upload window.

One task is one recording (a video and its metadata file). Its life: queued → (waiting for the window) →
uploading → completed, or failed when an error cannot be retried or the retries run out. Every transition is
saved to the state file before the next network step, so after a crash `start()` picks each unfinished task up
again: it asks the server how many bytes of each file it holds and sends only the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Collection
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recording_client.backoff import retry_delay
from recording_client.client import RecordingUploadClient, UploadSession
from recording_client.clock import Clock, SystemClock
from recording_client.config import ApiConfig
from recording_client.errors import (
    ApiError,
    CorruptUploadError,
    IncompleteUploadError,
    OffsetMismatchError,
    ServerError,
    SessionExpiredError,
    UploadError,
    UploadPaused,
    ValidationError,
)
from recording_client.recordings import build_session_request, read_metadata, scan_recordings, sha256_of
from recording_client.schedule import UploadWindow
from recording_client.state import (
    COMPLETED,
    FAILED,
    QUEUED,
    RETRYING,
    UNFINISHED,
    UPLOADING,
    WAITING,
    StateStore,
    UploadTask,
    utc_now,
)
from recording_client.throttle import TokenBucket

logger = logging.getLogger(__name__)

# Bounds on the steps that are not failures but could still loop against a misbehaving server.
MAX_NEW_SESSIONS = 3
MAX_OFFSET_CONFLICTS = 5
MAX_FINALIZE_ROUNDS = 3
# While the window is closed the manager wakes at least this often, so a changed clock (DST, NTP) is noticed.
WINDOW_RECHECK_SECONDS = 300.0

StartedCallback = Callable[[str, str], None]
ProgressCallback = Callable[[str, int], None]
CompletedCallback = Callable[[str, str], None]
FailedCallback = Callable[[str, str], None]


class UploadManager:
    """Queue and workers. Use `async with manager:` (or `start()` / `stop()`), then `upload_recording(...)`.

    Callbacks, as WATS's integration sets them: `on_upload_started(task_id, filename)`,
    `on_upload_progress(task_id, percent)`, `on_upload_completed(task_id, server_file_id)`,
    `on_upload_failed(task_id, error)`. They run on the event loop and must not block.
    """

    def __init__(
        self,
        client: RecordingUploadClient,
        *,
        state_path: Path,
        max_concurrent_uploads: int = 2,
        max_retries: int = 3,
        delete_after_upload: bool = False,
        bandwidth_limit: float | None = None,
        upload_window: UploadWindow | None = None,
        completed_retention_days: float = 31,
        session_overrides: dict[str, Any] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_concurrent_uploads < 1:
            raise ValueError("max_concurrent_uploads must be at least 1")
        self.client = client
        self.store = StateStore(state_path)
        self.max_concurrent_uploads = max_concurrent_uploads
        self.max_retries = max_retries
        self.delete_after_upload = delete_after_upload
        self.upload_window = upload_window
        self.completed_retention_days = completed_retention_days
        self.session_overrides = session_overrides or {}
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.throttle = TokenBucket(bandwidth_limit, clock=self.clock) if bandwidth_limit else None

        self.on_upload_started: StartedCallback | None = None
        self.on_upload_progress: ProgressCallback | None = None
        self.on_upload_completed: CompletedCallback | None = None
        self.on_upload_failed: FailedCallback | None = None

        self._tasks: dict[str, UploadTask] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._active: set[str] = set()
        self._save_lock = asyncio.Lock()
        self._writes: set[asyncio.Future[None]] = set()
        self._started = False

    @classmethod
    def from_config(
        cls, config: ApiConfig, *, client: RecordingUploadClient | None = None, **kwargs: Any
    ) -> UploadManager:
        """A manager (and, unless given, its client) as the `api` section of config.json describes it."""
        if client is None:
            client = RecordingUploadClient(
                config.base_url,
                config.api_token,
                timeout=config.upload_timeout,
                chunk_size=config.chunk_size_kb * 1024,
            )
        kwargs.setdefault("state_path", config.state_file)
        kwargs.setdefault("max_concurrent_uploads", config.max_concurrent_uploads)
        kwargs.setdefault("max_retries", config.max_retries)
        kwargs.setdefault("delete_after_upload", config.delete_after_upload)
        kwargs.setdefault("bandwidth_limit", config.bandwidth_limit_bytes)
        kwargs.setdefault("upload_window", config.upload_window)
        kwargs.setdefault("completed_retention_days", config.max_file_age_days + 1)
        return cls(client, **kwargs)

    # Lifecycle

    async def __aenter__(self) -> UploadManager:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Load the state file, queue every unfinished task again (oldest first) and start the workers."""
        if self._started:
            return
        self._tasks = await asyncio.to_thread(self.store.load)
        self._prune_completed()
        for task in sorted(self._tasks.values(), key=lambda t: t.created_at):
            if task.status in UNFINISHED:
                task.status = QUEUED
                self._queue.put_nowait(task.task_id)
        await self._save()
        self._workers = [
            asyncio.create_task(self._worker(), name=f"upload-worker-{n}") for n in range(self.max_concurrent_uploads)
        ]
        self._started = True
        logger.info("UploadManager started with %d workers", self.max_concurrent_uploads)

    async def stop(self) -> None:
        """Stop the workers where they are; unfinished tasks resume at the next `start()`."""
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self._writes:
            await asyncio.gather(*self._writes)
        self._workers = []
        self._active.clear()
        self._queue = asyncio.Queue()
        self._started = False

    async def wait_idle(self) -> None:
        """Return once every queued task is completed or failed."""
        await self._queue.join()

    # Queueing

    async def upload_recording(
        self, video_file: Path, metadata_file: Path | None = None, *, session_info: dict[str, Any] | None = None
    ) -> str:
        """Queue a recording; returns its task id (the id of the task already queued for the same file).

        `session_info` overrides fields of the create-session body (e.g. `connection_info`). Without a metadata
        file, one is written from the session's fields, so the server always receives both files.
        """
        self._require_started()
        video = await asyncio.to_thread(Path(video_file).resolve)
        stat = await asyncio.to_thread(video.stat)
        for task in self._tasks.values():
            same_file = task.video_path == str(video) and task.video_size == stat.st_size
            if same_file and task.video_mtime_ns == stat.st_mtime_ns and task.status in UNFINISHED:
                return task.task_id
        metadata = await asyncio.to_thread(Path(metadata_file).resolve) if metadata_file is not None else None
        document = await asyncio.to_thread(read_metadata, metadata)
        request = build_session_request(
            video,
            document,
            file_size=stat.st_size,
            sha256=None,
            overrides={**self.session_overrides, **(session_info or {})},
        )
        task_id = self._new_task_id(video)
        generated = False
        if metadata is None:
            metadata = self.store.path.parent / "metadata" / f"{task_id}.json"
            await asyncio.to_thread(_write_json, metadata, request)
            generated = True
        metadata_size = (await asyncio.to_thread(metadata.stat)).st_size
        task = UploadTask(
            task_id=task_id,
            video_path=str(video),
            metadata_path=str(metadata),
            video_size=stat.st_size,
            video_mtime_ns=stat.st_mtime_ns,
            session_request=request,
            total_bytes=stat.st_size + metadata_size,
            metadata_generated=generated,
        )
        self._tasks[task_id] = task
        await self._save()
        self._queue.put_nowait(task_id)
        logger.info("Recording queued for upload: %s (task: %s)", video.name, task_id)
        return task_id

    async def upload_older_recordings(
        self, directory: Path, max_age_days: float = 30, *, exclude: Collection[Path] = ()
    ) -> list[str]:
        """Queue the finished recordings in `directory` modified within `max_age_days` that were never
        uploaded (nor are queued), except the videos in `exclude`; oldest first."""
        self._require_started()
        found = await asyncio.to_thread(
            scan_recordings, Path(directory), max_age_days=max_age_days, now=datetime.now(UTC), min_quiet_seconds=60
        )
        known = {(t.video_path, t.video_size, t.video_mtime_ns) for t in self._tasks.values() if t.status != FAILED}
        task_ids = []
        for recording in found:
            video = await asyncio.to_thread(recording.video.resolve)
            stat = await asyncio.to_thread(video.stat)
            if video in exclude or (str(video), stat.st_size, stat.st_mtime_ns) in known:
                continue
            task_ids.append(await self.upload_recording(video, recording.metadata))
        return task_ids

    async def retry_failed(self) -> list[str]:
        """Queue the failed tasks again, with a fresh retry count."""
        self._require_started()
        retried = []
        for task in self._tasks.values():
            if task.status == FAILED:
                task.status, task.retries, task.error = QUEUED, 0, None
                retried.append(task.task_id)
        await self._save()
        for task_id in retried:
            self._queue.put_nowait(task_id)
        return retried

    # Status

    def get_upload_status(self, task_id: str) -> dict[str, Any] | None:
        task = self._tasks.get(task_id)
        if task is None:
            return None
        return {
            "task_id": task.task_id,
            "filename": Path(task.video_path).name,
            "status": task.status,
            "progress": task.progress,
            "bytes_sent": task.bytes_sent,
            "total_bytes": task.total_bytes,
            "retry_count": task.retries,
            "session_id": (task.session or {}).get("session_id"),
            "server_file_id": task.server_file_id,
            "error": task.error,
        }

    def get_queue_status(self) -> dict[str, int]:
        statuses = [task.status for task in self._tasks.values()]
        return {
            "queue_size": sum(1 for s in statuses if s in UNFINISHED) - len(self._active),
            "active_uploads": len(self._active),
            "completed_uploads": statuses.count(COMPLETED),
            "failed_uploads": statuses.count(FAILED),
        }

    @property
    def tasks(self) -> list[UploadTask]:
        return list(self._tasks.values())

    # Work

    async def _worker(self) -> None:
        while True:
            task_id = await self._queue.get()
            try:
                task = self._tasks.get(task_id)
                if task is not None and task.status in UNFINISHED:
                    self._active.add(task_id)
                    await self._run(task)
            except Exception as exc:
                logger.exception("upload task %s crashed", task_id)
                task = self._tasks.get(task_id)
                if task is not None:
                    await self._fail(task, UploadError(f"unexpected error: {exc!r}"))
            finally:
                self._active.discard(task_id)
                self._queue.task_done()

    async def _run(self, task: UploadTask) -> None:
        announced = False
        new_sessions = 0
        while True:
            await self._wait_for_window(task)
            await self._set_status(task, UPLOADING)
            if not announced:
                announced = True
                self._call(self.on_upload_started, task.task_id, Path(task.video_path).name)
            before = task.bytes_sent
            try:
                recording = await self._attempt(task)
            except UploadPaused:
                logger.info("upload %s paused: the upload window closed", task.task_id)
                continue
            except (SessionExpiredError, CorruptUploadError) as exc:
                # The server lost the session or holds bytes that do not match: only a new session helps.
                new_sessions += 1
                if new_sessions > MAX_NEW_SESSIONS:
                    await self._fail(task, exc)
                    return
                logger.warning("upload %s: %s; starting a new session", task.task_id, exc)
                task.session = None
                task.bytes_sent = 0
                continue
            except ApiError as exc:
                if not (exc.retriable or isinstance(exc, IncompleteUploadError)):
                    await self._fail(task, exc)
                    return
                if task.bytes_sent > before:
                    task.retries = 0  # an attempt that moved the upload forward is not a strike against it
                if task.retries >= self.max_retries:
                    await self._fail(task, exc)
                    return
                delay = retry_delay(task.retries, retry_after=exc.retry_after, rng=self.rng)
                task.retries += 1
                task.error = str(exc)
                await self._set_status(task, RETRYING)
                logger.warning(
                    "upload %s: %s; retry %d/%d in %.1f s", task.task_id, exc, task.retries, self.max_retries, delay
                )
                await self.clock.sleep(delay)
                continue
            except OSError as exc:
                await self._fail(task, UploadError(f"cannot read the recording: {exc}"))
                return
            await self._complete(task, recording)
            return

    async def _attempt(self, task: UploadTask) -> Any:
        """One pass: open a session if there is none, send what the server lacks, finalize."""
        video = Path(task.video_path)
        assert task.metadata_path is not None
        metadata = Path(task.metadata_path)
        stat = await asyncio.to_thread(video.stat)
        if (stat.st_size, stat.st_mtime_ns) != (task.video_size, task.video_mtime_ns):
            raise UploadError(f"{video.name} changed after it was queued; queue it again")
        if task.sha256 is None:
            task.sha256 = await asyncio.to_thread(sha256_of, video)
            await self._save()
        if task.session is None:
            request = {**task.session_request, "file_size": task.video_size, "sha256": task.sha256}
            try:
                session = await self.client.create_session(request)
            except ValidationError as exc:
                # The server already holds this recording (a finalize whose answer was lost, then the state too).
                recording_id = exc.details.get("recording_id") if isinstance(exc.details, dict) else None
                if exc.code == "session_finished" and recording_id:
                    return {"id": recording_id}
                raise
            task.session = asdict(session)
            task.sessions_opened += 1
            await self._save()  # before a single byte goes out, so a restart continues this session
        session = UploadSession(**task.session)
        metadata_size = (await asyncio.to_thread(metadata.stat)).st_size
        for finalize_round in range(1, MAX_FINALIZE_ROUNDS + 1):
            status = await self.client.get_status(session.session_id)
            if status.recording_id is not None:
                # Finalized by an earlier attempt whose answer was lost: the recording exists, do not send it again.
                return {"id": status.recording_id}
            await self._send_missing(
                task, session.video_upload_url, video, task.video_size, status.video.received, base=0
            )
            await self._send_missing(
                task,
                session.metadata_upload_url,
                metadata,
                metadata_size,
                status.metadata.received,
                base=task.video_size,
            )
            try:
                return await self.client.finalize(session.session_id)
            except IncompleteUploadError as exc:
                if finalize_round == MAX_FINALIZE_ROUNDS:
                    raise
                logger.warning("upload %s: finalize says %s; reading the status again", task.task_id, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_missing(
        self, task: UploadTask, url: str, path: Path, size: int, received: int, *, base: int
    ) -> None:
        """Send `path` from the server's offset `received`; on a 409 continue from the offset it names."""
        if received > size:
            raise CorruptUploadError(f"the server holds {received} bytes of {path.name}, which has {size}")
        window = self.upload_window

        def should_pause() -> bool:
            return window is not None and not window.is_open(self.clock.now())

        def progress(sent: int) -> None:
            task.bytes_sent = base + sent
            percent = task.progress
            if percent != last_percent[0]:
                last_percent[0] = percent
                self._call(self.on_upload_progress, task.task_id, percent)

        last_percent = [-1]
        progress(received)
        conflicts = 0
        while received < size:
            try:
                received = await self.client.upload_file(
                    url,
                    path,
                    offset=received,
                    size=size,
                    on_progress=progress,
                    throttle=self.throttle,
                    should_pause=should_pause if window is not None else None,
                )
            except OffsetMismatchError as exc:
                conflicts += 1
                if conflicts > MAX_OFFSET_CONFLICTS:
                    raise ServerError(f"the server keeps refusing the offset of {path.name}") from exc
                if exc.offset is None:
                    status = await self.client.get_status((task.session or {})["session_id"])
                    exc.offset = status.video.received if base == 0 else status.metadata.received
                logger.info(
                    "upload %s: server holds %d bytes of %s, continuing there", task.task_id, exc.offset, path.name
                )
                received = exc.offset
                if received > size:
                    raise CorruptUploadError(f"the server holds {received} bytes of {path.name}") from exc
            progress(received)

    async def _wait_for_window(self, task: UploadTask) -> None:
        window = self.upload_window
        if window is None:
            return
        while (seconds := window.seconds_until_open(self.clock.now())) > 0:
            if task.status != WAITING:
                await self._set_status(task, WAITING)
                logger.info("upload %s waits %.0f s for the upload window", task.task_id, seconds)
            await self.clock.sleep(min(seconds, WINDOW_RECHECK_SECONDS))

    async def _complete(self, task: UploadTask, recording: Any) -> None:
        server_id = None
        if isinstance(recording, dict):
            server_id = next((recording[k] for k in ("id", "file_id", "recording_id") if recording.get(k)), None)
        task.server_file_id = str(server_id) if server_id is not None else None
        task.bytes_sent = task.total_bytes
        task.error = None
        task.completed_at = utc_now()
        await self._set_status(task, COMPLETED)
        logger.info("Upload completed: %s", task.task_id)
        if self.delete_after_upload:
            for name in (task.video_path, task.metadata_path):
                if name:
                    with contextlib.suppress(FileNotFoundError):
                        await asyncio.to_thread(Path(name).unlink)
        elif task.metadata_generated and task.metadata_path:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(Path(task.metadata_path).unlink)
        self._call(self.on_upload_completed, task.task_id, task.server_file_id or "")

    async def _fail(self, task: UploadTask, error: ApiError) -> None:
        task.error = str(error)
        await self._set_status(task, FAILED)
        logger.error("Upload failed: %s: %s", task.task_id, error)
        self._call(self.on_upload_failed, task.task_id, task.error)

    # Helpers

    async def _set_status(self, task: UploadTask, status: str) -> None:
        task.status = status
        task.updated_at = utc_now()
        await self._save()

    async def _save(self) -> None:
        """Write the state file. The write runs to its end even when the caller is cancelled (`stop()`), and
        `stop()` waits for it, so a stopped manager never leaves a write behind to race the next one."""
        snapshot = {task_id: UploadTask.from_dict(asdict(task)) for task_id, task in self._tasks.items()}
        write = asyncio.ensure_future(self._write(snapshot))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        await asyncio.shield(write)

    async def _write(self, snapshot: dict[str, UploadTask]) -> None:
        # The lock hands over in arrival order, so the snapshots reach the disk in the order they were taken.
        async with self._save_lock:
            await asyncio.to_thread(self.store.save, snapshot)

    def _prune_completed(self) -> None:
        cutoff = (datetime.now(UTC) - timedelta(days=self.completed_retention_days)).isoformat()
        for task_id in [t.task_id for t in self._tasks.values() if t.status == COMPLETED]:
            completed_at = self._tasks[task_id].completed_at
            if completed_at is not None and completed_at < cutoff:
                del self._tasks[task_id]

    def _require_started(self) -> None:
        # Before start() the state file is not loaded yet, and saving would overwrite it.
        if not self._started:
            raise RuntimeError("start the UploadManager (or enter `async with`) before queueing uploads")

    def _new_task_id(self, video: Path) -> str:
        base = f"upload_{int(time.time())}_{video.stem}"
        task_id, n = base, 1
        while task_id in self._tasks:
            n += 1
            task_id = f"{base}_{n}"
        return task_id

    @staticmethod
    def _call(callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            logger.exception("upload callback %r failed", callback)


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")

"""`recording-upload`: upload recordings, watch a folder, show the queue and the server's status.

Settings come from WATS's config.json (`--config`, its `api` section) and may be overridden by options; the
token may also come from `RECORDING_UPLOAD_TOKEN`, which keeps it out of the shell history.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from recording_client.client import RecordingUploadClient
from recording_client.config import ApiConfig, ConfigError
from recording_client.errors import ApiError
from recording_client.manager import UploadManager
from recording_client.recordings import find_metadata, scan_recordings
from recording_client.state import COMPLETED, StateStore

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
BAR_WIDTH = 30


class ProgressDisplay:
    """A redrawn progress bar on a terminal; on anything else one line per tenth, so logs stay readable."""

    def __init__(self, manager: UploadManager, stream: TextIO) -> None:
        self.manager = manager
        self.stream = stream
        self.tty = stream.isatty()
        self._names: dict[str, str] = {}
        self._printed_tenth: dict[str, int] = {}
        self._started_at: dict[str, float] = {}
        self._line_open = False

    def attach(self) -> None:
        self.manager.on_upload_started = self.started
        self.manager.on_upload_progress = self.progress
        self.manager.on_upload_completed = self.completed
        self.manager.on_upload_failed = self.failed

    def _line(self, text: str) -> None:
        if self._line_open:
            self.stream.write("\r\x1b[K")
            self._line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def started(self, task_id: str, filename: str) -> None:
        self._names[task_id] = filename
        self._started_at[task_id] = time.monotonic()
        self._line(f"started   {filename}")

    def progress(self, task_id: str, percent: int) -> None:
        name = self._names.get(task_id, task_id)
        if not self.tty:
            tenth = percent // 10
            if tenth > self._printed_tenth.get(task_id, 0):
                self._printed_tenth[task_id] = tenth
                self._line(f"progress  {name} {percent}%")
            return
        status = self.manager.get_upload_status(task_id) or {}
        elapsed = max(time.monotonic() - self._started_at.get(task_id, time.monotonic()), 1e-3)
        rate = status.get("bytes_sent", 0) / elapsed / 1_000_000
        filled = percent * BAR_WIDTH // 100
        queue = self.manager.get_queue_status()
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        self.stream.write(
            f"\r\x1b[K[{bar}] {percent:3d}% {name} {rate:.1f} MB/s"
            f" ({queue['active_uploads']} active, {queue['queue_size']} queued)"
        )
        self.stream.flush()
        self._line_open = True

    def completed(self, task_id: str, server_file_id: str) -> None:
        self._line(f"completed {self._names.get(task_id, task_id)} -> {server_file_id}")

    def failed(self, task_id: str, error: str) -> None:
        self._line(f"failed    {self._names.get(task_id, task_id)}: {error}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recording-upload", description=__doc__)
    parser.add_argument("--config", type=Path, help="WATS config.json (its `api` section)")
    parser.add_argument("--base-url", help="e.g. http://storage:8005/api/v1")
    parser.add_argument("--token", help="API token (default: $RECORDING_UPLOAD_TOKEN, then config.json)")
    parser.add_argument("--state", type=Path, help="state file of the upload queue")
    parser.add_argument("--concurrency", type=int, help="uploads at once (api.max_concurrent_uploads)")
    parser.add_argument("--bandwidth-mbps", type=float, help="limit in megabits per second")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("test", help="check that the server answers")
    upload = commands.add_parser("upload", help="upload recordings and wait until they are done")
    upload.add_argument("videos", nargs="+", type=Path)
    upload.add_argument("--metadata", type=Path, help="metadata file (with a single video; else found beside it)")
    watch = commands.add_parser("watch", help="upload older recordings of a folder, then new ones as they finish")
    watch.add_argument("folder", nargs="?", type=Path, help="default: recording.output_dir of config.json")
    watch.add_argument("--interval", type=float, default=30, help="seconds between scans")
    watch.add_argument("--max-age-days", type=float, help="default: api.max_file_age_days")
    watch.add_argument("--once", action="store_true", help="scan once, upload, and exit")
    commands.add_parser("queue", help="the local queue: every task and where it stands")
    status = commands.add_parser("status", help="a task, and what the server holds of it")
    status.add_argument("task_id")
    commands.add_parser("retry", help="queue failed uploads again and wait until they are done")
    listing = commands.add_parser("list", help="recordings on the server")
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument("--page-size", type=int, default=20)
    for name in ("wats-user", "machine", "server", "connection-type", "start", "end"):
        listing.add_argument(f"--{name}")
    return parser


def load_config(args: argparse.Namespace) -> ApiConfig:
    config = ApiConfig.load(args.config) if args.config else ApiConfig()
    config.base_url = (args.base_url or config.base_url).rstrip("/")
    config.api_token = args.token or os.environ.get("RECORDING_UPLOAD_TOKEN") or config.api_token
    if args.state:
        config.state_file = args.state
    if args.concurrency:
        config.max_concurrent_uploads = args.concurrency
    if args.bandwidth_mbps:
        config.bandwidth_limit_mbps = args.bandwidth_mbps
    if not config.base_url and args.command not in ("queue",):
        raise ConfigError("no server: give --base-url or api.base_url in --config")
    return config


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = stdout or sys.stdout
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        config = load_config(args)
    except ConfigError as exc:
        print(f"recording-upload: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(run(args, config, out))
    except KeyboardInterrupt:
        print("stopped; unfinished uploads continue at the next run", file=out)
        return EXIT_OK
    except ConfigError as exc:
        print(f"recording-upload: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        print(f"recording-upload: {exc}", file=sys.stderr)
        return EXIT_FAILED


async def run(args: argparse.Namespace, config: ApiConfig, out: TextIO) -> int:
    if args.command == "queue":
        return show_queue(config, out)
    async with RecordingUploadClient(
        config.base_url, config.api_token, timeout=config.upload_timeout, chunk_size=config.chunk_size_kb * 1024
    ) as client:
        if args.command == "test":
            ok = await client.test_connection()
            print(f"{config.base_url}: {'OK' if ok else 'FAILED'}", file=out)
            return EXIT_OK if ok else EXIT_FAILED
        if args.command == "list":
            filters = {
                k: getattr(args, k) for k in ("wats_user", "machine", "server", "connection_type", "start", "end")
            }
            page = await client.list_recordings(page=args.page, page_size=args.page_size, **filters)
            print(json.dumps(page, indent=2), file=out)
            return EXIT_OK
        if args.command == "status":
            return await show_status(config, client, args.task_id, out)
        manager = UploadManager.from_config(config, client=client)
        ProgressDisplay(manager, out).attach()
        async with manager:
            if args.command == "upload":
                if args.metadata and len(args.videos) > 1:
                    raise ConfigError("--metadata goes with a single video")
                task_ids = []
                for video in args.videos:
                    metadata = args.metadata or await asyncio.to_thread(find_metadata, video)
                    task_ids.append(await manager.upload_recording(video, metadata))
            elif args.command == "retry":
                task_ids = await manager.retry_failed()
            else:
                return await watch(manager, config, args, out)
            await manager.wait_idle()
            failed = [t for t in task_ids if (manager.get_upload_status(t) or {}).get("status") != "completed"]
            print(summary(manager), file=out)
            return EXIT_FAILED if failed else EXIT_OK


async def watch(manager: UploadManager, config: ApiConfig, args: argparse.Namespace, out: TextIO) -> int:
    folder = args.folder or config.recordings_dir
    if folder is None or not await asyncio.to_thread(folder.is_dir):
        raise ConfigError(f"no folder to watch: {folder or 'give one or set recording.output_dir in config.json'}")
    max_age = args.max_age_days if args.max_age_days is not None else config.max_file_age_days
    # Without upload_older_recordings, what is in the folder now stays; only recordings finished later go.
    existing: set[Path] = set()
    if not config.upload_older_recordings:
        found = await asyncio.to_thread(
            scan_recordings, folder, max_age_days=max_age, now=datetime.now(UTC), min_quiet_seconds=0
        )
        existing = {recording.video.resolve() for recording in found}
    while True:
        await manager.upload_older_recordings(folder, max_age_days=max_age, exclude=existing)
        if args.once:
            break
        await asyncio.sleep(args.interval)
    await manager.wait_idle()
    print(summary(manager), file=out)
    return EXIT_OK


def summary(manager: UploadManager) -> str:
    queue = manager.get_queue_status()
    return (
        f"queue: {queue['queue_size']} queued, {queue['active_uploads']} active, "
        f"{queue['completed_uploads']} completed, {queue['failed_uploads']} failed"
    )


def show_queue(config: ApiConfig, out: TextIO) -> int:
    tasks = StateStore(config.state_file).load()
    if not tasks:
        print(f"no uploads in {config.state_file}", file=out)
        return EXIT_OK
    print(f"{'task':<48} {'status':<10} {'progress':>8}  file", file=out)
    for task in sorted(tasks.values(), key=lambda t: t.created_at):
        line = f"{task.task_id:<48} {task.status:<10} {task.progress:>7}%  {Path(task.video_path).name}"
        if task.error:
            line += f"  ({task.error})"
        print(line, file=out)
    return EXIT_OK


async def show_status(config: ApiConfig, client: RecordingUploadClient, task_id: str, out: TextIO) -> int:
    task = (await asyncio.to_thread(StateStore(config.state_file).load)).get(task_id)
    if task is None:
        print(f"no task {task_id} in {config.state_file}", file=out)
        return EXIT_FAILED
    report: dict[str, Any] = {
        "task": {
            "task_id": task.task_id,
            "file": task.video_path,
            "status": task.status,
            "progress": task.progress,
            "session_id": (task.session or {}).get("session_id"),
            "server_file_id": task.server_file_id,
            "error": task.error,
        }
    }
    if task.session and task.status != COMPLETED:
        server = await client.get_status(task.session["session_id"])
        report["server"] = dict(server.raw)
    print(json.dumps(report, indent=2), file=out)
    return EXIT_OK

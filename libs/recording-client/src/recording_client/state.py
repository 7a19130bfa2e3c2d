"""The upload manager's state file: every task, its upload session and where it stands, in one JSON document.

It is replaced atomically (written beside, flushed to disk, renamed over), so a crash leaves either the old or
the new document, never half of one. Offsets are not kept here: the server's status is the truth about which
bytes arrived, and it is read again before anything is sent.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STATE_VERSION = 1

QUEUED = "queued"
WAITING = "waiting"  # for the upload window
UPLOADING = "uploading"
RETRYING = "retrying"
COMPLETED = "completed"
FAILED = "failed"
UNFINISHED = frozenset({QUEUED, WAITING, UPLOADING, RETRYING})


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class UploadTask:
    task_id: str
    video_path: str
    metadata_path: str | None
    video_size: int
    video_mtime_ns: int
    session_request: dict[str, Any]
    sha256: str | None = None
    status: str = QUEUED
    # The server's upload session: session_id, video_upload_url, metadata_upload_url, expires_at.
    session: dict[str, Any] | None = None
    sessions_opened: int = 0
    retries: int = 0
    bytes_sent: int = 0
    total_bytes: int = 0
    server_file_id: str | None = None
    error: str | None = None
    # The metadata file was written by the manager (the caller gave none), so it goes with the task.
    metadata_generated: bool = False
    created_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    completed_at: str | None = None

    @property
    def progress(self) -> int:
        if self.status == COMPLETED:
            return 100
        if self.total_bytes <= 0:
            return 0
        return min(100, self.bytes_sent * 100 // self.total_bytes)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> UploadTask:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in document.items() if k in known})


class StateStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, UploadTask]:
        """The saved tasks; an unreadable file is set aside (renamed `.corrupt`) rather than lost or trusted."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            document = json.loads(raw)
            return {task_id: UploadTask.from_dict(task) for task_id, task in document["tasks"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt")
            self.path.replace(aside)
            logger.warning("upload state %s is unreadable (%s); moved to %s, starting empty", self.path, exc, aside)
            return {}

    def save(self, tasks: dict[str, UploadTask]) -> None:
        document = {"version": STATE_VERSION, "tasks": {task_id: asdict(task) for task_id, task in tasks.items()}}
        self.write(json.dumps(document, indent=1, sort_keys=True))

    def write(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
        # The rename itself must survive a power cut, so the folder is flushed too (not possible on Windows).
        if hasattr(os, "O_DIRECTORY"):
            descriptor = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

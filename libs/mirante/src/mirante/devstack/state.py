"""`stack.json`, which tells other commands where a running stack is, and the one-stack-per-folder lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mirante.devstack.errors import StackBusyError
from mirante.devstack.processes import pid_alive, read_pid_file
from mirante.devstack.urls import COMPONENTS, Component, StackUrls

logger = logging.getLogger(__name__)

STATE_FILE = "stack.json"
LOCK_FILE = "stack.lock"


@dataclass(frozen=True)
class StackState:
    """What `stack.json` records: the owner process, its URLs and which servers it started itself."""

    pid: int
    urls: StackUrls
    embedded: tuple[Component, ...]
    started_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "started_at": self.started_at,
            "embedded": list(self.embedded),
            "database_url": self.urls.database_url,
            "redis_url": self.urls.redis_url,
            "mqtt_url": self.urls.mqtt_url,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackState:
        urls = StackUrls(
            database_url=str(data["database_url"]),
            redis_url=str(data["redis_url"]),
            mqtt_url=str(data["mqtt_url"]),
        )
        embedded = tuple(c for c in COMPONENTS if c in data.get("embedded", ()))
        return cls(pid=int(data["pid"]), urls=urls, embedded=embedded, started_at=str(data.get("started_at", "")))


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def read_state(data_dir: Path) -> StackState | None:
    """The recorded stack, or None when there is no readable state file."""
    path = state_path(data_dir)
    try:
        return StackState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring unreadable %s: %s", path, exc)
        return None


def live_state(data_dir: Path) -> StackState | None:
    """The recorded stack when its owner process is still alive, else None (a stale file is ignored)."""
    state = read_state(data_dir)
    if state is None:
        return None
    if state.pid != os.getpid() and not pid_alive(state.pid):
        logger.info("ignoring %s: its owner (pid %s) is gone", state_path(data_dir), state.pid)
        return None
    return state


def write_state(data_dir: Path, urls: StackUrls, embedded: tuple[Component, ...]) -> StackState:
    """Record this process as the owner of a running stack (atomically, readable by the owner only)."""
    state = StackState(pid=os.getpid(), urls=urls, embedded=embedded, started_at=datetime.now(UTC).isoformat())
    path = state_path(data_dir)
    partial = path.with_suffix(".json.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(state.to_json(), handle, indent=2)
    partial.replace(path)
    return state


def remove_state(data_dir: Path, owner_pid: int) -> None:
    """Delete the state file if it still belongs to `owner_pid`."""
    state = read_state(data_dir)
    if state is not None and state.pid == owner_pid:
        state_path(data_dir).unlink(missing_ok=True)


class DataDirLock:
    """An exclusive advisory lock on `<data_dir>/stack.lock`, released when the holder exits in any way."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._descriptor: int | None = None

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def acquire(self) -> None:
        """Take the lock now or raise `StackBusyError` naming the holder."""
        if self._descriptor is not None:
            return
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise StackBusyError(self.data_dir, read_pid_file(self.path)) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor

    def release(self) -> None:
        """Give the lock up; the file stays, since deleting a lock file races with the next holder."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, 0)
            os.close(descriptor)

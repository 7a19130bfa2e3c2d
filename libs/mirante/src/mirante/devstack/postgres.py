"""Embedded PostgreSQL through `pgserver`, with its data in `<data_dir>/postgres`.

Run as root, pgserver initialises and runs the server as a `pgserver` system user (PostgreSQL refuses
root). The server listens on a Unix socket only, so the URL carries the socket folder as `?host=`.
"""

from __future__ import annotations

import json
import logging
import subprocess
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mirante.devstack.errors import ComponentStartError, StackError
from mirante.devstack.probes import postgres_answers, wait_until
from mirante.devstack.processes import log_tail, pid_alive, process_command, read_pid_file

logger = logging.getLogger(__name__)

_DEFAULT_PORT = 5432


def _import_pgserver() -> Any:
    try:
        with warnings.catch_warnings():
            # pgserver picks a runtime folder at import; without XDG_RUNTIME_DIR platformdirs warns about the
            # fallback it then uses successfully.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as exc:
        raise StackError(
            "embedded PostgreSQL needs pgserver: install mirante[embedded] or set MIRANTE_DATABASE_URL"
        ) from exc
    return pgserver


class EmbeddedPostgres:
    """A pgserver-managed PostgreSQL that lives as long as the stack that started it."""

    component = "database"

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "postgres"
        self._server: Any = None

    @property
    def log_path(self) -> Path:
        return self.pgdata / "log"

    def start(self, timeout: float) -> str:
        """Initialise the cluster if needed, start it and return its URL once it answers."""
        self._forget_dead_handles()
        self._remove_stale_postmaster_pid()
        pgserver = _import_pgserver()
        try:
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        except (subprocess.SubprocessError, OSError, AssertionError, RuntimeError) as exc:
            raise ComponentStartError(
                "PostgreSQL", f"pgserver failed: {exc}", self.log_path, log_tail(self.log_path)
            ) from exc
        url = self._url()
        if not wait_until(lambda: postgres_answers(url), timeout):
            self.stop()
            raise ComponentStartError(
                "PostgreSQL",
                f"no answer at {url} within {timeout:.0f} s",
                self.log_path,
                log_tail(self.log_path),
            )
        return url

    def stop(self) -> None:
        """Stop the server unless another live process still holds a pgserver handle on it."""
        server, self._server = self._server, None
        if server is None:
            return
        try:
            server.cleanup()
        except (subprocess.SubprocessError, OSError, KeyError) as exc:
            logger.warning("stopping embedded PostgreSQL failed: %s (log: %s)", exc, self.log_path)

    def _url(self) -> str:
        info = self._server.get_postmaster_info()
        port = info.port or _DEFAULT_PORT
        address = "" if port == _DEFAULT_PORT else f":{port}"
        if info.socket_dir is not None:
            return f"postgresql://postgres@{address}/postgres?host={quote(str(info.socket_dir), safe='/')}"
        return f"postgresql://postgres@{info.hostname or '127.0.0.1'}:{port}/postgres"

    def _forget_dead_handles(self) -> None:
        """pgserver stops the server only when the last process in its handle list exits; a process that
        was killed never leaves that list, so the server would never be stopped again."""
        handles = self.pgdata / ".handle_pids.json"
        try:
            pids = [int(pid) for pid in json.loads(handles.read_text())]
        except (OSError, ValueError, TypeError):
            return
        alive = [pid for pid in pids if pid_alive(pid)]
        if alive != pids:
            logger.info("forgetting dead pgserver handles %s", sorted(set(pids) - set(alive)))
            handles.write_text(json.dumps(alive))

    def _remove_stale_postmaster_pid(self) -> None:
        """pgserver treats any live pid in postmaster.pid as a running server; after a crash or reboot that
        pid may belong to an unrelated process, so the file is removed unless the pid is this cluster's
        postgres."""
        postmaster_pid = self.pgdata / "postmaster.pid"
        pid = read_pid_file(postmaster_pid)
        if pid is None:
            if postmaster_pid.exists():
                logger.warning("removing unreadable %s", postmaster_pid)
                postmaster_pid.unlink(missing_ok=True)
            return
        command = process_command(pid) if pid_alive(pid) else None
        if command and "postgres" in command and str(self.pgdata) in command:
            logger.info("adopting PostgreSQL (pid %s) left running on %s", pid, self.pgdata)
            return
        logger.warning("removing stale %s (pid %s is not this cluster's server)", postmaster_pid, pid)
        postmaster_pid.unlink(missing_ok=True)

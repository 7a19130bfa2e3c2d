"""Child server processes: start with a log file and a pid file, stop gracefully, clear orphans."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from mirante.devstack.errors import StackError

logger = logging.getLogger(__name__)


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def process_command(pid: int) -> str | None:
    """The command line of a process, or None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        raw = b""
    if raw:
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["ps", "-o", "command=", "-p", str(pid)],  # noqa: S607 - ps from PATH is the portable fallback
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def read_pid_file(path: Path) -> int | None:
    """The pid in the first line of `path`, or None when missing or unreadable."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Poll until `pid` is gone; True when it exited within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def terminate_pid(pid: int, stop_signal: signal.Signals, timeout: float) -> None:
    """Send `stop_signal`, wait up to `timeout` seconds, then SIGKILL."""
    try:
        os.kill(pid, stop_signal)
    except ProcessLookupError:
        return
    if not wait_for_exit(pid, timeout):
        logger.warning("pid %s ignored %s for %.0f s; killing it", pid, stop_signal.name, timeout)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_for_exit(pid, 5.0)


def reap_orphan(pid_file: Path, executable_name: str, stop_signal: signal.Signals = signal.SIGTERM) -> None:
    """Stop a server left running by a process that died without stopping it, then forget its pid file.

    Only a live process whose command line names `executable_name` is stopped: after a reboot the pid may
    belong to something else.
    """
    pid = read_pid_file(pid_file)
    if pid is not None and pid != os.getpid() and pid_alive(pid):
        command = process_command(pid) or ""
        if executable_name in command:
            logger.warning("stopping %s (pid %s) left running by an earlier stack", executable_name, pid)
            terminate_pid(pid, stop_signal, timeout=15.0)
    pid_file.unlink(missing_ok=True)


def log_tail(path: Path, lines: int = 15) -> str:
    """The last `lines` lines of a log file ("" when it cannot be read)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ChildProcess:
    """One server process started by the stack, with its output appended to a log file."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        log_path: Path,
        pid_file: Path,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_timeout: float = 15.0,
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.log_path = log_path
        self.pid_file = pid_file
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Start the process in its own session: a terminal's Ctrl-C reaches only the stack, which stops
        its servers in order."""
        with self.log_path.open("ab") as log:
            try:
                self._process = subprocess.Popen(  # noqa: S603 - argv built from known executables
                    self.argv,
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise StackError(f"could not run {self.argv[0]}: {exc}") from exc
        self.pid_file.write_text(f"{self._process.pid}\n")

    def exit_code(self) -> int | None:
        """The exit status once the process has ended, else None."""
        return self._process.poll() if self._process else None

    def stop(self) -> None:
        """Stop gracefully (the server saves its data), kill after `stop_timeout`; safe to call twice."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(self.stop_signal)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored %s; killing it", self.argv[0], self.stop_signal.name)
                process.kill()
                process.wait()
        self.pid_file.unlink(missing_ok=True)

"""Errors raised by the development stack."""

from __future__ import annotations

from pathlib import Path


class StackError(RuntimeError):
    """The development stack could not provide a server."""


class InvalidStackConfigError(StackError, ValueError):
    """A URL, port or option given to the development stack is not usable."""


class StackBusyError(StackError):
    """Another process already runs the embedded servers of this data directory."""

    def __init__(self, data_dir: Path, holder_pid: int | None) -> None:
        holder = f"process {holder_pid}" if holder_pid else "another process"
        super().__init__(
            f"{data_dir} is in use by {holder}, which runs its embedded servers; stop it, or point "
            "MIRANTE_DATABASE_URL / MIRANTE_REDIS_URL / MIRANTE_MQTT_URL at servers that answer"
        )
        self.data_dir = data_dir
        self.holder_pid = holder_pid


class StackNotRunningError(StackError):
    """No URL is configured for a server and no `mirante up` stack provides one."""


class ComponentStartError(StackError):
    """An embedded server did not come up; the message names it and its log."""

    def __init__(self, component: str, reason: str, log_path: Path | None, log_tail: str = "") -> None:
        where = f" (log: {log_path})" if log_path else ""
        tail = f"\nlast log lines:\n{log_tail}" if log_tail else ""
        super().__init__(f"embedded {component} did not start: {reason}{where}{tail}")
        self.component = component
        self.log_path = log_path

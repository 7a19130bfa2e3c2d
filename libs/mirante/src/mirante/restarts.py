"""When `mirante up` starts a service again after it died: exponential backoff, reset after a stable run."""

from __future__ import annotations

from dataclasses import dataclass

from mirante.backoff import exponential_ceiling


@dataclass
class RestartBackoff:
    """Delays before restarting one process: `initial`, doubled after each exit, capped at `maximum` seconds.

    A process that stayed up for `stable_after` seconds before exiting starts again from `initial`: a
    crash after hours of service is a new incident, not the next step of a crash loop.
    """

    initial: float = 1.0
    maximum: float = 60.0
    stable_after: float = 60.0
    consecutive_failures: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("restart delays must satisfy 0 < initial <= maximum")
        if self.stable_after < 0:
            raise ValueError("stable_after must not be negative")

    def delay_after_exit(self, uptime: float) -> float:
        """The delay before restarting a process that exited after running `uptime` seconds."""
        if uptime >= self.stable_after:
            self.consecutive_failures = 0
        # No jitter: one supervisor restarts its own children, there is no crowd to spread out.
        delay = exponential_ceiling(self.consecutive_failures, self.initial, self.maximum)
        self.consecutive_failures += 1
        return delay

    def delay_after_failed_start(self) -> float:
        """The delay before trying again when the process could not even be started."""
        return self.delay_after_exit(0.0)

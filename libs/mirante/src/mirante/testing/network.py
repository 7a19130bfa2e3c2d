"""Small network helpers of the test servers."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port of 127.0.0.1 free right now (nothing listens there: connecting to it is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port

"""An ASGI app served by uvicorn from a thread of the calling process (the simulators of third-party servers, in
tests and benchmarks), or in the foreground (their command lines). The socket is bound first, so port 0 gives a
free port known before the first request."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

START_TIMEOUT_SECONDS = 15.0


class ServerStartError(RuntimeError):
    """The server did not start serving."""


class ThreadedServer:
    """`app` on `host:port` (0: a free port, set to the bound one by `bind`)."""

    def __init__(self, app: Any, host: str, port: int, *, name: str, backlog: int = 128) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self.backlog = backlog
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """Base URL (no trailing slash); with port 0, known once bound."""
        if self.port == 0:
            raise ServerStartError(f"the {self.name} is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def bound(self) -> bool:
        return self._socket is not None

    def bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(self.backlog)
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        return sock

    def start(self, sock: socket.socket | None = None) -> None:
        """Serve on `sock` (from `bind`; bound now when not given) from a background thread; returns once the server
        accepts requests."""
        sock = sock or self.bind()
        self._server = uvicorn.Server(self._config("warning"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServerStartError(f"the {self.name} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=START_TIMEOUT_SECONDS)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def serve_forever(self, sock: socket.socket, *, log_requests: bool = False) -> None:
        """Serve on `sock` (from `bind`) in the foreground until Ctrl-C, logging each request if asked."""
        uvicorn.Server(self._config("info" if log_requests else "warning")).run(sockets=[sock])

    def _config(self, log_level: str) -> uvicorn.Config:
        return uvicorn.Config(
            self.app, log_level=log_level, access_log=log_level == "info", lifespan="off", backlog=self.backlog
        )

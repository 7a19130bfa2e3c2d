"""What the telemetry-ingest benchmarks share: a bench database and broker, tenants, the service in child
processes, the raw COPY ceiling, a counting subscriber, and CPU accounting from `/proc`.

Run as a script, this module is the counting subscriber (`count URL GROUP CLIENT_ID [TOPIC OPTIONS]`): a
`SubscriberRunner` with the service's MQTT settings (or the JSON `OPTIONS` given) and a handler that only counts,
printing its running count for the parent. Other services' benchmarks use it with their own topic and settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from bench_process import ServiceServer, cpu_seconds, free_port

from mirante.db import create_engine, create_sessionmaker, plain_url
from mirante.devstack import StackUrls
from mirante.devstack.mqtt_broker import find_mosquitto, render_mosquitto_config
from mirante.devstack.probes import mqtt_answers
from mirante.mqtt import Message, SubscriberRunner
from mirante.testing.database import create_test_database, drop_test_database
from telemetry_ingest.config import Settings
from telemetry_ingest.ingest.worker import TOPIC_FILTER
from telemetry_ingest.tenancy.naming import schema_for
from telemetry_ingest.tenancy.partitions import ensure_partitions
from telemetry_ingest.tenancy.service import create_tenant

SIMULATORS = Path(__file__).resolve().parents[1] / "simulators"
if str(SIMULATORS) not in sys.path:
    sys.path.insert(0, str(SIMULATORS))

# Found through the path set just above; re-exported for the telemetry benchmarks.
from devices import SENSOR_PROFILES as SENSOR_PROFILES  # type: ignore[import-not-found]  # noqa: E402
from devices import DeviceFleet as DeviceFleet  # noqa: E402

Row = tuple[str, str, datetime, float, str | None]
"""(device_id, sensor, ts, value, unit): one reading as stored."""
READING_COLUMNS = ["device_id", "sensor", "ts", "value", "unit"]
SHARE_GROUP = "telemetry-ingest"
COUNT_REPORT_INTERVAL = 0.05
STALL_SECONDS = 60.0
"""A run fails when the stored count has not moved for this long (readings are missing, not merely late)."""


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values) - idle) / ticks, sum(values) / ticks


@dataclass
class CpuMeter:
    """CPU used by named groups of processes over an interval, and by the whole machine."""

    groups: dict[str, list[int]]
    _start: dict[str, float] = field(default_factory=dict)
    _machine: tuple[float, float] = (0.0, 0.0)
    _wall: float = 0.0

    def start(self) -> None:
        self._start = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.groups.items()}
        self._machine = machine_cpu()
        self._wall = time.perf_counter()

    def stop(self) -> dict[str, float]:
        """Cores used on average by each group (1.0 = one core busy all the time), and `machine` for all."""
        wall = max(time.perf_counter() - self._wall, 1e-9)
        used = {
            name: (sum(cpu_seconds(pid) for pid in pids) - self._start[name]) / wall
            for name, pids in self.groups.items()
        }
        busy, total = machine_cpu()
        if total > self._machine[1]:
            used["machine"] = (busy - self._machine[0]) / (total - self._machine[1]) * (os.cpu_count() or 1)
        return used


def describe_cpu(used: dict[str, float]) -> str:
    return ", ".join(f"{name} {cores:.2f}" for name, cores in used.items())


@dataclass
class BenchStack:
    """A migrated bench database on the given PostgreSQL, the given Redis, and a Mosquitto of the benchmark's own
    (its queues sized for a backlog, so a subscriber that falls behind loses nothing)."""

    database_url: str
    redis_url: str
    mqtt_url: str
    broker_pid: int | None

    @property
    def urls(self) -> StackUrls:
        """The bench database, Redis and the benchmark's broker, as a service process is given them."""
        return StackUrls(self.database_url, self.redis_url, self.mqtt_url)

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(plain_url(self.database_url))

    async def make_tenant(self, prefix: str) -> str:
        """Create a tenant through the tenancy service and commit it; returns its slug."""
        slug = f"{prefix}{uuid.uuid4().hex[:8]}"
        engine = create_engine(self.database_url)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                await create_tenant(session, slug=slug, name=f"Bench {slug}")
        finally:
            await engine.dispose()
        return slug

    async def count_readings(self, slug: str) -> int:
        connection = await self.connect()
        try:
            return int(await connection.fetchval(f'SELECT count(*) FROM "{schema_for(slug)}".readings'))
        finally:
            await connection.close()

    async def backend_pids(self) -> list[int]:
        """PostgreSQL server processes serving the bench database (the service's pooled connections)."""
        connection = await self.connect()
        try:
            rows = await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return [int(row["pid"]) for row in rows]
        finally:
            await connection.close()


@asynccontextmanager
async def bench_stack(urls: StackUrls) -> AsyncIterator[BenchStack]:
    """The stack of a telemetry benchmark; the database is dropped and the broker stopped afterwards."""
    executable = find_mosquitto()
    if executable is None:
        raise RuntimeError("the telemetry benchmarks need a mosquitto binary (its queues are sized for a backlog)")
    database_url = await create_test_database(urls.database_url, prefix="mirante_bench")
    try:
        with tempfile.TemporaryDirectory(prefix="mirante-bench-telemetry-") as folder:
            port = free_port()
            config = Path(folder) / "mosquitto.conf"
            config.write_text(render_mosquitto_config(port).replace("persistence true", "persistence false"))
            with (Path(folder) / "mosquitto.log").open("wb") as log:
                # Started once and left running for the whole benchmark: no need for an asyncio subprocess.
                broker = subprocess.Popen(  # noqa: ASYNC220
                    [executable, "-c", str(config)], cwd=folder, stdout=log, stderr=log
                )
            try:
                deadline = time.monotonic() + 10
                while not mqtt_answers(f"mqtt://127.0.0.1:{port}"):
                    if broker.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the benchmark's mosquitto did not start")
                    await asyncio.sleep(0.1)
                yield BenchStack(database_url, urls.redis_url, f"mqtt://127.0.0.1:{port}", broker.pid)
            finally:
                broker.terminate()
                broker.wait(timeout=10)
    finally:
        await drop_test_database(urls.database_url, database_url)


def fleet_rows(fleet: DeviceFleet, readings: int, readings_per_message: int) -> tuple[list[bytes], list[str], int]:
    """The fleet's next messages for `readings` readings: (payloads, topics, message count)."""
    payloads: list[bytes] = []
    topics: list[str] = []
    for message in fleet.messages(count=readings, readings_per_message=readings_per_message):
        payloads.append(message.payload)
        topics.append(message.stream.topic)
    return payloads, topics, len(payloads)


def rows_of(fleet: DeviceFleet, readings: int) -> list[Row]:
    """`readings` rows as the fleet would publish them, for the COPY ceiling."""
    rows: list[Row] = []
    for message in fleet.messages(count=readings, readings_per_message=10):
        stream = message.stream
        unit = SENSOR_PROFILES[stream.sensor].unit
        rows.extend((stream.device, stream.sensor, ts, value, unit) for ts, value in message.readings)
    return rows


async def copy_ceiling(stack: BenchStack, rows: Sequence[Row]) -> float:
    """Seconds to COPY `rows` into a new tenant's partitioned `readings` table in one transaction (partitions
    created before the clock starts), with asyncpg's `copy_records_to_table`."""
    slug = await stack.make_tenant("copy")
    schema = schema_for(slug)
    connection = await stack.connect()
    try:
        engine = create_engine(stack.database_url)
        try:
            async with engine.begin() as setup:
                await ensure_partitions(setup, schema, {row[2].date() for row in rows})
        finally:
            await engine.dispose()
        started = time.perf_counter()
        async with connection.transaction():
            await connection.copy_records_to_table(
                "readings", schema_name=schema, records=rows, columns=READING_COLUMNS
            )
        elapsed = time.perf_counter() - started
        stored = int(await connection.fetchval(f'SELECT count(*) FROM "{schema}".readings'))
    finally:
        await connection.close()
    if stored != len(rows):
        raise RuntimeError(f"COPY ceiling: {stored} rows stored of {len(rows)}")
    return elapsed


class ServiceProcess(ServiceServer):
    """telemetry-ingest under uvicorn on 127.0.0.1, in a child process configured through its environment; with
    `mqtt`, ready once its subscriber holds its subscription."""

    def __init__(self, stack: BenchStack, *, mqtt: bool, client_id: str | None = None, **settings: str) -> None:
        super().__init__(
            "telemetry-ingest",
            "telemetry_ingest.main:create_app",
            stack.urls,
            env_prefix="TELEMETRY_INGEST_",
            settings={
                "mqtt_ingest_enabled": "true" if mqtt else "false",
                "retention_enabled": "false",
                "upgrade_tenants_on_start": "false",
                **({"mqtt_client_id": client_id} if client_id is not None else {}),
                **settings,
            },
            ready_metric="telemetry_mqtt_subscriber_connected 1.0" if mqtt else None,
        )


class CountingSubscriber:
    """This module run as a child process: a `SubscriberRunner` that only counts (see `_count_main`).

    By default it subscribes as telemetry-ingest does; `topic`, `group` (None: a plain subscription) and
    `options` (`batch_size`, `batch_interval`, `receive_maximum`) make it another service's ceiling.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        topic: str = TOPIC_FILTER,
        group: str | None = SHARE_GROUP,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.topic = topic
        self.group = group
        self.options = options or runner_settings()
        self.count = 0
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "count",
            self.url,
            self.group or "",
            self.client_id,
            self.topic,
            json.dumps(self.options),
            stdout=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self._ready.wait(), 30)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            word, _, value = line.decode().strip().partition(" ")
            if word == "ready":
                self._ready.set()
            elif word == "count":
                self.count = int(value)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await self.process.wait()
        if self._reader is not None:
            await self._reader


async def wait_for_count(count: Any, expected: int, what: str) -> float:
    """Poll `await count()` until it reaches `expected`; returns `time.perf_counter()` then. Raises when the count
    stalls for `STALL_SECONDS` or passes `expected` (a loss or a double, never hidden)."""
    last, last_change = -1, time.perf_counter()
    while True:
        value = await count()
        now = time.perf_counter()
        if value == expected:
            return now
        if value > expected:
            raise RuntimeError(f"{what}: {value:,} counted, more than the {expected:,} published")
        if value != last:
            last, last_change = value, now
        elif now - last_change > STALL_SECONDS:
            raise RuntimeError(f"{what}: {value:,} of {expected:,} after {STALL_SECONDS:.0f} s without progress")
        await asyncio.sleep(0.1)


def runner_settings() -> dict[str, Any]:
    """The MQTT settings the service's worker uses by default (batch size, interval, Receive Maximum)."""
    defaults = Settings.model_fields
    return {
        "batch_size": defaults["ingest_batch_size"].default,
        "batch_interval": defaults["ingest_batch_interval_seconds"].default,
        "receive_maximum": defaults["mqtt_receive_maximum"].default,
    }


async def _count_main(url: str, group: str, client_id: str, topic: str, options: dict[str, Any]) -> None:
    count = 0

    async def handler(batch: Sequence[Message]) -> None:
        nonlocal count
        count += len(batch)

    runner = SubscriberRunner(
        url,
        client_id=client_id,
        topics=[topic],
        group=group or None,
        handler=handler,
        batch_size=options["batch_size"],
        batch_interval=options["batch_interval"],
        receive_maximum=options["receive_maximum"],
    )
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(runner.connected.wait(), 30)
    print("ready", flush=True)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    reported = -1
    while not stopping.is_set():
        if count != reported:
            reported = count
            print(f"count {count}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), COUNT_REPORT_INTERVAL)
    await runner.stop()
    await task


if __name__ == "__main__":
    if len(sys.argv) not in (5, 7) or sys.argv[1] != "count":
        sys.exit("usage: bench_telemetry_common.py count MQTT_URL GROUP CLIENT_ID [TOPIC OPTIONS_JSON]")
    given = sys.argv[5:] or [TOPIC_FILTER, json.dumps(runner_settings())]
    asyncio.run(_count_main(sys.argv[2], sys.argv[3], sys.argv[4], given[0], json.loads(given[1])))

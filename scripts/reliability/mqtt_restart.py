"""Readings published, stored and lost when the MQTT broker or telemetry-ingest goes down.

(a) Broker restart while the subscriber is offline: a `SubscriberRunner` with a persistent MQTT 5 session
    subscribes, goes offline; N messages are published, this script's own Mosquitto (persistence on) is
    restarted (SIGTERM, start on the same port), N more are published, the subscriber comes back. Run once with
    a plain subscription and once with a shared one (`$share/<group>/...`).
(b) `kill -9` of telemetry-ingest under `mirante up` (embedded Mosquitto, a fresh database on
    MIRANTE_DATABASE_URL) after a third of N readings; the rest is published while the supervisor starts it again.
(c) As (b), but after the second third the whole `mirante up` is stopped (Ctrl-C, which stops the broker too)
    and started again, then the last third is published: readings are queued for the service across a broker
    restart, as in the original report. Run with the default (plain) subscription and with
    TELEMETRY_INGEST_MQTT_SHARE_GROUP set.

Usage (PostgreSQL and Redis from the environment, as for the tests):
    .venv/bin/python scripts/reliability/mqtt_restart.py [--messages 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from mirante.devstack.mqtt_broker import EmbeddedMqttBroker, find_mosquitto
from mirante.mqtt import Message, Publisher, SubscriberRunner, discard_session
from telemetry_ingest.tenancy.naming import schema_for

# Recent enough that no tenant retention rejects the readings, and 20,000 seconds before now at most.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=12)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def report(case: str, published: int, stored: int) -> None:
    print(f"| {case} | {published:,} | {stored:,} | {published - stored:,} |", flush=True)


async def publish(url: str, topic: str, first: int, count: int) -> None:
    async with Publisher(url, max_in_flight=500) as publisher:
        await publisher.publish_many(
            (topic, json.dumps({"value": index, "timestamp": (START + timedelta(seconds=index)).isoformat()}))
            for index in range(first, first + count)
        )


async def settle(count: object, expected: int, quiet: float = 10.0) -> int:
    """Poll `count()` until it reaches `expected` or stops growing for `quiet` seconds."""
    last, since = -1, time.monotonic()
    while True:
        value: int = await count()  # type: ignore[operator]
        if value >= expected:
            return value
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since > quiet:
            return value
        await asyncio.sleep(0.5)


async def broker_restart(messages: int, group: str | None) -> None:
    """Case (a): publish half, restart the broker, publish the other half, all while the subscriber is away."""
    with tempfile.TemporaryDirectory() as folder:
        broker = EmbeddedMqttBroker(Path(folder), kind="mosquitto", port=free_port())
        url = await asyncio.to_thread(broker.start, 30.0)
        seen: set[bytes] = set()

        async def store(batch: Sequence[Message]) -> None:
            seen.update(message.payload for message in batch)

        client_id = f"reliability-{uuid.uuid4().hex[:8]}"
        topic_root = f"reliability/{uuid.uuid4().hex[:8]}"

        def runner() -> SubscriberRunner:
            return SubscriberRunner(
                url, client_id=client_id, topics=[f"{topic_root}/#"], handler=store, group=group, session_expiry=600
            )

        try:
            first = runner()
            task = asyncio.create_task(first.run())
            await first.connected.wait()
            await first.stop()
            await task
            half = messages // 2
            await publish(url, f"{topic_root}/d", 0, half)
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(broker.start, 30.0)
            await publish(url, f"{topic_root}/d", half, messages - half)
            second = runner()
            task = asyncio.create_task(second.run())

            async def count() -> int:
                return len(seen)

            stored = await settle(count, messages)
            await second.stop()
            await task
            await discard_session(url, client_id)
        finally:
            broker.stop()
    mode = f"shared `$share/{group}/...`" if group else "plain"
    report(f"(a) broker restart, subscriber offline, {mode} subscription", messages, stored)


class Suite:
    """`mirante up telemetry-ingest` in its own data folder, with an embedded Mosquitto."""

    def __init__(self, env: dict[str, str], data_dir: Path) -> None:
        self.env, self.data_dir = env, data_dir
        self.log = data_dir / "up.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mirante", "up", "telemetry-ingest"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 180
        while "Mirante is up" not in self.log.read_bytes()[offset:].decode(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mirante up did not start; see {self.log}")
            time.sleep(0.3)
        return str(json.loads((self.data_dir / "stack.json").read_text())["mqtt_url"])

    def kill_service(self) -> None:
        assert self.process is not None
        pid = self.process.pid
        # The supervisor's children are the service and the embedded servers; only the service dies here.
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            if b"serve\0telemetry-ingest" in Path(f"/proc/{child}/cmdline").read_bytes():
                os.kill(int(child), signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def create_tenant(env: dict[str, str], slug: str) -> None:
    command = "import sys; from telemetry_ingest.cli import main; sys.exit(main())"
    subprocess.run(
        [sys.executable, "-c", command, "tenant", "create", slug, "--name", slug],
        env=env,
        check=True,
        capture_output=True,
    )


async def service_crash(messages: int, admin_url: str, restart_suite: bool, group: str | None) -> None:
    """Cases (b) and (c)."""
    database = f"mirante_reliability_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    database_url = admin_url.rsplit("/", 1)[0] + f"/{database}"
    slug = f"rel{uuid.uuid4().hex[:8]}"
    try:
        with tempfile.TemporaryDirectory() as folder:
            env = {key: value for key, value in os.environ.items() if key != "MIRANTE_MQTT_URL"}
            env.update(
                MIRANTE_DATABASE_URL=database_url,
                MIRANTE_DATA_DIR=folder,
                MIRANTE_EMBEDDED_MQTT="mosquitto",
                MIRANTE_LOG_LEVEL="WARNING",
                TELEMETRY_INGEST_PORT=str(free_port()),
                TELEMETRY_INGEST_MQTT_CLIENT_ID=f"telemetry-ingest-{slug}",
            )
            if group:
                env["TELEMETRY_INGEST_MQTT_SHARE_GROUP"] = group
            suite = Suite(env, Path(folder))
            try:
                url = await asyncio.to_thread(suite.start)
                await asyncio.to_thread(create_tenant, env, slug)
                topic = f"tenants/{slug}/devices/d1/sensors/temperature"
                third = messages // 3
                await publish(url, topic, 0, third)
                suite.kill_service()
                await publish(url, topic, third, third)
                if restart_suite:
                    await asyncio.to_thread(suite.stop)
                    if await asyncio.to_thread(suite.start) != url:
                        raise RuntimeError("the embedded broker came back on another port")
                await publish(url, topic, 2 * third, messages - 2 * third)
                readings = await asyncpg.connect(database_url)

                async def count() -> int:
                    return int(await readings.fetchval(f'SELECT count(*) FROM "{schema_for(slug)}".readings'))

                stored = await settle(count, messages, quiet=15.0)
                await readings.close()
            finally:
                await asyncio.to_thread(suite.stop)
    finally:
        with suppress(asyncpg.PostgresError):
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    mode = f"shared `$share/{group}/...`" if group else "plain"
    case = (
        "(c) kill -9 of telemetry-ingest, then `mirante up` stopped and started"
        if restart_suite
        else ("(b) kill -9 of telemetry-ingest under `mirante up`")
    )
    report(f"{case}, {mode} subscription", messages, stored)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000, help="readings published per case (one a message)")
    args = parser.parse_args()
    admin_url = os.environ.get("MIRANTE_DATABASE_URL")
    if find_mosquitto() is None or not admin_url or not os.environ.get("MIRANTE_REDIS_URL"):
        raise SystemExit("needs a mosquitto binary, MIRANTE_DATABASE_URL and MIRANTE_REDIS_URL")
    print("| case | published | stored | lost |\n|---|---|---|---|", flush=True)
    await broker_restart(args.messages, None)
    await broker_restart(args.messages, "g")
    await service_crash(args.messages, admin_url, restart_suite=False, group=None)
    await service_crash(args.messages, admin_url, restart_suite=True, group=None)
    await service_crash(args.messages, admin_url, restart_suite=True, group="telemetry-ingest")


if __name__ == "__main__":
    asyncio.run(main())

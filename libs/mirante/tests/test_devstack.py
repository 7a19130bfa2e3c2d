"""The embedded development stack, exercised through the real PostgreSQL, Redis and MQTT broker it starts."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import aiomqtt
import asyncpg
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from mirante.db import create_engine
from mirante.devstack import (
    EmbeddedStack,
    InvalidStackConfigError,
    ResolvedUrls,
    StackBusyError,
    StackError,
    StackNotRunningError,
    StackUrls,
    ensure_stack,
    resolve_database_url,
    resolve_urls,
)
from mirante.devstack.mqtt_broker import EmbeddedMqttBroker, find_mosquitto
from mirante.devstack.probes import mqtt_address, mqtt_answers, postgres_answers, redis_answers
from mirante.devstack.state import DataDirLock
from mirante.testing.plugin import embedded_stack_dir, scratch_data_dir

pytestmark = pytest.mark.slow

STACK_ENV = (
    "MIRANTE_DATABASE_URL",
    "MIRANTE_REDIS_URL",
    "MIRANTE_MQTT_URL",
    "MIRANTE_EMBEDDED_MQTT",
    "MIRANTE_EMBEDDED_MQTT_PORT",
)
needs_mosquitto = pytest.mark.skipif(find_mosquitto() is None, reason="no mosquitto binary installed")


@pytest.fixture
def no_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in STACK_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Outside pytest's temporary root, which another pytest session of root makes unreachable for the
    embedded PostgreSQL's own system user (see `scratch_data_dir`)."""
    with scratch_data_dir() as path:
        yield path


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    """One stack for the tests that only use the servers, published as `mirante up` does."""
    with scratch_data_dir() as data_dir, pytest.MonkeyPatch.context() as patch:
        for name in STACK_ENV:
            patch.delenv(name, raising=False)
        running = EmbeddedStack(data_dir, publish_state=True)
        running.start()
        patch.undo()
        try:
            yield running
        finally:
            running.stop()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def mqtt_round_trip(url: str) -> bytes:
    host, port = mqtt_address(url)
    topic = f"mirante-test/{uuid.uuid4().hex}"
    async with aiomqtt.Client(host, port, identifier=f"mirante-test-{uuid.uuid4().hex[:10]}") as client:
        await client.subscribe(topic, qos=1)
        await client.publish(topic, b"round trip", qos=1)
        async with asyncio.timeout(5):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                return message.payload
    raise AssertionError("no message came back")


async def test_postgres_runs_queries_and_ddl(stack: EmbeddedStack) -> None:
    schema = f"devstack_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(stack.urls.database_url)
    try:
        assert await connection.fetchval("select 1") == 1
        await connection.execute(f"create schema {schema}")
        await connection.execute(f"create table {schema}.sample (id int primary key)")
        await connection.execute(f"insert into {schema}.sample values (7)")
        assert await connection.fetchval(f"select id from {schema}.sample") == 7
        await connection.execute(f"drop schema {schema} cascade")
    finally:
        await connection.close()

    engine = create_engine(stack.urls.database_url)
    try:
        async with engine.connect() as sa_connection:
            assert (await sa_connection.execute(text("select 2"))).scalar_one() == 2
    finally:
        await engine.dispose()


async def test_postgres_is_a_current_release_with_correct_date_bin(stack: EmbeddedStack) -> None:
    # PostgreSQL 16.2 (the last build pgserver shipped) floors this timestamp to 23:29:59; fixed releases and
    # the servers users run give 23:30:00, which the telemetry buckets rely on.
    connection = await asyncpg.connect(stack.urls.database_url)
    try:
        assert int(await connection.fetchval("show server_version_num")) >= 170000
        binned = await connection.fetchval(
            "select date_bin('1 second', timestamp '1969-12-31 23:30:00', timestamp '1970-01-05')"
        )
    finally:
        await connection.close()
    assert binned == datetime(1969, 12, 31, 23, 30)


async def test_a_cluster_of_another_major_version_is_kept_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MIRANTE_REDIS_URL", "redis://cache.invalid:6379/0")
    monkeypatch.setenv("MIRANTE_MQTT_URL", "mqtt://broker.invalid:1883")
    monkeypatch.delenv("MIRANTE_DATABASE_URL", raising=False)
    old = tmp_path / "postgres"
    old.mkdir()
    (old / "PG_VERSION").write_text("16\n")
    (old / "base").mkdir()
    (old / "base" / "kept").write_text("data of the old cluster")
    caplog.set_level(logging.WARNING, logger="mirante.devstack")

    stack = EmbeddedStack(tmp_path)
    urls = await stack.astart()
    try:
        connection = await asyncpg.connect(urls.database_url)
        try:
            major = await connection.fetchval("show server_version_num")
        finally:
            await connection.close()
    finally:
        await stack.astop()

    assert (tmp_path / "postgres-16" / "base" / "kept").read_text() == "data of the old cluster"
    assert (old / "PG_VERSION").read_text().strip() == str(int(major) // 10000)
    assert "postgres-16" in caplog.text


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the embedded PostgreSQL as another system user")
async def test_a_test_run_stack_survives_another_pytest_session_of_root(
    tmp_path_factory: pytest.TempPathFactory, no_urls: None
) -> None:
    pytest_root = tmp_path_factory.getbasetemp().parent
    with embedded_stack_dir() as data_dir:
        stack = EmbeddedStack(data_dir)
        urls = await stack.astart()
        try:
            # What every pytest session started by root does to its temporary root (pytest-of-root).
            pytest_root.chmod(pytest_root.stat().st_mode & ~0o077)
            connection = await asyncpg.connect(urls.database_url)
            try:
                await connection.execute("checkpoint")  # reopens files of the data folder
                assert await connection.fetchval("select 1") == 1
            finally:
                await connection.close()
        finally:
            await stack.astop()


async def test_redis_supports_stream_consumer_groups(stack: EmbeddedStack) -> None:
    stream = f"devstack-test:{uuid.uuid4().hex}"
    client = Redis.from_url(stack.urls.redis_url)
    try:
        assert await client.ping()
        await client.xgroup_create(stream, "workers", id="0", mkstream=True)
        entry_id = await client.xadd(stream, {"event": "created"})
        batches = await client.xreadgroup("workers", "worker-1", {stream: ">"}, count=10)
        assert isinstance(batches, list) and len(batches) == 1  # RESP2 replies: [(stream, entries)]
        name, entries = batches[0]
        assert name == stream.encode()
        assert entries == [(entry_id, {b"event": b"created"})]
        assert await client.xack(stream, "workers", entry_id) == 1
    finally:
        await client.delete(stream)
        await client.aclose()


async def test_mqtt_round_trip(stack: EmbeddedStack) -> None:
    assert await mqtt_round_trip(stack.urls.mqtt_url) == b"round trip"


@needs_mosquitto
def test_mosquitto_is_preferred_with_its_own_configuration(stack: EmbeddedStack) -> None:
    config = (stack.data_dir / "mosquitto" / "mosquitto.conf").read_text()
    assert "persistence true" in config
    assert "max_inflight_messages 0" in config
    assert "max_queued_messages 1000000" in config
    assert f"listener {mqtt_address(stack.urls.mqtt_url)[1]} 127.0.0.1" in config
    assert stack.log_paths["mqtt"].name == "mosquitto.log"
    assert stack.mqtt_protocol == "5"


def test_state_file_describes_the_running_stack(stack: EmbeddedStack, no_urls: None) -> None:
    state = json.loads((stack.data_dir / "stack.json").read_text())
    assert state["pid"] == os.getpid()
    assert sorted(state["embedded"]) == ["database", "mqtt", "redis"]
    assert StackUrls(state["database_url"], state["redis_url"], state["mqtt_url"]) == stack.urls

    assert resolve_urls(stack.data_dir) == ResolvedUrls(**asdict(stack.urls))
    assert resolve_database_url(stack.data_dir) == stack.urls.database_url
    with ensure_stack(stack.data_dir) as urls:
        assert urls == stack.urls


def test_environment_wins_over_the_state_file(stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRANTE_DATABASE_URL", "postgresql://someone@db.example:5432/app")
    monkeypatch.setenv("MIRANTE_REDIS_URL", "redis://cache.example:6379/2")
    monkeypatch.delenv("MIRANTE_MQTT_URL", raising=False)

    resolved = resolve_urls(stack.data_dir)

    assert resolved.database_url == "postgresql://someone@db.example:5432/app"
    assert resolved.redis_url == "redis://cache.example:6379/2"
    assert resolved.mqtt_url == stack.urls.mqtt_url


def test_a_second_stack_on_the_same_folder_is_refused(stack: EmbeddedStack, no_urls: None) -> None:
    with pytest.raises(StackBusyError) as raised:
        EmbeddedStack(stack.data_dir).start()
    assert raised.value.holder_pid == os.getpid()


def test_state_file_of_a_dead_owner_is_ignored(stack: EmbeddedStack, tmp_path: Path, no_urls: None) -> None:
    # The URLs point at servers that answer, so only the owner's death can make the file stale.
    stale = {"pid": dead_pid(), "embedded": ["database"], **asdict(stack.urls)}
    (tmp_path / "stack.json").write_text(json.dumps(stale))

    assert resolve_urls(tmp_path) == ResolvedUrls()
    with pytest.raises(StackNotRunningError, match="mirante up"):
        resolve_database_url(tmp_path)


async def test_restart_keeps_data_and_replaces_stale_state(tmp_path: Path, no_urls: None) -> None:
    table = f"kept_{uuid.uuid4().hex[:8]}"
    key = f"devstack-test:{uuid.uuid4().hex}"
    topic = f"mirante-test/{uuid.uuid4().hex}"
    session_id = f"mirante-test-{uuid.uuid4().hex[:10]}"
    uses_mosquitto = find_mosquitto() is not None

    with ensure_stack(tmp_path) as first:
        assert not (tmp_path / "stack.json").exists()
        connection = await asyncpg.connect(first.database_url)
        await connection.execute(f"create table {table} (note text)")
        await connection.execute(f"insert into {table} values ('survives')")
        await connection.close()
        redis = Redis.from_url(first.redis_url)
        await redis.set(key, "survives")
        await redis.aclose()
        host, port = mqtt_address(first.mqtt_url)
        async with aiomqtt.Client(host, port, identifier=session_id, clean_session=False) as subscriber:
            await subscriber.subscribe(topic, qos=1)
        async with aiomqtt.Client(host, port) as publisher:
            await publisher.publish(topic, b"queued while offline", qos=1)

    assert not postgres_answers(first.database_url)
    assert not redis_answers(first.redis_url)
    (tmp_path / "stack.json").write_text(json.dumps({"pid": dead_pid(), "embedded": [], **asdict(first)}))
    # A postmaster.pid naming a live process that is not this cluster's server (pid reuse after a crash).
    (tmp_path / "postgres" / "postmaster.pid").write_text(
        f"{os.getpid()}\n{tmp_path / 'postgres'}\n1700000000\n5432\n{tmp_path / 'postgres'}\n\n  0 0\nready\n"
    )

    second_stack = EmbeddedStack(tmp_path, publish_state=True)
    second = await second_stack.astart()
    try:
        assert json.loads((tmp_path / "stack.json").read_text())["pid"] == os.getpid()
        connection = await asyncpg.connect(second.database_url)
        assert await connection.fetchval(f"select note from {table}") == "survives"
        await connection.close()
        redis = Redis.from_url(second.redis_url)
        assert await redis.get(key) == b"survives"
        await redis.aclose()
        if uses_mosquitto:
            host, port = mqtt_address(second.mqtt_url)
            async with aiomqtt.Client(host, port, identifier=session_id, clean_session=False) as subscriber:
                async with asyncio.timeout(5):
                    message = await anext(aiter(subscriber.messages))
            assert message.payload == b"queued while offline"
    finally:
        await second_stack.astop()
    await second_stack.astop()

    assert not (tmp_path / "stack.json").exists()
    assert resolve_urls(tmp_path) == ResolvedUrls()


def test_servers_stop_when_the_owner_exits_without_calling_stop(tmp_path: Path, no_urls: None) -> None:
    program = (
        "import json, sys; from pathlib import Path; from mirante.devstack import EmbeddedStack; "
        "urls = EmbeddedStack(Path(sys.argv[1]), publish_state=True).start(); "
        "print(json.dumps(urls.__dict__))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
    )
    urls = StackUrls(**json.loads(result.stdout.strip().splitlines()[-1]))

    assert not postgres_answers(urls.database_url)
    assert not redis_answers(urls.redis_url)
    assert not mqtt_answers(urls.mqtt_url)
    assert not (tmp_path / "stack.json").exists()


async def test_amqtt_fallback_serves_mqtt_and_configured_urls_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MIRANTE_DATABASE_URL", "postgresql://postgres@db.invalid/postgres")
    monkeypatch.setenv("MIRANTE_REDIS_URL", "redis://cache.invalid:6379/0")
    monkeypatch.delenv("MIRANTE_MQTT_URL", raising=False)
    monkeypatch.setenv("MIRANTE_EMBEDDED_MQTT", "amqtt")
    caplog.set_level(logging.WARNING, logger="mirante.devstack")

    stack = EmbeddedStack(tmp_path)
    urls = await stack.astart()
    try:
        assert urls.database_url == "postgresql://postgres@db.invalid/postgres"
        assert urls.redis_url == "redis://cache.invalid:6379/0"
        assert stack.started_components == ("mqtt",)
        assert stack.mqtt_protocol == "3.1.1"
        assert not (tmp_path / "postgres").exists()
        assert "amqtt" in caplog.text and "offline" in caplog.text
        assert await mqtt_round_trip(urls.mqtt_url) == b"round trip"
    finally:
        await stack.astop()
    assert not (tmp_path / "amqtt" / "amqtt.pid").exists()


def test_a_configured_mqtt_port_in_use_is_refused(
    stack: EmbeddedStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRANTE_DATABASE_URL", "postgresql://postgres@db.invalid/postgres")
    monkeypatch.setenv("MIRANTE_REDIS_URL", "redis://cache.invalid:6379/0")
    monkeypatch.delenv("MIRANTE_MQTT_URL", raising=False)
    taken = mqtt_address(stack.urls.mqtt_url)[1]

    with pytest.raises(StackError, match=f"{taken}.*already in use"):
        EmbeddedStack(tmp_path, mqtt_port=taken).start()
    lock = DataDirLock(tmp_path)
    lock.acquire()  # the failed start gave the folder up
    lock.release()


def test_the_port_setting_chooses_the_brokers_port_over_the_one_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRANTE_DATABASE_URL", "postgresql://postgres@db.invalid/postgres")
    monkeypatch.setenv("MIRANTE_REDIS_URL", "redis://cache.invalid:6379/0")
    monkeypatch.delenv("MIRANTE_MQTT_URL", raising=False)
    with socket.socket() as first, socket.socket() as second:
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        kept, chosen = int(first.getsockname()[1]), int(second.getsockname()[1])
    (tmp_path / "mqtt.port").write_text(f"{kept}\n")
    monkeypatch.setenv("MIRANTE_EMBEDDED_MQTT_PORT", str(chosen))

    stack = EmbeddedStack(tmp_path)
    urls = stack.start()
    try:
        assert urls.mqtt_url == f"mqtt://127.0.0.1:{chosen}"
        assert mqtt_answers(urls.mqtt_url)
    finally:
        stack.stop()
    assert (tmp_path / "mqtt.port").read_text().strip() == str(chosen)  # later starts without the setting keep it


def test_bad_configuration_is_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MIRANTE_EMBEDDED_MQTT", "hivemq")
    with pytest.raises(InvalidStackConfigError, match="MIRANTE_EMBEDDED_MQTT"):
        EmbeddedStack(tmp_path)
    monkeypatch.setenv("MIRANTE_EMBEDDED_MQTT", "auto")
    monkeypatch.setenv("MIRANTE_EMBEDDED_MQTT_PORT", "1883x")
    with pytest.raises(InvalidStackConfigError, match="MIRANTE_EMBEDDED_MQTT_PORT must be a port number"):
        EmbeddedStack(tmp_path)
    monkeypatch.setenv("MIRANTE_EMBEDDED_MQTT_PORT", "70000")
    with pytest.raises(InvalidStackConfigError, match="within 1-65535"):
        EmbeddedStack(tmp_path)
    monkeypatch.delenv("MIRANTE_EMBEDDED_MQTT_PORT")
    with pytest.raises(InvalidStackConfigError, match="MIRANTE_DATABASE_URL"):
        StackUrls("mysql://db/app", "redis://cache:6379/0", "mqtt://broker:1883")
    monkeypatch.setenv("MIRANTE_REDIS_URL", "http://cache:6379")
    with pytest.raises(InvalidStackConfigError, match="MIRANTE_REDIS_URL"):
        resolve_urls(tmp_path)


def test_the_embedded_broker_keeps_its_port_and_refuses_to_move(tmp_path: Path, no_urls: None) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    (tmp_path / "mqtt.port").write_text(f"{port}\n")  # where an earlier run of this folder's broker listened

    broker = EmbeddedMqttBroker(tmp_path)
    try:
        assert broker.start(30.0) == f"mqtt://127.0.0.1:{port}"
    finally:
        broker.stop()
    assert (tmp_path / "mqtt.port").read_text().strip() == str(port)

    with socket.socket() as squatter:
        # The readiness probe's closed connections linger in TIME_WAIT; only a listener must block the port.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(StackError, match=f"MQTT port {port} .* listened before"):
            EmbeddedMqttBroker(tmp_path).start(30.0)

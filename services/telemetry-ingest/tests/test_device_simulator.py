"""The device fleet simulator: layout, determinism, and what really reaches the broker (a plain subscriber).

Received messages are read back with the service's own payload parser, so the simulator's promises
(`expected`, bad messages by kind) are checked against the rules the ingest applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest

from mirante.devstack import StackUrls
from mirante.mqtt import parse_mqtt_url
from telemetry_ingest.ingest.payload import Rejection, TopicRoute, parse_readings, parse_topic

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.devices import (  # noqa: E402
    BAD_KINDS,
    DEVICE_KINDS,
    SENSOR_PROFILES,
    DeviceFleet,
    OutgoingMessage,
    PublishResult,
    SimulatorError,
)

START = datetime(2025, 10, 17, 8, 0, tzinfo=UTC)
PARSE_LIMITS: dict[str, Any] = {
    "now": datetime(2025, 10, 18, tzinfo=UTC),
    "max_future_skew": timedelta(minutes=5),
    "max_age": None,
    "max_readings": 1000,
}


def unique_tenants(count: int) -> list[str]:
    run = uuid.uuid4().hex[:10]
    return [f"sim{run}{chr(ord('a') + index)}" for index in range(count)]


@pytest.fixture
def mqtt_url(mirante_urls: StackUrls) -> str:
    return mirante_urls.mqtt_url


@pytest.fixture
def broker_protocol(mirante_urls: StackUrls) -> str:
    """The MQTT version this run's broker speaks (the embedded fallback knows only 3.1.1)."""
    return os.environ.get("MIRANTE_MQTT_PROTOCOL", "5")


class Subscriber:
    """A plain aiomqtt client that collects every message on some topic filters."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.received: list[tuple[str, bytes]] = []
        self._arrived = asyncio.Event()

    async def collect(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            self.received.append((str(message.topic), message.payload))
            self._arrived.set()

    async def wait_for(self, count: int, deadline: float = 30.0) -> list[tuple[str, bytes]]:
        """Wait until `count` messages arrived (or the generous deadline passed), then a moment for extras."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline):
                while len(self.received) < count:
                    self._arrived.clear()
                    await self._arrived.wait()
        await asyncio.sleep(0.1)
        return list(self.received)


@contextlib.asynccontextmanager
async def subscribed(url: str, protocol: str, filters: Sequence[str]) -> AsyncIterator[Subscriber]:
    endpoint = parse_mqtt_url(url)
    client = aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        username=endpoint.username,
        password=endpoint.password,
        identifier=f"sim-test-{uuid.uuid4().hex[:12]}",
        protocol=aiomqtt.ProtocolVersion.V5 if protocol == "5" else aiomqtt.ProtocolVersion.V311,
    )
    async with client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)
        subscriber = Subscriber(client)
        task = asyncio.create_task(subscriber.collect())
        try:
            yield subscriber
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def read_back(received: Sequence[tuple[str, bytes]], unknown_tenant: str) -> tuple[set[Any], Counter[str]]:
    """Parse what arrived as the ingest would: good (tenant, device, sensor, ts) and bad readings by kind."""
    good: set[Any] = set()
    bad: Counter[str] = Counter()
    for topic, payload in received:
        route = parse_topic(topic)
        assert isinstance(route, TopicRoute), route
        parsed = parse_readings(payload, **PARSE_LIMITS)
        if route.tenant == unknown_tenant:
            assert parsed.rejections == []
            bad["unknown_tenant"] += len(parsed.readings)
            continue
        for rejection in parsed.rejections:
            if rejection.reason.startswith("malformed JSON"):
                bad["malformed_json"] += 1
            elif "in the future" in rejection.reason:
                bad["future_timestamp"] += 1
            else:
                assert "value" in rejection.reason, rejection
                bad["non_numeric_value"] += 1
        good.update((route.tenant, route.device_id, route.sensor, reading.ts) for reading in parsed.readings)
    return good, bad


# --- the fleet, offline ------------------------------------------------------------------------------------


def test_devices_spread_over_tenants_with_the_sensors_of_their_kind() -> None:
    fleet = DeviceFleet(["acme", "umc", "zeta"], 10, device_prefix="b1-")
    assert [tenant for tenant, _, _ in fleet.devices] == ["acme", "umc", "zeta"] * 3 + ["acme"]
    assert fleet.devices[:4] == [
        ("acme", "b1-ahu-001", "ahu"),
        ("umc", "b1-ahu-001", "ahu"),
        ("zeta", "b1-ahu-001", "ahu"),
        ("acme", "b1-fcu-002", "fcu"),
    ]
    assert [device for tenant, device, _ in fleet.devices if tenant == "acme"] == [
        "b1-ahu-001",
        "b1-fcu-002",
        "b1-chiller-003",
        "b1-iaq-004",
    ]
    assert len(fleet.streams) == sum(len(DEVICE_KINDS[kind]) for _, _, kind in fleet.devices)
    for stream in fleet.streams:
        route = parse_topic(stream.topic)
        assert route == TopicRoute(stream.tenant, stream.device, stream.sensor)
    assert fleet.unknown_tenant == "acme-unknown"
    assert fleet.start is None


def test_fixed_sensors_for_every_device() -> None:
    fleet = DeviceFleet(["acme"], 3, sensors=["co2", "power"])
    assert [(stream.device, stream.sensor) for stream in fleet.streams] == [
        ("ahu-001", "co2"),
        ("ahu-001", "power"),
        ("fcu-002", "co2"),
        ("fcu-002", "power"),
        ("chiller-003", "co2"),
        ("chiller-003", "power"),
    ]


@pytest.mark.parametrize("timestamp_format", ["iso", "epoch_ms", "epoch_s", "mixed"])
@pytest.mark.parametrize("readings_per_message", [1, 4])
def test_messages_parse_back_to_what_the_fleet_says(timestamp_format: Any, readings_per_message: int) -> None:
    fleet = DeviceFleet(
        ["acme", "umc"], 4, seed=5, start=START, interval=timedelta(milliseconds=250), timestamp_format=timestamp_format
    )
    count = 150 * readings_per_message
    messages = list(fleet.messages(count=count, readings_per_message=readings_per_message, bad_fraction=0.2))

    good = [message for message in messages if message.bad_kind is None]
    assert sum(len(message.readings) for message in good) == count
    assert all(1 <= len(message.readings) <= readings_per_message for message in good)
    assert {message.bad_kind for message in messages} - {None} == set(BAD_KINDS)
    for message in messages:
        parsed = parse_readings(message.payload, **PARSE_LIMITS)
        if message.bad_kind is None:
            profile = SENSOR_PROFILES[message.stream.sensor]
            assert [(reading.ts, reading.value) for reading in parsed.readings] == list(message.readings)
            assert {reading.unit for reading in parsed.readings} == {profile.unit}
            assert all(profile.low <= value <= profile.high for _, value in message.readings)
            assert parsed.rejections == []
            document = orjson.loads(message.payload)
            assert isinstance(document, list) == (readings_per_message > 1)
        elif message.bad_kind == "unknown_tenant":
            assert message.stream.tenant == fleet.unknown_tenant
            assert len(parsed.readings) == 1
        else:
            assert parsed.readings == []
            assert len(parsed.rejections) == 1


def test_same_seed_same_bytes_other_seed_other_values() -> None:
    def payloads(seed: int) -> list[bytes]:
        fleet = DeviceFleet(["acme", "umc"], 5, seed=seed, start=START)
        return [message.payload for message in fleet.messages(count=200, readings_per_message=2, bad_fraction=0.1)]

    assert payloads(11) == payloads(11)
    assert payloads(11) != payloads(12)


def test_timestamps_follow_the_interval_and_continue_across_calls() -> None:
    fleet = DeviceFleet(["acme"], 2, sensors=["temperature"], start=START, interval=timedelta(milliseconds=250))
    first = list(fleet.messages(count=5, readings_per_message=2))
    second = list(fleet.messages(count=3))
    by_stream: dict[str, list[datetime]] = {}
    for message in first + second:
        by_stream.setdefault(message.stream.device, []).extend(ts for ts, _ in message.readings)
    step = timedelta(milliseconds=250)
    # 2 + 2 + 1 readings, then one each in turn, carrying on where the first call stopped (fcu-002).
    assert [(message.stream.device, len(message.readings)) for message in first + second] == [
        ("ahu-001", 2),
        ("fcu-002", 2),
        ("ahu-001", 1),
        ("fcu-002", 1),
        ("ahu-001", 1),
        ("fcu-002", 1),
    ]
    assert by_stream == {
        "ahu-001": [START, START + step, START + 2 * step, START + 3 * step],
        "fcu-002": [START, START + step, START + 2 * step, START + 3 * step],
    }


def test_automatic_start_puts_the_last_readings_at_about_now() -> None:
    fleet = DeviceFleet(["acme"], 1, sensors=["co2"], interval=timedelta(seconds=10))
    before = datetime.now(UTC)
    messages = list(fleet.messages(count=30))
    assert fleet.start is not None
    last = messages[-1].readings[-1][0]
    assert fleet.start == last - 29 * timedelta(seconds=10)
    assert before - timedelta(seconds=11) <= last <= datetime.now(UTC)


def test_values_drift_and_vary_within_range() -> None:
    fleet = DeviceFleet(["acme"], 1, sensors=["temperature"], seed=1, start=START, interval=timedelta(minutes=1))
    values = [value for message in fleet.messages(count=1440) for _, value in message.readings]
    profile = SENSOR_PROFILES["temperature"]
    assert all(profile.low <= value <= profile.high for value in values)
    assert len(set(values)) > 200
    assert max(values) - min(values) > profile.daily


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"tenants": [], "devices": 1}, "distinct tenants"),
        ({"tenants": ["a", "a"], "devices": 1}, "distinct tenants"),
        ({"tenants": ["a/b"], "devices": 1}, "cannot be a topic level"),
        ({"tenants": ["a+"], "devices": 1}, "cannot be a topic level"),
        ({"tenants": ["a"], "devices": 0}, "at least 1"),
        ({"tenants": ["a"], "devices": 1, "sensors": ["vibration"]}, "unknown sensors"),
        ({"tenants": ["a"], "devices": 1, "interval": timedelta(microseconds=1500)}, "milliseconds"),
        ({"tenants": ["a"], "devices": 1, "start": datetime(2025, 1, 1)}, "timezone-aware"),
        ({"tenants": ["a"], "devices": 1, "timestamp_format": "rfc822"}, "timestamp_format"),
        ({"tenants": ["a"], "devices": 1, "device_prefix": "x/"}, "device_prefix"),
        ({"tenants": ["a", "b"], "devices": 1, "unknown_tenant": "b"}, "outside the fleet"),
    ],
)
def test_bad_fleet_arguments(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeviceFleet(**arguments)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"readings_per_message": 0}, "readings_per_message"),
        ({"bad_fraction": 1.0}, "bad_fraction"),
        ({"bad_fraction": -0.1}, "bad_fraction"),
        ({"bad_fraction": 0.1, "bad_kinds": ["gibberish"]}, "unknown bad kinds"),
        ({"count": -1}, "count"),
    ],
)
def test_bad_message_arguments(arguments: dict[str, Any], message: str) -> None:
    fleet = DeviceFleet(["acme"], 1, start=START)
    with pytest.raises(ValueError, match=message):
        fleet.messages(**arguments)


# --- against the broker ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "count, duration or both"),
        ({"count": 1, "rate": 0}, "rate"),
        ({"duration": 0}, "duration"),
        ({"count": 1, "connections": 0}, "at least 1"),
        ({"count": 1, "protocol": "4"}, "protocol"),
        ({"count": 1, "readings_per_message": 0}, "readings_per_message"),
        ({"count": 1, "bad_fraction": 0.5, "bad_kinds": []}, "bad kinds"),
    ],
)
async def test_bad_publish_arguments(arguments: dict[str, Any], message: str) -> None:
    # Checked before connecting: the URL points nowhere.
    with pytest.raises(ValueError, match=message):
        await DeviceFleet(["acme"], 1).publish("mqtt://127.0.0.1:1", **arguments)


async def test_everything_published_arrives_as_promised(mqtt_url: str, broker_protocol: str) -> None:
    tenants = unique_tenants(3)
    fleet = DeviceFleet(tenants, 7, seed=3, start=START, timestamp_format="mixed")
    filters = [f"tenants/{tenant}/#" for tenant in [*tenants, fleet.unknown_tenant]]
    async with subscribed(mqtt_url, broker_protocol, filters) as subscriber:
        result = await fleet.publish(
            mqtt_url, count=400, readings_per_message=4, bad_fraction=0.15, connections=3, max_in_flight=16
        )
        received = await subscriber.wait_for(result.messages)

    assert result.readings == 400
    assert len(result.expected) == 400
    assert sum(result.bad.values()) > 0
    assert result.messages == 100 + sum(result.bad.values())
    assert len(received) == result.messages
    good, bad = read_back(received, fleet.unknown_tenant)
    assert good == result.expected
    assert bad == result.bad
    assert {key[:3] for key in result.expected} == set(result.latest)
    for stream_key, (ts, _) in result.latest.items():
        assert ts == max(key[3] for key in result.expected if key[:3] == stream_key)


async def test_single_readings_paced_to_a_rate(mqtt_url: str, broker_protocol: str) -> None:
    tenants = unique_tenants(2)
    fleet = DeviceFleet(tenants, 4, sensors=["temperature", "humidity"], seed=9, start=START)
    async with subscribed(mqtt_url, broker_protocol, [f"tenants/{tenant}/#" for tenant in tenants]) as subscriber:
        # The broker's own protocol: MQTT 5 on Mosquitto, where the default elsewhere is 3.1.1.
        result = await fleet.publish(mqtt_url, count=300, rate=1500, protocol=broker_protocol, connections=1)
        received = await subscriber.wait_for(300)

    # Pacing lets a message out only once the rate allows it, give or take a 2 % burst.
    assert result.elapsed >= (300 - 1500 * 0.02) / 1500 * 0.99
    assert (result.messages, result.readings, result.bad) == (300, 300, Counter())
    good, bad = read_back(received, fleet.unknown_tenant)
    assert good == result.expected
    assert not bad
    assert all(isinstance(orjson.loads(payload), dict) for _, payload in received)


async def test_a_duration_run_can_be_stopped_and_continues_afterwards(mqtt_url: str, broker_protocol: str) -> None:
    tenants = unique_tenants(1)
    fleet = DeviceFleet(tenants, 2, sensors=["co2"], start=START)
    stop = asyncio.Event()
    async with subscribed(mqtt_url, broker_protocol, [f"tenants/{tenants[0]}/#"]) as subscriber:
        asyncio.get_running_loop().call_later(0.3, stop.set)
        first = await fleet.publish(mqtt_url, duration=60, rate=400, stop=stop)
        second = await fleet.publish(mqtt_url, count=10, readings_per_message=5)
        received = await subscriber.wait_for(first.messages + second.messages)

    assert 0 < first.readings < 400 * 60
    assert len(first.expected) == first.readings
    assert not first.expected & second.expected
    good, _ = read_back(received, fleet.unknown_tenant)
    assert good == first.expected | second.expected
    newest_first = max(ts for *_, ts in first.expected)
    assert all(ts > newest_first - timedelta(seconds=1) for *_, ts in second.expected)


async def test_untracked_run_still_counts(mqtt_url: str) -> None:
    fleet = DeviceFleet(unique_tenants(1), 3, start=START)
    result = await fleet.publish(mqtt_url, count=60, readings_per_message=6, track=False)
    assert isinstance(result, PublishResult)
    assert (result.readings, result.messages, result.expected) == (60, 10, set())
    assert len(result.latest) == 10


async def test_unreachable_broker_is_a_clear_error() -> None:
    fleet = DeviceFleet(["acme"], 1, start=START)
    with pytest.raises(SimulatorError, match="cannot reach the broker"):
        await fleet.publish("mqtt://127.0.0.1:1", count=1)


async def test_cli_publishes_and_prints_a_summary(mqtt_url: str, broker_protocol: str) -> None:
    tenants = unique_tenants(2)
    async with subscribed(mqtt_url, broker_protocol, [f"tenants/{tenant}/#" for tenant in tenants]) as subscriber:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(REPO_ROOT / "scripts" / "simulators" / "devices.py"),
            "--url",
            mqtt_url,
            "--tenants",
            ",".join(tenants),
            "--devices",
            "3",
            "--sensors",
            "temperature,co2",
            "--count",
            "24",
            "--readings-per-message",
            "3",
            "--start",
            "2025-10-17T08:00:00Z",
            "--timestamp-format",
            "epoch_ms",
            "--json",
            "--progress-every",
            "0",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await process.communicate()
        received = await subscriber.wait_for(8)

    assert process.returncode == 0, stderr.decode()
    summary = orjson.loads(stdout)
    assert summary["readings"] == 24
    assert summary["messages"] == 8
    assert summary["streams"] == 6
    assert summary["start"] == "2025-10-17T08:00:00+00:00"
    # 8 messages of 3 readings over 6 sensors: the first two sensors get two messages, 6 readings a second apart.
    assert (summary["first_ts"], summary["last_ts"]) == ("2025-10-17T08:00:00.000Z", "2025-10-17T08:00:05.000Z")
    # Before publishing, stderr says where to and which timestamps; then progress (here after every message).
    plan, *progress = stderr.decode().splitlines()[:3], *stderr.decode().splitlines()[3:]
    assert plan == [
        f"publishing to {mqtt_url} as 3 devices (6 sensors) in 2 tenants ({', '.join(tenants)})",
        "readings timestamped 2025-10-17T08:00:00.000Z to 2025-10-17T08:00:05.000Z, 1 s apart on each sensor",
        "  note: outside the last 24 hours, the range the ops pages and the queries show by default",
    ]
    assert progress, stderr.decode()
    for index, line in enumerate(progress, start=1):
        assert re.fullmatch(
            rf"sent {3 * index} readings in {index} messages?, \d+ acknowledged, [\d,]+ readings/s after [\d.]+ s", line
        ), line
    assert len(received) == 8
    for topic, payload in received:
        assert isinstance(parse_topic(topic), TopicRoute)
        readings = orjson.loads(payload)
        assert len(readings) == 3
        assert all(isinstance(reading["timestamp"], int) for reading in readings)


async def run_cli(*arguments: str) -> tuple[int | None, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO_ROOT / "scripts" / "simulators" / "devices.py"),
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    return process.returncode, stdout.decode(), stderr.decode()


async def test_cli_says_it_backdates_and_quiet_keeps_only_the_summary(mqtt_url: str) -> None:
    tenant = unique_tenants(1)[0]
    common = ("--url", mqtt_url, "--tenants", tenant, "--devices", "1", "--sensors", "co2", "--count", "5")

    code, stdout, stderr = await run_cli(*common, "--interval", "60", "--progress-every", "0")
    assert code == 0, stderr
    lines = stderr.splitlines()
    first, last = re.fullmatch(r"readings timestamped (\S+) to (\S+), 60 s apart on each sensor", lines[1]).groups()  # type: ignore[union-attr]
    first_ts, last_ts = datetime.fromisoformat(first), datetime.fromisoformat(last)
    assert last_ts - first_ts == timedelta(minutes=4)
    assert datetime.now(UTC) - timedelta(minutes=3) <= last_ts <= datetime.now(UTC)
    assert "backdated, so that the last readings are about now" in lines[2]
    assert not any("outside the last 24 hours" in line for line in lines)
    assert re.fullmatch(
        rf"1 device \(1 sensor\) in 1 tenant \({tenant}\) published 5 readings and 0 bad ones in 5 messages over "
        rf"[\d.]+ s: [\d,]+ readings/s, timestamped {re.escape(first)} to {re.escape(last)}\n",
        stdout,
    ), stdout

    code, stdout, stderr = await run_cli(*common, "--quiet", "--progress-every", "0")
    assert (code, stderr) == (0, "")
    assert stdout.startswith("1 device (1 sensor) in 1 tenant") and stdout.count("\n") == 1


def test_timestamp_range_is_what_publish_will_use() -> None:
    fleet = DeviceFleet(["acme"], 2, sensors=["co2"], start=START, interval=timedelta(seconds=10))
    assert fleet.timestamp_range(count=7) == (START, START + timedelta(seconds=30))
    assert fleet.timestamp_range(duration=5, rate=4) == (START, START + timedelta(seconds=90))
    assert fleet.timestamp_range(duration=5) == (START, None)
    list(fleet.messages(count=4))
    assert fleet.timestamp_range(count=2) == (START + timedelta(seconds=20), START + timedelta(seconds=20))
    # Batches: whatever the split, the range is that of the readings the messages carry.
    for count, per_message, before in [(7, 3, 2), (12, 5, 2), (1, 4, 2), (1, 1, 4), (9, 2, 1), (4, 1, 0)]:
        batched = DeviceFleet(["acme"], 3, sensors=["co2"], start=START, interval=timedelta(seconds=10))
        list(batched.messages(count=before))
        planned = batched.timestamp_range(count=count, readings_per_message=per_message)
        sent = [ts for m in batched.messages(count=count, readings_per_message=per_message) for ts, _ in m.readings]
        assert planned == (min(sent), max(sent)), (count, per_message)

    automatic = DeviceFleet(["acme"], 1, sensors=["co2"], interval=timedelta(seconds=10))
    first, last = automatic.timestamp_range(count=30)
    assert automatic.start == first and last == first + 29 * timedelta(seconds=10)
    assert [ts for message in automatic.messages(count=30) for ts, _ in message.readings][-1] == last


async def test_cli_rejects_bad_arguments() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO_ROOT / "scripts" / "simulators" / "devices.py"),
        "--tenants",
        "a",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    assert process.returncode == 2
    assert b"give --count, --duration or both" in stderr


def test_messages_are_outgoing_messages() -> None:
    message = next(DeviceFleet(["acme"], 1, start=START).messages(count=1))
    assert isinstance(message, OutgoingMessage)
    assert message.size == 1
    assert not isinstance(parse_topic(message.stream.topic), Rejection)

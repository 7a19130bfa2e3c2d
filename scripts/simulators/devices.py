"""A fleet of HVAC devices publishing telemetry over MQTT, for tests, demos and benchmarks.

`DeviceFleet` spreads `devices` devices over a few tenants. Each device has a kind (air handling unit, fan
coil, chiller, indoor air-quality sensor) and the sensors of its kind, and publishes realistic readings
(a daily cycle, a slow drift and noise, within plausible ranges) on
`tenants/{tenant}/devices/{device}/sensors/{sensor}` at QoS 1, one reading per message as a JSON object or
`readings_per_message` consecutive readings as a JSON list.

Timestamps are deterministic: reading `k` of a sensor is at `start + k * interval`, whatever the wall clock,
so a test knows exactly which `(tenant, device, sensor, ts)` were sent (`PublishResult.expected`), and the
sequence continues across `publish` calls. Without an explicit `start` the first call picks one so that its
last readings are about now. Values come from a seeded generator: the same fleet and calls publish the same
bytes. A fraction of extra bad messages (malformed JSON, a non-numeric value, a far-future timestamp, an
unknown tenant; one rejected reading each) can be mixed in, chosen by the same seed.

Publishing goes through paho-mqtt driven by the asyncio loop, with a window of unacknowledged messages and
an optional target rate: the library's `mirante.mqtt.Publisher` (aiomqtt, a future per message) managed about
3,000 messages/s on two cores, this path several times more, and batching multiplies that in readings.
Devices speak MQTT 3.1.1 by default, as most field devices do; paho also handles its acknowledgements at
about half the cost of MQTT 5's, whose every PUBACK carries a reason code and properties.

The command line says before it starts where it publishes and which timestamps its readings carry (backdated
unless `--start` is given), prints a progress line on stderr every `--progress-every` seconds (sent, acknowledged,
rate), and a summary on stdout at the end; `--quiet` keeps only the summary.

    .venv/bin/python scripts/simulators/devices.py --url mqtt://127.0.0.1:1883 --tenants a,b --devices 50 \\
        --rate 2000 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import signal
import ssl
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from mirante.devstack.urls import redact
from mirante.mqtt import MqttEndpoint, parse_mqtt_url

TimestampFormat = Literal["iso", "epoch_ms", "epoch_s", "mixed"]
TIMESTAMP_FORMATS: tuple[TimestampFormat, ...] = ("iso", "epoch_ms", "epoch_s", "mixed")
BAD_KINDS = ("malformed_json", "non_numeric_value", "future_timestamp", "unknown_tenant")
ReadingKey = tuple[str, str, str, datetime]
"""(tenant, device, sensor, ts) of one good reading."""
StreamKey = tuple[str, str, str]
"""(tenant, device, sensor)."""

FAR_FUTURE = datetime(2099, 1, 1, tzinfo=UTC)
DEFAULT_INTERVAL = timedelta(seconds=1)
DEFAULT_MAX_IN_FLIGHT = 1000
CONNECT_TIMEOUT = 10.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_DAY_MS = 86_400_000
_TOPIC_LEVEL_RE = re.compile(r"[^/+#\x00]{1,128}")
_NON_NUMERIC_VALUES: tuple[Any, ...] = ("n/a", "23.5", None, True, {"value": 1})


class SimulatorError(RuntimeError):
    """The fleet could not publish (broker unreachable or refusing, connection lost, acknowledgements missing)."""


@dataclass(frozen=True)
class SensorProfile:
    """How one kind of sensor behaves: typical value, daily swing, drift and noise, hard limits."""

    unit: str
    base: float
    daily: float
    drift: float
    noise: float
    low: float
    high: float
    decimals: int


SENSOR_PROFILES: dict[str, SensorProfile] = {
    "temperature": SensorProfile("celsius", 22.5, 1.5, 0.02, 0.08, 10.0, 35.0, 2),
    "supply_air_temperature": SensorProfile("celsius", 13.0, 1.0, 0.02, 0.1, 6.0, 20.0, 2),
    "return_air_temperature": SensorProfile("celsius", 24.0, 1.2, 0.02, 0.1, 15.0, 32.0, 2),
    "chilled_water_temperature": SensorProfile("celsius", 7.0, 0.4, 0.01, 0.05, 4.0, 12.0, 2),
    "humidity": SensorProfile("percent", 48.0, 6.0, 0.05, 0.4, 15.0, 90.0, 1),
    # Duct static pressure.
    "pressure": SensorProfile("pascal", 250.0, 25.0, 0.5, 3.0, 0.0, 600.0, 1),
    "co2": SensorProfile("ppm", 650.0, 180.0, 2.0, 8.0, 400.0, 2500.0, 0),
    "power": SensorProfile("kilowatt", 7.5, 3.0, 0.05, 0.15, 0.0, 40.0, 3),
}

DEVICE_KINDS: dict[str, tuple[str, ...]] = {
    "ahu": ("supply_air_temperature", "return_air_temperature", "humidity", "pressure", "co2", "power"),
    "fcu": ("temperature", "humidity", "power"),
    "chiller": ("chilled_water_temperature", "pressure", "power"),
    "iaq": ("temperature", "humidity", "co2"),
}


@dataclass(frozen=True)
class Stream:
    """One sensor of one device of one tenant, and the topic it publishes on."""

    tenant: str
    device: str
    sensor: str
    topic: str

    @property
    def key(self) -> StreamKey:
        return (self.tenant, self.device, self.sensor)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message the fleet sends: good `readings` as (ts, value), or one bad reading of kind `bad_kind`."""

    stream: Stream
    payload: bytes
    readings: tuple[tuple[datetime, float], ...]
    bad_kind: str | None = None

    @property
    def size(self) -> int:
        """Readings carried, bad ones included (what a target rate counts)."""
        return len(self.readings) or 1


@dataclass
class PublishResult:
    """What one `publish` call sent, every message acknowledged by the broker.

    `expected` holds every good reading (empty when not tracked), `latest` the newest good reading of each
    stream, `bad` the bad messages by kind (each carries exactly one rejected reading).
    """

    expected: set[ReadingKey] = field(default_factory=set)
    latest: dict[StreamKey, tuple[datetime, float]] = field(default_factory=dict)
    bad: Counter[str] = field(default_factory=Counter)
    messages: int = 0
    readings: int = 0
    elapsed: float = 0.0

    @property
    def readings_per_second(self) -> float:
        """Good and bad readings per second over the whole call, acknowledgements included."""
        total = self.readings + sum(self.bad.values())
        return total / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class Progress:
    """How far a `publish` call is: what it sent and what the broker acknowledged so far."""

    messages: int
    readings: int
    """readings sent, bad ones included"""
    acknowledged: int
    """messages the broker acknowledged"""
    elapsed: float

    @property
    def readings_per_second(self) -> float:
        return self.readings / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class _StreamState:
    stream: Stream
    profile: SensorProfile
    position: int
    bias: float
    phase: float
    walk: float = 0.0
    next_index: int = 0


class DeviceFleet:
    """`devices` simulated devices spread round-robin over `tenants` (see the module documentation).

    Device `i` belongs to tenant `i % len(tenants)`; kinds rotate within each tenant and ids read
    `<prefix><kind>-<nnn>`. `sensors` gives every device the same sensors instead of its kind's.
    """

    def __init__(
        self,
        tenants: Sequence[str],
        devices: int,
        *,
        sensors: Sequence[str] | None = None,
        seed: int = 0,
        start: datetime | None = None,
        interval: timedelta = DEFAULT_INTERVAL,
        timestamp_format: TimestampFormat = "iso",
        device_prefix: str = "",
        unknown_tenant: str | None = None,
    ) -> None:
        tenants = list(tenants)
        if not tenants or len(set(tenants)) != len(tenants):
            raise ValueError("give one or more distinct tenants")
        for tenant in tenants:
            # Not checked against the slug rule on purpose: publishing to an invalid tenant is a test too.
            if _TOPIC_LEVEL_RE.fullmatch(tenant) is None:
                raise ValueError(f"tenant {tenant!r} cannot be a topic level (1 to 128 characters, no / + #)")
        if devices < 1:
            raise ValueError("devices must be at least 1")
        if sensors is not None:
            unknown = sorted(set(sensors) - SENSOR_PROFILES.keys())
            if unknown or not sensors:
                raise ValueError(f"unknown sensors {unknown}; choose among {sorted(SENSOR_PROFILES)}")
        if interval < _MILLISECOND or interval % _MILLISECOND:
            raise ValueError("interval must be a positive whole number of milliseconds")
        if timestamp_format not in TIMESTAMP_FORMATS:
            raise ValueError(f"timestamp_format must be one of {TIMESTAMP_FORMATS}")
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{0,64}", device_prefix):
            raise ValueError("device_prefix may hold only A-Z a-z 0-9 _ . : - (at most 64)")
        self.tenants = tenants
        self.unknown_tenant = unknown_tenant or f"{tenants[0][:39]}-unknown"
        if self.unknown_tenant in tenants or _TOPIC_LEVEL_RE.fullmatch(self.unknown_tenant) is None:
            raise ValueError(f"unknown_tenant {self.unknown_tenant!r} must be a topic level outside the fleet")
        self.seed = seed
        self.interval = interval
        self.timestamp_format: TimestampFormat = timestamp_format
        self._interval_ms = interval // _MILLISECOND
        self._start_ms = None if start is None else _to_ms(start)
        self._rng = random.Random(seed)
        self._bad_rng = random.Random(f"bad:{seed}")
        self._cursor = 0
        self._bad_sequence = 0

        kinds = list(DEVICE_KINDS)
        self.devices: list[tuple[str, str, str]] = []
        """(tenant, device id, kind) of every device."""
        self._states: list[_StreamState] = []
        for index in range(devices):
            tenant = tenants[index % len(tenants)]
            ordinal = index // len(tenants)
            kind = kinds[ordinal % len(kinds)]
            device = f"{device_prefix}{kind}-{ordinal + 1:03d}"
            self.devices.append((tenant, device, kind))
            for sensor in sensors if sensors is not None else DEVICE_KINDS[kind]:
                profile = SENSOR_PROFILES[sensor]
                stream = Stream(tenant, device, sensor, f"tenants/{tenant}/devices/{device}/sensors/{sensor}")
                self._states.append(
                    _StreamState(
                        stream,
                        profile,
                        position=len(self._states),
                        bias=self._rng.gauss(0.0, profile.daily / 2),
                        phase=self._rng.uniform(-0.05, 0.05),
                    )
                )
        self.streams: list[Stream] = [state.stream for state in self._states]

    @property
    def start(self) -> datetime | None:
        """Time of the first reading of every stream (`None` until the first `publish` picks it)."""
        return None if self._start_ms is None else _from_ms(self._start_ms)

    def timestamp_range(
        self,
        *,
        count: int | None = None,
        duration: float | None = None,
        rate: float | None = None,
        readings_per_message: int = 1,
    ) -> tuple[datetime, datetime | None]:
        """The first and last timestamps the next `publish` with these arguments uses (last: None when it has no
        planned end). Picks the automatic start now if none was given, exactly as that `publish` would."""
        planned = _planned_readings(count, duration, rate)
        if self._start_ms is None:
            self._start_ms = self._automatic_start(planned)
        first = self._start_ms + min(state.next_index for state in self._states) * self._interval_ms
        if planned is None:
            return _from_ms(first), None
        # Messages go to the streams in turn from the cursor, each `readings_per_message` readings but the last.
        streams = len(self._states)
        messages = math.ceil(planned / readings_per_message)
        short = messages * readings_per_message - planned
        spans = []
        for offset in range(min(messages, streams)):
            state = self._states[(self._cursor + offset) % streams]
            sent = (messages - offset + streams - 1) // streams * readings_per_message
            if (messages - 1) % streams == offset:
                sent -= short
            spans.append((state.next_index, state.next_index + sent - 1))
        if not spans:
            return _from_ms(first), _from_ms(first)
        return (
            _from_ms(self._start_ms + min(low for low, _ in spans) * self._interval_ms),
            _from_ms(self._start_ms + max(high for _, high in spans) * self._interval_ms),
        )

    def messages(
        self,
        *,
        count: int | None = None,
        readings_per_message: int = 1,
        bad_fraction: float = 0.0,
        bad_kinds: Sequence[str] = BAD_KINDS,
    ) -> Iterator[OutgoingMessage]:
        """The fleet's next messages, streams in turn: `count` good readings in all, or endless without it.

        Each message slot is, with probability `bad_fraction`, an extra bad message instead. Generating
        advances the fleet (timestamps, drift), so a message drawn and not sent leaves a gap.
        """
        if readings_per_message < 1:
            raise ValueError("readings_per_message must be at least 1")
        if not 0.0 <= bad_fraction < 1.0:
            raise ValueError("bad_fraction must be in [0, 1)")
        unknown = sorted(set(bad_kinds) - set(BAD_KINDS))
        if unknown or (bad_fraction and not bad_kinds):
            raise ValueError(f"unknown bad kinds {unknown}; choose among {BAD_KINDS}")
        if count is not None and count < 0:
            raise ValueError("count must not be negative")
        return self._generate(count, readings_per_message, bad_fraction, tuple(bad_kinds))

    def _generate(
        self, count: int | None, readings_per_message: int, bad_fraction: float, kinds: tuple[str, ...]
    ) -> Iterator[OutgoingMessage]:
        if self._start_ms is None:
            self._start_ms = self._automatic_start(count)
        remaining = count
        while remaining is None or remaining > 0:
            state = self._states[self._cursor]
            if bad_fraction and self._bad_rng.random() < bad_fraction:
                yield self._bad_message(state, self._bad_rng.choice(kinds))
                continue
            self._cursor = (self._cursor + 1) % len(self._states)
            size = readings_per_message if remaining is None else min(readings_per_message, remaining)
            yield self._good_message(state, size, as_list=readings_per_message > 1)
            if remaining is not None:
                remaining -= size

    async def publish(
        self,
        url: str | MqttEndpoint,
        *,
        count: int | None = None,
        duration: float | None = None,
        rate: float | None = None,
        readings_per_message: int = 1,
        bad_fraction: float = 0.0,
        bad_kinds: Sequence[str] = BAD_KINDS,
        connections: int = 2,
        protocol: str = "3.1.1",
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        track: bool = True,
        stop: asyncio.Event | None = None,
        ack_timeout: float = 30.0,
        progress: Callable[[Progress], None] | None = None,
        progress_every: float = 5.0,
    ) -> PublishResult:
        """Publish `count` good readings, or for `duration` seconds, at `rate` readings per second (bad ones
        included; as fast as possible without it), and return once the broker acknowledged every message.

        `connections` MQTT connections share the devices; at most `max_in_flight` messages are unacknowledged
        at a time. `track=False` skips `expected` (for long benchmark runs). Setting `stop` ends early.
        `progress` is called at most every `progress_every` seconds while messages go out.
        Raises `SimulatorError` when the broker cannot be reached, refuses a message or stops acknowledging.
        """
        if count is None and duration is None:
            raise ValueError("give count, duration or both")
        if duration is not None and duration <= 0:
            raise ValueError("duration must be positive")
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        if connections < 1 or max_in_flight < 1:
            raise ValueError("connections and max_in_flight must be at least 1")
        if protocol not in ("5", "3.1.1"):
            raise ValueError("protocol must be '5' or '3.1.1'")
        if progress_every < 0:
            raise ValueError("progress_every must not be negative")
        if self._start_ms is None:
            self._start_ms = self._automatic_start(_planned_readings(count, duration, rate))
        messages = self.messages(
            count=count,
            readings_per_message=readings_per_message,
            bad_fraction=bad_fraction,
            bad_kinds=bad_kinds,
        )
        endpoint = url if isinstance(url, MqttEndpoint) else parse_mqtt_url(url)
        loop = asyncio.get_running_loop()
        window = _Window(max_in_flight)
        links = [_Connection(endpoint, protocol, window, loop) for _ in range(min(connections, len(self.devices)))]
        link_of_device = {
            (tenant, device): index % len(links) for index, (tenant, device, _) in enumerate(self.devices)
        }
        result = PublishResult()
        try:
            await asyncio.gather(*(link.connect() for link in links))
            started = loop.time()
            deadline = None if duration is None else started + duration
            burst = None if rate is None else max(1.0, rate * 0.02)
            sent = 0
            next_report = started + progress_every
            for message in messages:
                now = loop.time()
                if (stop is not None and stop.is_set()) or (deadline is not None and now >= deadline):
                    break
                if rate is not None and burst is not None:
                    # Never ahead of the rate by more than a short burst, so pacing is smooth yet cheap.
                    excess = sent + message.size - rate * (loop.time() - started) - burst
                    if excess > 0:
                        await asyncio.sleep(excess / rate)
                await window.wait_for_room()
                stream = message.stream
                link = links[link_of_device.get((stream.tenant, stream.device), 0)]
                link.publish(message.stream.topic, message.payload)
                sent += message.size
                result.messages += 1
                _record(result, message, track=track)
                if result.messages % 64 == 0:
                    # Give paho's socket callbacks a turn: they write the queue and read the acknowledgements.
                    await asyncio.sleep(0)
                if progress is not None and now >= next_report:
                    progress(Progress(result.messages, sent, window.acknowledged_total, now - started))
                    next_report = now + progress_every
            await window.drained(ack_timeout, lambda: _raise_link_errors(links))
            result.elapsed = loop.time() - started
            refused = sum(link.refused for link in links)
            if refused:
                raise SimulatorError(f"the broker refused {refused} messages (not authorised?)")
        finally:
            await asyncio.gather(*(link.close() for link in links), return_exceptions=True)
        return result

    def _automatic_start(self, planned: int | None) -> int:
        now_ms = _to_ms(datetime.now(UTC))
        if planned is None:
            return now_ms - _DAY_MS
        per_stream = math.ceil(planned / len(self._states))
        return now_ms - per_stream * self._interval_ms

    def _good_message(self, state: _StreamState, size: int, *, as_list: bool) -> OutgoingMessage:
        assert self._start_ms is not None
        profile = state.profile
        rng = self._rng
        readings: list[tuple[datetime, float]] = []
        documents: list[dict[str, Any]] = []
        encoding = self._encoding(state)
        for _ in range(size):
            ts_ms = self._start_ms + state.next_index * self._interval_ms
            state.next_index += 1
            state.walk = state.walk * 0.995 + rng.gauss(0.0, profile.drift)
            day = (ts_ms % _DAY_MS) / _DAY_MS
            value = (
                profile.base
                + state.bias
                + profile.daily * math.sin(2 * math.pi * (day - 0.375 + state.phase))
                + state.walk
                + rng.gauss(0.0, profile.noise)
            )
            value = round(min(profile.high, max(profile.low, value)), profile.decimals)
            ts = _from_ms(ts_ms)
            readings.append((ts, value))
            documents.append({"value": value, "unit": profile.unit, "timestamp": _encode_ts(ts, ts_ms, encoding)})
        payload = orjson.dumps(documents if as_list else documents[0], option=orjson.OPT_UTC_Z)
        return OutgoingMessage(state.stream, payload, tuple(readings))

    def _bad_message(self, state: _StreamState, kind: str) -> OutgoingMessage:
        assert self._start_ms is not None
        self._bad_sequence += 1
        profile = state.profile
        stream = state.stream
        ts = _from_ms(self._start_ms)
        reading: dict[str, Any] = {"value": profile.base, "unit": profile.unit, "timestamp": ts}
        if kind == "malformed_json":
            payload = orjson.dumps(reading, option=orjson.OPT_UTC_Z)[:-7]
        elif kind == "non_numeric_value":
            reading["value"] = self._bad_rng.choice(_NON_NUMERIC_VALUES)
            payload = orjson.dumps(reading, option=orjson.OPT_UTC_Z)
        elif kind == "future_timestamp":
            reading["timestamp"] = FAR_FUTURE + self._bad_sequence * timedelta(seconds=1)
            payload = orjson.dumps(reading, option=orjson.OPT_UTC_Z)
        else:
            stream = Stream(
                self.unknown_tenant,
                stream.device,
                stream.sensor,
                f"tenants/{self.unknown_tenant}/devices/{stream.device}/sensors/{stream.sensor}",
            )
            payload = orjson.dumps(reading, option=orjson.OPT_UTC_Z)
        return OutgoingMessage(stream, payload, (), bad_kind=kind)

    def _encoding(self, state: _StreamState) -> TimestampFormat:
        if self.timestamp_format != "mixed":
            return self.timestamp_format
        return ("iso", "epoch_ms", "epoch_s")[state.position % 3]


def _planned_readings(count: int | None, duration: float | None, rate: float | None) -> int | None:
    """Readings a `publish` call plans to send, when that is known beforehand."""
    if count is not None:
        return count
    if rate is not None and duration is not None:
        return math.ceil(rate * duration)
    return None


def _record(result: PublishResult, message: OutgoingMessage, *, track: bool) -> None:
    if message.bad_kind is not None:
        result.bad[message.bad_kind] += 1
        return
    result.readings += len(message.readings)
    stream = message.stream
    if track:
        tenant, device, sensor = stream.tenant, stream.device, stream.sensor
        result.expected.update((tenant, device, sensor, ts) for ts, _ in message.readings)
    result.latest[stream.key] = message.readings[-1]


def _encode_ts(ts: datetime, ts_ms: int, encoding: TimestampFormat) -> datetime | int | float:
    if encoding == "epoch_ms":
        return ts_ms
    if encoding == "epoch_s":
        return ts_ms // 1000 if ts_ms % 1000 == 0 else ts_ms / 1000
    return ts


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MILLISECOND


def _from_ms(ms: int) -> datetime:
    return _EPOCH + _MILLISECOND * ms


class _Window:
    """Messages sent and not yet acknowledged, across connections; publishing waits while it is full."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.outstanding = 0
        self.acknowledged_total = 0
        self._room = asyncio.Event()

    def sent(self) -> None:
        self.outstanding += 1

    def acknowledged(self) -> None:
        self.outstanding -= 1
        self.acknowledged_total += 1
        if self.outstanding <= self.size // 2 or self.outstanding == 0:
            self._room.set()

    async def wait_for_room(self) -> None:
        while self.outstanding >= self.size:
            self._room.clear()
            await self._room.wait()

    async def drained(self, within: float, check: Callable[[], None]) -> None:
        deadline = time.monotonic() + within
        while self.outstanding:
            check()
            if time.monotonic() >= deadline:
                raise SimulatorError(f"{self.outstanding} messages were not acknowledged within {within} s")
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), 0.05)


class _Connection:
    """One paho client whose socket is served by the running asyncio loop (no network thread)."""

    def __init__(self, endpoint: MqttEndpoint, protocol: str, window: _Window, loop: asyncio.AbstractEventLoop) -> None:
        self.endpoint = endpoint
        self.window = window
        self.refused = 0
        self.error: str | None = None
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._mqtt5 = protocol == "5"
        self._connected: asyncio.Future[None] = loop.create_future()
        self._closed = asyncio.Event()
        self._closing = False
        self._housekeeping: asyncio.Task[None] | None = None
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"devsim-{uuid.uuid4().hex[:16]}",
            protocol=paho.MQTTv5 if self._mqtt5 else paho.MQTTv311,
        )
        # 0 = no limit in paho: the shared window bounds what is in flight, and a paho limit would make it
        # rescan every queued message on each acknowledgement.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        if endpoint.username is not None:
            client.username_pw_set(endpoint.username, endpoint.password)
        if endpoint.tls:
            client.tls_set_context(ssl.create_default_context())
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self._client = client

    async def connect(self) -> None:
        try:
            # The TCP (and TLS) handshake blocks, so it runs in a thread; the socket callbacks hop back.
            await self._loop.run_in_executor(
                None, lambda: self._client.connect(self.endpoint.host, self.endpoint.port, keepalive=30)
            )
        except OSError as exc:
            raise SimulatorError(
                f"cannot reach the broker at {self.endpoint.host}:{self.endpoint.port}: {exc}"
            ) from exc
        try:
            await asyncio.wait_for(asyncio.shield(self._connected), CONNECT_TIMEOUT)
        except TimeoutError as exc:
            raise SimulatorError("the broker did not answer CONNECT") from exc
        self._housekeeping = asyncio.create_task(self._keepalive())

    def publish(self, topic: str, payload: bytes) -> None:
        if self.error is not None:
            raise SimulatorError(self.error)
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise SimulatorError(f"publish failed: {paho.error_string(info.rc)}")
        self.window.sent()

    async def close(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self._connected.done() and not self._closed.is_set():
            self._closing = True
            self._client.disconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), 5.0)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._client.loop_misc()

    def _in_loop(self, callback: Callable[..., Any], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            callback(*args)
        else:
            self._loop.call_soon_threadsafe(callback, *args)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._loop.add_reader, sock, client.loop_read)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._loop.remove_reader, sock)
        self._in_loop(self._loop.remove_writer, sock)

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._loop.add_writer, sock, client.loop_write)

    def _on_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._loop.remove_writer, sock)

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any = None
    ) -> None:
        if self._connected.done():
            return
        if reason.is_failure:
            self._connected.set_exception(SimulatorError(f"the broker refused the connection: {reason}"))
        else:
            self._connected.set_result(None)

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any = None
    ) -> None:
        if not self._closing:
            self.error = f"the broker closed the connection: {reason}"
        self._closed.set()

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any) -> None:
        if reason.is_failure:
            self.refused += 1
        self.window.acknowledged()


def _raise_link_errors(links: Sequence[_Connection]) -> None:
    for link in links:
        if link.error is not None:
            raise SimulatorError(link.error)


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Simulated HVAC devices publishing telemetry (see the module docstring)."
    )
    parser.add_argument("--url", default=os.environ.get("MIRANTE_MQTT_URL", "mqtt://127.0.0.1:1883"))
    parser.add_argument("--protocol", default="3.1.1", choices=("5", "3.1.1"), help="MQTT version (default 3.1.1)")
    parser.add_argument("--tenants", default="demo", help="comma-separated tenant slugs (default demo)")
    parser.add_argument("--devices", type=int, default=10, help="number of devices over all tenants (default 10)")
    parser.add_argument("--sensors", help=f"comma-separated sensors for every device, among {sorted(SENSOR_PROFILES)}")
    parser.add_argument("--rate", type=float, help="readings per second (default: as fast as possible)")
    parser.add_argument("--duration", type=float, help="seconds to publish for")
    parser.add_argument("--count", type=int, help="good readings to publish")
    parser.add_argument("--readings-per-message", type=int, default=1, help="readings per message (a JSON list if > 1)")
    parser.add_argument("--bad-fraction", type=float, default=0.0, help="share of extra bad messages, 0 to <1")
    parser.add_argument("--bad-kinds", default=",".join(BAD_KINDS), help="comma-separated kinds of bad messages")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between readings of a sensor (default 1)")
    parser.add_argument("--start", help="ISO 8601 time of the first readings (default: the last ones are about now)")
    parser.add_argument("--timestamp-format", default="iso", choices=TIMESTAMP_FORMATS)
    parser.add_argument("--device-prefix", default="")
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT)
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument(
        "--progress-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines on stderr (default 5)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print only the summary: no plan and no progress lines on stderr"
    )
    args = parser.parse_args(argv)
    if args.progress_every < 0:
        parser.error("--progress-every must not be negative")
    if args.count is None and args.duration is None:
        parser.error("give --count, --duration or both")
    try:
        start = None if args.start is None else datetime.fromisoformat(args.start)
        if start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        fleet = DeviceFleet(
            _csv(args.tenants),
            args.devices,
            sensors=_csv(args.sensors) if args.sensors else None,
            seed=args.seed,
            start=start,
            interval=timedelta(milliseconds=round(args.interval * 1000)),
            timestamp_format=args.timestamp_format,
            device_prefix=args.device_prefix,
        )
    except ValueError as exc:
        parser.error(str(exc))
    first_ts, last_ts = fleet.timestamp_range(
        count=args.count, duration=args.duration, rate=args.rate, readings_per_message=args.readings_per_message
    )
    if not args.quiet:
        print(_plan_text(fleet, args.url, first_ts, last_ts, backdated=start is None), file=sys.stderr, flush=True)

    def report(progress: Progress) -> None:
        print(
            f"sent {_plural(progress.readings, 'reading')} in {_plural(progress.messages, 'message')}, "
            f"{progress.acknowledged:,} acknowledged, {progress.readings_per_second:,.0f} readings/s "
            f"after {progress.elapsed:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    async def run() -> PublishResult:
        stop = asyncio.Event()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        return await fleet.publish(
            args.url,
            count=args.count,
            duration=args.duration,
            rate=args.rate,
            readings_per_message=args.readings_per_message,
            bad_fraction=args.bad_fraction,
            bad_kinds=_csv(args.bad_kinds),
            connections=args.connections,
            protocol=args.protocol,
            max_in_flight=args.max_in_flight,
            track=False,
            stop=stop,
            progress=None if args.quiet else report,
            progress_every=args.progress_every,
        )

    try:
        result = asyncio.run(run())
    except ValueError as exc:
        parser.error(str(exc))
    except SimulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    newest = max((ts for ts, _value in result.latest.values()), default=None)
    summary = {
        "tenants": fleet.tenants,
        "devices": len(fleet.devices),
        "streams": len(fleet.streams),
        "messages": result.messages,
        "readings": result.readings,
        "bad": dict(result.bad),
        "elapsed_seconds": round(result.elapsed, 3),
        "readings_per_second": round(result.readings_per_second, 1),
        "start": None if fleet.start is None else fleet.start.isoformat(),
        "first_ts": None if newest is None else _iso(first_ts),
        "last_ts": None if newest is None else _iso(newest),
    }
    if args.json:
        print(orjson.dumps(summary).decode())
    else:
        bad = sum(result.bad.values())
        stamped = "" if newest is None else f", timestamped {_iso(first_ts)} to {_iso(newest)}"
        print(
            f"{_devices_text(fleet)} published {_plural(result.readings, 'reading')} and "
            f"{_plural(bad, 'bad one')} in {_plural(result.messages, 'message')} over {result.elapsed:.1f} s: "
            f"{result.readings_per_second:,.0f} readings/s{stamped}"
        )
    return 0


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _devices_text(fleet: DeviceFleet) -> str:
    return (
        f"{_plural(len(fleet.devices), 'device')} ({_plural(len(fleet.streams), 'sensor')}) in "
        f"{_plural(len(fleet.tenants), 'tenant')} ({', '.join(fleet.tenants)})"
    )


def _plan_text(fleet: DeviceFleet, url: str, first: datetime, last: datetime | None, *, backdated: bool) -> str:
    """What a run is about to do, and above all which timestamps its readings carry."""
    interval = fleet.interval.total_seconds()
    until = f"to {_iso(last)}" if last is not None else "onwards, for as long as it runs"
    lines = [
        f"publishing to {redact(url)} as {_devices_text(fleet)}",
        f"readings timestamped {_iso(first)} {until}, {interval:g} s apart on each sensor",
    ]
    if backdated:
        lines.append(
            "  (backdated, so that the last readings are about now: give --start to choose the first timestamp)"
        )
    now = datetime.now(UTC)
    if (last or first) < now - timedelta(hours=24) or first > now:
        lines.append("  note: outside the last 24 hours, the range the ops pages and the queries show by default")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

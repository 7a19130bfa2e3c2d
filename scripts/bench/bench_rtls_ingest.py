"""rtls-cambus end to end over MQTT: beacon readings published by the gateway simulator until every one is
committed together with the position it moved, against a subscriber that only counts on the same broker; then the
latency from publishing a reading to the position it makes being visible in the API and on the live feed, while
the simulator publishes 5,000 readings/s.

- Ceiling: a subscriber that only counts, in a child process: `SubscriberRunner` with the service's batch size,
  batch interval and Receive Maximum, QoS 1, MQTT 5, a plain subscription to `rtls/gateways/+/+`, acknowledging
  after its handler, draining the same messages.
- The service: `rtls_cambus.main:create_app` under uvicorn in a child process with its production defaults (the
  outbox relay, the webhook dispatcher and the incident rules running too) but for a run-specific client id.
  Readings count once the transaction that stored them and moved their tags' positions has committed (the
  service's `rtls_ingest_readings_stored_total`, checked against `count(*)` of `gateway_readings` afterwards).
- Traffic: `scripts/simulators/gateways.py` (people walking between rooms, one gateway per room hearing its own
  room and the next ones, RSSI noise), every gateway placed and every tag carried, cut into messages of 1 and of
  20 readings, published over 2 connections as fast as the benchmark's own Mosquitto acknowledges.
- Latency: probe tags, each carried by someone and never heard before, are published once each by a probe
  gateway on a floor of their own (the first reading places a tag at once), at 2 per second among the load; the
  clock runs from just before the publish to the first `GET /people/{id}/current-location` of the probe's person
  (asked every 50 ms while the probe is outstanding, the two oldest at a time) that answers the probe gateway,
  and to the tag's `rtls.position.changed` on the live feed (SSE, opened with a ticket). A bare MQTT subscriber on
  the probe topic gives the broker's own share. Probes start after a warm-up under the load (see `_warm_up`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import httpx
import orjson
from bench_http import percentile
from bench_rtls_common import (
    API,
    Building,
    RtlsProcess,
    Site,
    mac,
    make_site,
    publish,
    readings_in,
    rtls_stack,
    traffic,
)
from bench_telemetry_common import (
    BenchStack,
    CountingSubscriber,
    CpuMeter,
    describe_cpu,
    wait_for_count,
)
from report import Report, load_note, rate

from mirante.devstack import StackUrls
from mirante.mqtt import Publisher, discard_session, parse_mqtt_url
from rtls_cambus.config import Settings
from rtls_cambus.ingest.topics import GATEWAYS_FILTER

ROOMS = 20
PEOPLE = 400
RUNS = ((1, 40_000), (20, 300_000))
"""(readings per message, readings published) of each throughput run."""
QUICK_RUNS = ((1, 4_000), (20, 40_000))
LOAD_RATE = 5_000
"""Readings per second published during the latency phase."""
LOAD_PER_MESSAGE = 20
LATENCY_SECONDS = 60.0
QUICK_LATENCY_SECONDS = 10.0
PROBES_PER_SECOND = 2.0
API_POLL_SECONDS = 0.05
API_POLL_AT_ONCE = 2
PROBE_TIMEOUT_SECONDS = 30.0
WARMUP_SECONDS = 10.0
WARMUP_MAX_SECONDS = 60.0
PACE_SECONDS = 0.02


def quick() -> bool:
    return os.environ.get("BENCH_QUICK") == "1"


def runner_options() -> dict[str, Any]:
    """The MQTT settings of the service's worker by default: the counting subscriber uses the same."""
    defaults = Settings.model_fields
    return {
        "batch_size": defaults["ingest_batch_size"].default,
        "batch_interval": defaults["ingest_batch_interval_seconds"].default,
        "receive_maximum": defaults["mqtt_receive_maximum"].default,
    }


@dataclass
class Run:
    readings: int
    messages: int
    seconds: float
    publish_seconds: float
    cpu: dict[str, float]

    @property
    def per_second(self) -> float:
        return self.readings / self.seconds

    def row(self) -> str:
        return f"{rate(self.readings, self.seconds)}; {self.messages / self.seconds:,.0f} messages/s"

    @property
    def cpu_per_thousand_ms(self) -> float:
        """CPU the consumer process used per 1,000 readings, in ms: what other work on the machine moves least."""
        return self.cpu.get("consumer", 0.0) * self.seconds / self.readings * 1e6


def _groups(stack: BenchStack, consumers: list[int], backends: list[int] | None = None) -> dict[str, list[int]]:
    groups = {
        "consumer": consumers,
        "broker": [stack.broker_pid] if stack.broker_pid else [],
        "publisher": [os.getpid()],
    }
    if backends is not None:
        groups["postgres backends"] = backends
    return groups


async def _counting(stack: BenchStack, messages: list[tuple[str, bytes]]) -> Run:
    subscriber = CountingSubscriber(
        stack.mqtt_url,
        f"bench-rtls-count-{uuid.uuid4().hex[:8]}",
        topic=GATEWAYS_FILTER,
        group=None,
        options=runner_options(),
    )
    try:
        await subscriber.start()
        meter = CpuMeter(_groups(stack, [subscriber.pid]))
        meter.start()
        started = time.perf_counter()
        published = await publish(stack.mqtt_url, messages)

        async def counted() -> int:
            return subscriber.count

        finished = await wait_for_count(counted, len(messages), "counting subscriber")
        cpu = meter.stop()
    finally:
        await subscriber.stop()
        await discard_session(stack.mqtt_url, subscriber.client_id)
    return Run(readings_in(messages), len(messages), finished - started, published, cpu)


async def _stored_rows(stack: BenchStack) -> int:
    connection = await stack.connect()
    try:
        return int(await connection.fetchval("SELECT count(*) FROM rtls_cambus.gateway_readings"))
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def _service(stack: BenchStack, site: Site) -> AsyncIterator[RtlsProcess]:
    """The service started, subscribed, and warmed up: a first message went through the whole pipeline."""
    service = RtlsProcess(stack, f"bench-rtls-{uuid.uuid4().hex[:8]}")
    try:
        await service.wait_ready()
        async with httpx.AsyncClient(timeout=10) as client:
            before = await service.readings_stored(client)
            # A tag nobody registered: stored, looked up, and it moves no one.
            warm = orjson.dumps({"readings": [{"tag_mac": mac(0x0E, uuid.uuid4().int % 2**40), "rssi": -90}]})
            async with Publisher(stack.mqtt_url) as publisher:
                await publisher.publish(f"rtls/gateways/{site.building.gateways[0]}/beacon", warm)
            deadline = time.monotonic() + 30
            while await service.readings_stored(client) <= before:
                if time.monotonic() > deadline:
                    raise RuntimeError("the warm-up message never reached the database")
                await asyncio.sleep(0.1)
        yield service
    finally:
        service.stop()
        await discard_session(stack.mqtt_url, service.client_id)


async def _through_service(stack: BenchStack, site: Site, messages: list[tuple[str, bytes]]) -> Run:
    readings = readings_in(messages)
    async with _service(stack, site) as service, httpx.AsyncClient(timeout=10) as client:
        rows_before = await _stored_rows(stack)
        base = await service.readings_stored(client)
        meter = CpuMeter(_groups(stack, [service.pid], await stack.backend_pids()))
        meter.start()
        started = time.perf_counter()
        published = await publish(stack.mqtt_url, messages)

        async def stored() -> int:
            return await service.readings_stored(client) - base

        finished = await wait_for_count(stored, readings, "rtls-cambus")
        cpu = meter.stop()
    rows = await _stored_rows(stack) - rows_before
    if rows != readings:
        raise RuntimeError(f"{rows:,} readings rows stored for {readings:,} published")
    return Run(readings, len(messages), finished - started, published, cpu)


@dataclass
class Probes:
    """Publish times of the probes and when each was first seen by the bare subscriber, the API and the feed."""

    published: dict[str, float] = field(default_factory=dict)
    tag_ids: dict[int, str] = field(default_factory=dict)
    bare: dict[str, float] = field(default_factory=dict)
    api: dict[str, float] = field(default_factory=dict)
    feed: dict[str, float] = field(default_factory=dict)

    def latencies_ms(self, seen: dict[str, float]) -> list[float]:
        return [(seen[tag] - at) * 1000 for tag, at in self.published.items() if tag in seen]


async def _bare_subscriber(url: str, site: Site, probes: Probes, ready: asyncio.Event) -> None:
    endpoint = parse_mqtt_url(url)
    async with aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        identifier=f"bench-rtls-bare-{uuid.uuid4().hex[:8]}",
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        await client.subscribe(f"rtls/gateways/{site.probe_gateway}/beacon", qos=1)
        ready.set()
        async for message in client.messages:
            now = time.perf_counter()
            payload = message.payload if isinstance(message.payload, bytes) else b""
            for reading in orjson.loads(payload)["readings"]:
                probes.bare.setdefault(reading["tag_mac"], now)


async def _api_poller(service: RtlsProcess, token: str, site: Site, probes: Probes, stop: asyncio.Event) -> int:
    """Ask `GET /people/{id}/current-location` of the oldest probes published and not yet seen there (at most
    `API_POLL_AT_ONCE`), every `API_POLL_SECONDS`, until it answers the probe gateway; how many requests that
    took. Only outstanding probes are asked, so the polling costs the service little beside the load, and a
    service that falls behind is not asked more and more often."""
    headers = {"Authorization": f"Bearer {token}"}
    polls = 0
    async with httpx.AsyncClient(base_url=service.base_url, headers=headers, timeout=10) as client:

        async def ask(tag: str) -> None:
            answer = await client.get(f"{API}/people/{site.probe_people[tag]}/current-location")
            now = time.perf_counter()
            answer.raise_for_status()
            place = answer.json()["position"]
            if place is not None and place["gateway_id"] == site.probe_gateway_id:
                probes.api.setdefault(tag, now)

        while not stop.is_set():
            waiting = [tag for tag in probes.published if tag not in probes.api][:API_POLL_AT_ONCE]
            await asyncio.gather(*(ask(tag) for tag in waiting))
            polls += len(waiting)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), API_POLL_SECONDS)
    return polls


async def _feed_reader(service: RtlsProcess, token: str, site: Site, probes: Probes, ready: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=service.base_url, timeout=httpx.Timeout(10, read=60)) as client:
        ticket = await client.post(f"{API}/positions/feed-tickets", headers=headers)
        ticket.raise_for_status()
        async with client.stream("GET", ticket.json()["url"]) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith(": connected"):
                    ready.set()
                if not line.startswith("data: "):
                    continue
                now = time.perf_counter()
                event = orjson.loads(line[len("data: ") :])
                data = event["data"]
                tag = probes.tag_ids.get(data.get("tag_id")) if event["type"] == "rtls.position.changed" else None
                if tag is not None and data["gateway_id"] == site.probe_gateway_id:
                    probes.feed.setdefault(tag, now)


@dataclass
class Load:
    """The load publisher's progress, and when to stop it."""

    readings: int = 0
    started: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def _load(url: str, building: Building, first_tick: int, load: Load) -> None:
    """Publish the simulator's traffic at `LOAD_RATE` readings/s until `load.done` is set."""
    most = LOAD_RATE * (WARMUP_MAX_SECONDS + LATENCY_SECONDS + PROBE_TIMEOUT_SECONDS)
    messages, _ = traffic(building, int(most), LOAD_PER_MESSAGE, first_tick)
    per_message = readings_in(messages) / len(messages)
    load.started = time.perf_counter()
    sent = 0
    async with Publisher(url, max_in_flight=500) as publisher:
        while sent < len(messages) and not load.done.is_set():
            due = min(len(messages), int((time.perf_counter() - load.started) * LOAD_RATE / per_message) + 1)
            if due > sent:
                await publisher.publish_many(messages[sent:due])
                load.readings += readings_in(messages[sent:due])
                sent = due
            await asyncio.sleep(PACE_SECONDS)


async def _warm_up(service: RtlsProcess, client: httpx.AsyncClient, base: int, load: Load) -> float:
    """Load for `WARMUP_SECONDS`, then until the service has stored all it was sent (at most `WARMUP_MAX_SECONDS`):
    tags first heard, or gone stale since the last run, move all at once at the start, a burst that is not the
    steady state measured. The seconds it took."""
    started = time.perf_counter()
    await asyncio.sleep(WARMUP_SECONDS)
    while time.perf_counter() - started < WARMUP_MAX_SECONDS:
        if await service.readings_stored(client) - base >= load.readings:
            break
        await asyncio.sleep(0.2)
    return time.perf_counter() - started


async def _send_probes(url: str, site: Site, probes: Probes, seconds: float) -> None:
    topic = f"rtls/gateways/{site.probe_gateway}/beacon"
    tags = iter(sorted(site.probe_tags))
    started = time.perf_counter()
    async with Publisher(url) as publisher:
        for number in range(int(seconds * PROBES_PER_SECOND)):
            await asyncio.sleep(max(0.0, started + number / PROBES_PER_SECOND - time.perf_counter()))
            tag = next(tags)
            probes.tag_ids[site.probe_tags[tag]] = tag
            payload = orjson.dumps({"readings": [{"tag_mac": tag, "rssi": -50}]})
            probes.published[tag] = time.perf_counter()
            await publisher.publish(topic, payload)


async def _all_seen(probes: Probes) -> None:
    """Until every probe was seen by all three, or `PROBE_TIMEOUT_SECONDS` (the caller says which were not)."""
    deadline = time.monotonic() + PROBE_TIMEOUT_SECONDS
    for _ in range(int(PROBE_TIMEOUT_SECONDS * 10)):
        if len(probes.api) == len(probes.feed) == len(probes.bare) == len(probes.published):
            return
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.1)


@dataclass
class Latency:
    load_readings: int
    load_seconds: float
    warm_up_seconds: float
    probes: Probes
    polls: int
    caught_up_seconds: float
    cpu: dict[str, float]


async def _latency(stack: BenchStack, site: Site, seconds: float, first_tick: int) -> Latency:
    probes = Probes()
    async with _service(stack, site) as service:
        token = await service.token(site.username)
        bare_ready, feed_ready, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        bare = asyncio.create_task(_bare_subscriber(stack.mqtt_url, site, probes, bare_ready))
        feed = asyncio.create_task(_feed_reader(service, token, site, probes, feed_ready))
        poller = asyncio.create_task(_api_poller(service, token, site, probes, stop))
        try:
            await asyncio.wait_for(asyncio.gather(bare_ready.wait(), feed_ready.wait()), 30)
            async with httpx.AsyncClient(timeout=10) as client:
                base = await service.readings_stored(client)
                load = Load()
                loading = asyncio.create_task(_load(stack.mqtt_url, site.building, first_tick, load))
                warm_up = await _warm_up(service, client, base, load)
                meter = CpuMeter(_groups(stack, [service.pid], await stack.backend_pids()))
                meter.start()
                await _send_probes(stack.mqtt_url, site, probes, seconds)
                load.done.set()
                await loading
                cpu = meter.stop()
                load_done = time.perf_counter()
                load_readings, load_seconds = load.readings, load_done - load.started
                expected = load_readings + len(probes.published)

                async def stored() -> int:
                    return await service.readings_stored(client) - base

                caught_up = await wait_for_count(stored, expected, "rtls-cambus under load") - load_done
            await _all_seen(probes)
        finally:
            stop.set()
            polls = await poller
            for task in (bare, feed):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    for name, seen in (("bare subscriber", probes.bare), ("API", probes.api), ("feed", probes.feed)):
        if len(seen) != len(probes.published):
            raise RuntimeError(f"{name}: {len(seen)} of {len(probes.published)} probes seen")
    return Latency(load_readings, load_seconds, warm_up, probes, polls, caught_up, cpu)


def _p(values: list[float]) -> str:
    return f"{percentile(values, 0.5):.1f} ms / {percentile(values, 0.99):.1f} ms"


async def run(urls: StackUrls) -> Report:
    load_at_start = os.getloadavg()[0]
    runs = QUICK_RUNS if quick() else RUNS
    seconds = QUICK_LATENCY_SECONDS if quick() else LATENCY_SECONDS
    rows: list[tuple[str, str]] = []
    notes: list[str] = []
    ratios: list[float] = []
    async with rtls_stack(urls) as stack:
        building = Building(rooms=ROOMS, people=PEOPLE, dwell=20, seed=uuid.uuid4().int % 100_000)
        site = await make_site(stack, building, probes=int(seconds * PROBES_PER_SECOND) + 1)
        tick = 0
        for per_message, readings in runs:
            messages, tick = traffic(building, readings, per_message, tick)
            counting = await _counting(stack, messages)
            service = await _through_service(stack, site, messages)
            ratios.append(service.per_second / counting.per_second)
            rows.append((f"baseline: counting subscriber, {per_message} reading(s)/message", counting.row()))
            rows.append((f"**rtls-cambus, {per_message} reading(s)/message, into positions**", service.row()))
            rows.append((f"ratio, {per_message} reading(s)/message", f"{ratios[-1]:.2f}"))
            rows.append(
                (
                    f"consumer CPU per 1,000 readings, {per_message} reading(s)/message: counting / rtls-cambus",
                    f"{counting.cpu_per_thousand_ms:.0f} ms / {service.cpu_per_thousand_ms:.0f} ms",
                )
            )
            notes.append(
                f"CPU in cores (2 = both cores busy), {per_message} reading(s)/message — counting: "
                f"{describe_cpu(counting.cpu)}; rtls-cambus: {describe_cpu(service.cpu)}. The simulator finished "
                f"publishing after {counting.publish_seconds:.1f} s / {service.publish_seconds:.1f} s."
            )
        # People stay about 30 s in a room at this rate, as they would rather than every second.
        building.dwell = max(1, int(30 * LOAD_RATE / (PEOPLE * 2.9)))
        latency = await _latency(stack, site, seconds, tick)
    probes = latency.probes
    api, feed, bare = (probes.latencies_ms(seen) for seen in (probes.api, probes.feed, probes.bare))
    rows += [
        (
            "latency phase: load published (messages of 20 readings), warm-up included",
            f"{rate(latency.load_readings, latency.load_seconds)}; warm-up {latency.warm_up_seconds:.1f} s; caught "
            f"up {latency.caught_up_seconds:.2f} s after the last publish",
        ),
        (f"baseline: publish → bare MQTT subscriber ({len(bare)} probes): p50 / p99", _p(bare)),
        (f"**publish → position in `GET /people/{{id}}/current-location` ({len(api)} probes): p50 / p99**", _p(api)),
        (f"**publish → `rtls.position.changed` on the live feed ({len(feed)} probes): p50 / p99**", _p(feed)),
    ]
    worst_p99 = max(percentile(api, 0.99), percentile(feed, 0.99))
    return Report(
        name="rtls_ingest",
        title="rtls-cambus: beacon readings over MQTT into positions",
        rows=rows,
        ratio=min(ratios),
        ratio_meaning="rtls-cambus readings/s ÷ counting subscriber readings/s, the lower of 1 and 20 per message",
        target=f"≥ 0.6; p99 publish → API and feed < 500 ms at {LOAD_RATE:,} readings/s (measured {worst_p99:.0f} ms)",
        notes=[
            f"The simulator's building: {ROOMS} rooms in a row with a placed gateway each (hearing its room at about "
            f"-55 dBm and the next rooms at about -75 dBm, 3 dB of noise), {PEOPLE} people walking with a tag each; "
            "every tag registered and carried, so each reading goes through the position engine. QoS 1; the "
            "benchmark's own Mosquitto on 127.0.0.1; publisher, broker, service and PostgreSQL share the cores. The "
            "readings rows stored were counted after each run: as many as published.",
            *notes,
            f"Latency phase: {seconds:.0f} s of probes at {LOAD_RATE:,} readings/s, people changing rooms about "
            f"every 30 s, after a warm-up of at least {WARMUP_SECONDS:.0f} s that ends once the service has stored "
            "all it was sent (the tags stale since the last run all move at once at first); "
            f"{len(probes.published)} probes at {PROBES_PER_SECOND:g}/s; the API asked {latency.polls:,} times. CPU "
            f"in cores: {describe_cpu(latency.cpu)}.",
            load_note(load_at_start),
        ],
    )

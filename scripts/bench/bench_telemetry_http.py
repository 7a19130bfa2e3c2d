"""telemetry-ingest through `POST /ingest` with EMQX rule-engine bodies, against raw COPY of the same rows.

The service runs under uvicorn in a child process (MQTT worker off). An httpx client with keep-alive sends the
simulator's messages as EMQX's HTTP action would batch them (`{"client_id", "topic", "payload", "ts"}`, the
payload as the JSON string the device published), a few requests in flight; bodies are built before the clock
starts. Each answer must account for every reading (`written`), and the tenant's `readings` must hold exactly the
readings sent at the end.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import orjson
from bench_telemetry_common import (
    BenchStack,
    CpuMeter,
    DeviceFleet,
    ServiceProcess,
    bench_stack,
    copy_ceiling,
    describe_cpu,
    rows_of,
)
from report import Report, rate

from mirante.auth.commands import create_api_key
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import StackUrls

DEVICES = 200
READINGS = 200_000
CONFIGURATIONS = ((10, 200), (1, 500))
"""(readings per message, messages per request)."""
IN_FLIGHT = 4
WARMUP_REQUESTS = 5


async def _api_key(stack: BenchStack) -> str:
    engine = create_engine(stack.database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            _key, plaintext = await create_api_key(session, "bench-emqx", ["telemetry:ingest"])
    finally:
        await engine.dispose()
    return plaintext


def _bodies(slug: str, readings: int, per_message: int, per_request: int, seed: int) -> list[bytes]:
    fleet = DeviceFleet([slug], DEVICES, seed=seed)
    items: list[dict[str, Any]] = []
    arrival_ms = int(time.time() * 1000)
    for message in fleet.messages(count=readings, readings_per_message=per_message):
        stream = message.stream
        items.append(
            {"client_id": stream.device, "topic": stream.topic, "payload": message.payload.decode(), "ts": arrival_ms}
        )
    return [orjson.dumps(items[start : start + per_request]) for start in range(0, len(items), per_request)]


async def _send(client: httpx.AsyncClient, headers: dict[str, str], bodies: list[bytes]) -> int:
    """Send every body, IN_FLIGHT at a time; returns the readings written. Fails on any other answer."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    written = 0

    async def worker() -> None:
        nonlocal written
        while not queue.empty():
            body = queue.get_nowait()
            response = await client.post("/ingest", content=body, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"/ingest answered {response.status_code}: {response.text[:300]}")
            receipt = response.json()
            if receipt["unrouted"] or receipt["readings"]["rejected"]:
                raise RuntimeError(f"/ingest refused readings: {response.text[:300]}")
            written += receipt["readings"]["written"]

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return written


async def _measure(
    stack: BenchStack,
    service: ServiceProcess,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    per_message: int,
    per_request: int,
) -> tuple[int, int, float, dict[str, float]]:
    """(readings, requests, seconds, CPU) of sending READINGS readings in a new tenant."""
    slug = await stack.make_tenant("http")
    warmup = _bodies(slug, WARMUP_REQUESTS * per_request, 1, per_request, seed=90)
    # Warm-up readings use their own devices' streams, in the same tenant: counted apart below.
    await _send(client, headers, warmup)
    base = await stack.count_readings(slug)
    bodies = _bodies(slug, READINGS, per_message, per_request, seed=91)
    meter = CpuMeter(
        {
            "service": [service.pid],
            "postgres backends": await stack.backend_pids(),
            "client": [__import__("os").getpid()],
        }
    )
    meter.start()
    started = time.perf_counter()
    written = await _send(client, headers, bodies)
    seconds = time.perf_counter() - started
    cpu = meter.stop()
    stored = await stack.count_readings(slug) - base
    if written != READINGS or stored != READINGS:
        raise RuntimeError(f"sent {READINGS:,} readings: the answers said {written:,} written, {stored:,} stored")
    return READINGS, len(bodies), seconds, cpu


async def run(urls: StackUrls) -> Report:
    rows: list[tuple[str, str]] = []
    notes: list[str] = []
    best = 0.0
    async with bench_stack(urls) as stack:
        copy_rows = rows_of(DeviceFleet([f"rows{uuid.uuid4().hex[:8]}"], DEVICES, seed=4), READINGS)
        copy_seconds = await copy_ceiling(stack, copy_rows)
        copy_rate = len(copy_rows) / copy_seconds
        rows.append(
            ("ceiling: COPY of the same rows into a tenant's partitioned `readings`", rate(READINGS, copy_seconds))
        )
        headers = {"X-API-Key": await _api_key(stack), "Content-Type": "application/json"}
        service = ServiceProcess(stack, mqtt=False, ingest_max_messages_per_request="10000")
        try:
            await service.wait_ready()
            limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
            async with httpx.AsyncClient(base_url=service.base_url, limits=limits, timeout=120) as client:
                for per_message, per_request in CONFIGURATIONS:
                    readings, requests, seconds, cpu = await _measure(
                        stack, service, client, headers, per_message, per_request
                    )
                    best = max(best, readings / seconds)
                    rows.append(
                        (
                            f"**`POST /ingest`, {per_request} messages of {per_message} reading(s) per request**",
                            f"{rate(readings, seconds)}; {requests / seconds:,.1f} requests/s",
                        )
                    )
                    rows.append(
                        (f"ratio to COPY, {per_message} reading(s)/message", f"{readings / seconds / copy_rate:.2f}")
                    )
                    notes.append(f"CPU in cores, {per_request} x {per_message}: {describe_cpu(cpu)}.")
        finally:
            service.stop()
    return Report(
        name="telemetry_http",
        title="telemetry-ingest: `POST /ingest` (EMQX HTTP action) to committed rows",
        rows=rows,
        ratio=best / copy_rate,
        ratio_meaning="best `POST /ingest` readings/s ÷ raw COPY rows/s",
        target="≥ 20,000 readings/s",
        notes=[
            f"{READINGS:,} readings per configuration from {DEVICES} simulated devices in a new tenant; one uvicorn "
            f"process on 127.0.0.1; an httpx client with keep-alive and {IN_FLIGHT} requests in flight; every "
            "answer's `written` and the final `count(*)` equal the readings sent.",
            *notes,
        ],
    )

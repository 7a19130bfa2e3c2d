"""Signed webhook deliveries per second to a local receiver, against plain posts of the same bodies with the same
client.

rtls-cambus runs under uvicorn in a child process (as in production, configured through its environment) with its
webhook consumer reading one bench stream and one subscription to a local receiver. Events published on that
stream take the whole delivery path: the stream consumer (consumer group, inbox) makes a pending delivery per
event, the dispatcher claims due deliveries, signs each with the library's Standard Webhooks signer, posts it with
its own httpx client and logs the attempt in PostgreSQL. The clock stops when the receiver has every delivery and
every one is recorded as delivered.

Baseline: the same bodies posted by the sender's httpx client configuration (`build_client()`), no signature and
no log, as many at a time as the dispatcher sends to one subscription, from a child process on the same event
loop implementation as the service's (uvicorn's choice).

The receiver is a child process too: a bare HTTP/1.1 server on asyncio that counts requests, notes when each event
arrived, and verifies the signature of a sample of what it gets.

Run as a script, this module is that receiver (`receive SECRET`) or that baseline poster
(`post URL CONCURRENCY BODIES_FILE RATE`).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from bench_alerts_common import quick
from bench_http import percentile
from bench_process import cpu_seconds
from bench_rtls_common import RtlsProcess, rtls_stack
from bench_telemetry_common import BenchStack
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from report import Report, load_note, rate

from mirante.bus import Event
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import StackUrls
from mirante.webhooks.signatures import SignatureError, generate_standard_secret, verify_standard
from rtls_cambus.config import Settings
from rtls_cambus.outgoing.dispatcher import CONSUMER_GROUP, build_client, payload_for
from rtls_cambus.outgoing.models import WebhookSubscription
from rtls_cambus.outgoing.sender import USER_AGENT

EVENT_TYPE = "vision.inspection.completed"
HOOK_PATH = "/hook"
VERIFY_EVERY = 25
"""The receiver checks the signature of one request in this many (and of none of the unsigned baseline posts)."""
ROUNDS = 3
LATENCY_RATE = 100
"""Events (or posts) per second of the latency runs, well below what either side sustains."""
HERE = Path(__file__).resolve()
PER_SUBSCRIPTION = int(Settings.model_fields["webhook_max_per_subscription"].default)


# --- the receiver (child process) ---------------------------------------------------------------------------------


@dataclass
class ReceiverState:
    secret: str
    count: int = 0
    duplicates: int = 0
    verified: int = 0
    bad: int = 0
    connections: int = 0
    arrivals: dict[str, float] = field(default_factory=dict)

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        if method == "POST" and path == HOOK_PATH:
            now = time.monotonic()
            self.count += 1
            event_id = orjson.loads(body)["id"]
            if event_id in self.arrivals:
                self.duplicates += 1
            else:
                self.arrivals[event_id] = now
            if self.count % VERIFY_EVERY == 0 and "webhook-signature" in headers:
                try:
                    verify_standard(self.secret, headers, body)
                    self.verified += 1
                except SignatureError:
                    self.bad += 1
            return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
        if method == "GET" and path == "/stats":
            stats = {
                "count": self.count,
                "duplicates": self.duplicates,
                "verified": self.verified,
                "bad": self.bad,
                "connections": self.connections,
            }
            return json_answer(stats)
        if method == "GET" and path == "/arrivals":
            return json_answer(self.arrivals)
        if method == "POST" and path == "/reset":
            self.count = self.duplicates = self.verified = self.bad = self.connections = 0
            self.arrivals = {}
            return json_answer({})
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def json_answer(value: object) -> bytes:
    body = orjson.dumps(value)
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class ReceiverProtocol(asyncio.Protocol):
    """Keep-alive HTTP/1.1: requests with a Content-Length body, answered in order."""

    def __init__(self, state: ReceiverState) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only compatible with them.
        self.transport = transport  # type: ignore[assignment]
        self.state.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            lines = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            method, path, _ = lines[0].split(" ", 2)
            assert self.transport is not None
            self.transport.write(self.state.answer(method, path, headers, body))


async def receive(secret: str) -> None:
    loop = asyncio.get_running_loop()
    state = ReceiverState(secret)
    server = await loop.create_server(lambda: ReceiverProtocol(state), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


# --- the baseline poster (child process) --------------------------------------------------------------------------


async def post_all(url: str, concurrency: int, bodies: list[bytes], per_second: float) -> dict[str, Any]:
    """Post `bodies` with the sender's client, `concurrency` at a time (paced at `per_second` when above 0)."""
    started: list[float] = [0.0] * len(bodies)
    round_trips: list[float] = []
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    timeout = httpx.Timeout(Settings.model_fields["webhook_timeout_seconds"].default)
    next_index = iter(range(len(bodies)))
    async with build_client() as client:
        begin, cpu_at_start = time.monotonic(), time.process_time()

        async def worker() -> None:
            for index in next_index:
                if per_second > 0:
                    await asyncio.sleep(max(0.0, begin + index / per_second - time.monotonic()))
                started[index] = time.monotonic()
                answer = await client.post(url, content=bodies[index], headers=headers, timeout=timeout)
                answer.raise_for_status()
                round_trips.append(time.monotonic() - started[index])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds, cpu = time.monotonic() - begin, time.process_time() - cpu_at_start
    return {"seconds": seconds, "cpu": cpu, "started": started, "round_trips": round_trips}


def run_loop_like_uvicorn(coroutine: Any) -> Any:
    """Run on uvloop when it is installed, as uvicorn's default loop setting does for the service."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def script(arguments: list[str]) -> int:
    if arguments[:1] == ["receive"]:
        run_loop_like_uvicorn(receive(arguments[1]))
        return 0
    if arguments[:1] == ["post"]:
        url, concurrency, bodies_file, per_second = arguments[1:5]
        bodies = [orjson.dumps(json.loads(line)) for line in Path(bodies_file).read_text().splitlines()]
        result = run_loop_like_uvicorn(post_all(url, int(concurrency), bodies, float(per_second)))
        print(json.dumps(result), flush=True)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


# --- the benchmark --------------------------------------------------------------------------------------------------


class Receiver:
    def __init__(self, secret: str) -> None:
        # Started once and left running for the whole benchmark: no need for an asyncio subprocess.
        self.process = subprocess.Popen(
            [sys.executable, str(HERE), "receive", secret], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base_url}{HOOK_PATH}"
        self.control = httpx.AsyncClient(base_url=self.base_url, timeout=30)

    async def stats(self) -> dict[str, int]:
        answer: dict[str, int] = (await self.control.get("/stats")).json()
        return answer

    async def arrivals(self) -> dict[str, float]:
        answer: dict[str, float] = (await self.control.get("/arrivals")).json()
        return answer

    async def reset(self) -> None:
        (await self.control.post("/reset")).raise_for_status()

    async def close(self) -> None:
        await self.control.aclose()
        self.process.terminate()
        self.process.wait(timeout=10)


def make_events(count: int) -> list[Event]:
    """Inspection results of a realistic size (about 450 bytes of body each)."""
    return [
        Event(
            source="mirante/vision-orchestrator",
            type=EVENT_TYPE,
            subject=f"inspection/{index}",
            data={
                "inspection_id": index,
                "machine_id": f"vm-{index % 8:02d}",
                "line": "packaging-2",
                "product_code": f"SKU-{100000 + index}",
                "result": "pass" if index % 7 else "fail",
                "score": round(0.5 + (index % 50) / 100, 2),
                "defects": [] if index % 7 else [{"label": "scratch", "score": 0.91, "box": [12, 40, 88, 96]}],
                "duration_ms": 180 + index % 40,
                "image_url": f"https://storage.example.com/inspections/{uuid.uuid4().hex}.jpg",
            },
        )
        for index in range(count)
    ]


@dataclass
class Setup:
    stack: BenchStack
    redis: Redis
    receiver: Receiver
    service: RtlsProcess
    stream: str
    subscription_id: int
    db: asyncpg.Connection
    """Kept open for the whole benchmark: a connection per look would start a PostgreSQL backend each time."""


async def subscribe(stack: BenchStack, url: str, secret: str) -> int:
    engine = create_engine(stack.database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            subscription = WebhookSubscription(url=url, event_types=[EVENT_TYPE], secret=secret)
            session.add(subscription)
            await session.flush()
            return subscription.id
    finally:
        await engine.dispose()


async def wait_for_group(redis: Redis, stream: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            groups = await redis.xinfo_groups(stream)
        except ResponseError:  # no such stream until the consumer makes its group
            groups = []
        if any(group["name"] in (CONSUMER_GROUP, CONSUMER_GROUP.encode()) for group in groups):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the webhook consumer did not join its stream within 60 s")


async def delivered_count(setup: Setup) -> int:
    """Deliveries of the bench subscription recorded as delivered."""
    count = await setup.db.fetchval(
        "SELECT count(*) FROM rtls_cambus.webhook_deliveries WHERE subscription_id = $1 AND status = 'delivered'",
        setup.subscription_id,
    )
    return int(count)


async def publish(redis: Redis, stream: str, events: Sequence[Event], per_second: float = 0) -> dict[str, float]:
    """XADD `events` (in one pipeline, or one by one at `per_second`); when each was published (monotonic)."""
    published: dict[str, float] = {}
    if per_second <= 0:
        now = time.monotonic()
        async with redis.pipeline(transaction=False) as pipe:
            for item in events:
                pipe.xadd(stream, item.to_fields())  # type: ignore[arg-type]
                published[item.id] = now
            await pipe.execute()
        return published
    begin = time.monotonic()
    for index, item in enumerate(events):
        await asyncio.sleep(max(0.0, begin + index / per_second - time.monotonic()))
        published[item.id] = time.monotonic()
        await redis.xadd(stream, item.to_fields())  # type: ignore[arg-type]
    return published


@dataclass
class Run:
    """One run: its seconds, each event's latency to the receiver, and the CPU seconds each process spent."""

    seconds: float
    latencies: list[float]
    cpu: dict[str, float]


async def cpu_of(setup: Setup) -> dict[str, float]:
    rows = await setup.db.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    backends = [int(row["pid"]) for row in rows]
    return {
        "service": cpu_seconds(setup.service.pid),
        "receiver": cpu_seconds(setup.receiver.process.pid),
        "postgres": sum(cpu_seconds(pid) for pid in backends),
    }


async def deliver(setup: Setup, events: Sequence[Event], per_second: float = 0) -> Run:
    """Publish `events` and wait until each is at the receiver and recorded as delivered; the clock runs from the
    first publish to the last record."""
    await setup.receiver.reset()
    before = await delivered_count(setup)
    cpu_before = await cpu_of(setup)
    begin = time.monotonic()
    published = await publish(setup.redis, setup.stream, events, per_second)
    deadline = time.monotonic() + 600
    # The receiver is asked first: counting the recorded deliveries reads every delivered row of the subscription,
    # and doing so all along would take a share of the cores from the service being measured.
    while (await setup.receiver.stats())["count"] < len(events):
        if time.monotonic() > deadline or setup.service.process.poll() is not None:
            raise RuntimeError(f"only {(await setup.receiver.stats())['count']} of {len(events)} deliveries arrived")
        await asyncio.sleep(0.05)
    while True:
        delivered = await delivered_count(setup)
        if delivered - before >= len(events):
            break
        if time.monotonic() > deadline or setup.service.process.poll() is not None:
            raise RuntimeError(f"only {delivered - before} of {len(events)} deliveries were made")
        await asyncio.sleep(0.01)
    seconds = time.monotonic() - begin
    cpu_after = await cpu_of(setup)
    arrivals = await setup.receiver.arrivals()
    missing = [item.id for item in events if item.id not in arrivals]
    if missing:
        raise RuntimeError(f"{len(missing)} deliveries recorded as delivered never reached the receiver")
    return Run(
        seconds,
        [arrivals[event_id] - at for event_id, at in published.items()],
        {name: cpu_after[name] - cpu_before[name] for name in cpu_before},
    )


async def post_plain(setup: Setup, events: Sequence[Event], per_second: float = 0) -> Run:
    """The baseline poster over the same bodies; latencies from the start of each post."""
    await setup.receiver.reset()
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as bodies:
        bodies.write("\n".join(payload_for(item).decode() for item in events))
    receiver_before = cpu_seconds(setup.receiver.process.pid)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE),
            "post",
            setup.receiver.url,
            str(PER_SUBSCRIPTION),
            bodies.name,
            str(per_second),
            stdout=subprocess.PIPE,
        )
        output, _ = await process.communicate()
    finally:
        await asyncio.to_thread(Path(bodies.name).unlink)
    if process.returncode != 0:
        raise RuntimeError(f"the baseline poster exited with code {process.returncode}")
    result = json.loads(output)
    arrivals = await setup.receiver.arrivals()
    started: list[float] = result["started"]
    return Run(
        float(result["seconds"]),
        [arrivals[item.id] - at for item, at in zip(events, started, strict=True)],
        {"poster": float(result["cpu"]), "receiver": cpu_seconds(setup.receiver.process.pid) - receiver_before},
    )


def seconds_of(runs: list[Run]) -> str:
    return ", ".join(f"{run.seconds:.2f}" for run in runs)


def per_request(run: Run, count: int) -> str:
    return ", ".join(f"{name} {seconds / count * 1e6:,.0f} µs" for name, seconds in run.cpu.items())


def _ms(values: list[float]) -> str:
    return f"{percentile(values, 0.5) * 1000:.1f} ms / {percentile(values, 0.99) * 1000:.1f} ms"


async def run(urls: StackUrls) -> Report:
    count = 300 if quick() else 3_000
    paced = 100 if quick() else 1_000
    load_at_start = os.getloadavg()[0]
    secret = generate_standard_secret()
    receiver = Receiver(secret)
    try:
        async with rtls_stack(urls) as stack:
            stream = f"events:bench-webhooks-{uuid.uuid4().hex[:8]}"
            subscription_id = await subscribe(stack, receiver.url, secret)
            service = RtlsProcess(
                stack,
                f"bench-webhooks-{uuid.uuid4().hex[:8]}",
                webhook_allowed_targets=json.dumps(["127.0.0.1/32"]),
                webhook_streams=json.dumps([stream]),
            )
            redis = Redis.from_url(stack.redis_url, socket_timeout=30)
            db = await stack.connect()
            try:
                await service.wait_ready()
                await wait_for_group(redis, stream)
                setup = Setup(stack, redis, receiver, service, stream, subscription_id, db)
                await deliver(setup, make_events(200))  # warm-up: connections, caches, plans
                await post_plain(setup, make_events(200))
                plain: list[Run] = []
                signed: list[Run] = []
                for _ in range(ROUNDS):
                    plain.append(await post_plain(setup, make_events(count)))
                    signed.append(await deliver(setup, make_events(count)))
                stats = await receiver.stats()
                plain_latencies = (await post_plain(setup, make_events(paced), LATENCY_RATE)).latencies
                signed_latencies = (await deliver(setup, make_events(paced), LATENCY_RATE)).latencies
                stats_paced = await receiver.stats()
            finally:
                await db.close()
                await redis.aclose()
                service.stop()
    finally:
        await receiver.close()
    verified = stats["verified"] + stats_paced["verified"]
    if stats["bad"] or stats_paced["bad"] or stats["duplicates"] or not verified:
        raise RuntimeError(f"the receiver found bad signatures or duplicates: {stats}, {stats_paced}")
    best_plain = min(plain, key=lambda run: run.seconds)
    best_signed = min(signed, key=lambda run: run.seconds)
    return Report(
        name="webhook_deliveries",
        title="rtls-cambus outgoing webhooks: signed deliveries per second",
        rows=[
            (
                f"baseline: plain posts of the same bodies, same client, {PER_SUBSCRIPTION} at a time",
                rate(count, best_plain.seconds),
            ),
            (
                "**signed deliveries: stream → dispatcher → receiver, attempt logged** (one subscription)",
                f"**{rate(count, best_signed.seconds)}**",
            ),
            ("CPU per plain post (poster, receiver)", per_request(best_plain, count)),
            (
                "CPU per signed delivery (rtls-cambus, receiver, its PostgreSQL backends)",
                per_request(best_signed, count),
            ),
            (f"plain post → receiver, p50 / p99 ({paced:,} at {LATENCY_RATE}/s)", _ms(plain_latencies)),
            (
                f"event published → signed delivery at the receiver, p50 / p99 ({paced:,} at {LATENCY_RATE}/s)",
                _ms(signed_latencies),
            ),
        ],
        ratio=best_plain.seconds / best_signed.seconds,
        ratio_meaning="signed deliveries/s ÷ plain posts/s",
        target="≥ 0.7",
        notes=[
            f"{count:,} events of about {len(payload_for(make_events(1)[0]))} bytes per run, best of {ROUNDS} "
            f"interleaved runs each (seconds, plain / signed: {seconds_of(plain)} / {seconds_of(signed)}). A signed "
            "run starts at the first XADD and ends when every delivery is recorded as delivered; each of its events "
            "goes through the webhook stream consumer (consumer group, inbox, the batch's deliveries in one "
            "statement), the dispatcher's claim, the Standard Webhooks signature, the POST, and the attempt log. "
            "rtls-cambus runs under uvicorn (on uvloop) with its default webhook settings (4 attempts at a time "
            "per subscription); the receiver and the poster run on uvloop too.",
            f"The receiver (a bare asyncio HTTP/1.1 server in its own process) checked {verified} signatures "
            f"(one request in {VERIFY_EVERY}), all valid, and saw no event twice; {stats['connections']} new "
            "connection(s) were opened to it during the last signed run (kept-alive ones are reused).",
            "CPU is each process's user and system time from /proc over the run (the poster's its own), divided by "
            "the requests; the PostgreSQL backends are those connected to the bench database. Redis is not counted.",
            f"Latencies are measured at {LATENCY_RATE} events (or posts) per second, from XADD (or the start of "
            "the post) to the request's arrival at the receiver, on the machine's monotonic clock.",
            load_note(load_at_start),
        ],
    )


if __name__ == "__main__":
    sys.exit(script(sys.argv[1:]))

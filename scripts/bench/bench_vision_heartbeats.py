"""vision-orchestrator: machine heartbeats (`POST /api/v1/webhooks/heartbeat/`) against a receipt endpoint that only
stores the body, in the same app and process.

1,000 machines are registered through the API first (each gets its credential), and each beats once to come
online. Then two phases, each run against the heartbeat route and the receipt route with the same bodies:

- steady: every machine beats once every `INTERVAL` seconds at its own phase, the seed's rate (1,000 machines
  every 5 s is 200 heartbeats/s), open loop: a request's latency counts from when it was due, so a server that
  falls behind shows it instead of slowing the senders down;
- burst: every machine beats `BURST_BEATS` times as fast as `BURST_CONNECTIONS` connections allow, the most the
  server takes; receipt and heartbeat bursts alternate, and each pair gives a ratio.

Bodies are the simulator's heartbeats (`scripts/simulators/vision_machines.py`), built before the clock starts,
sent with each machine's credential over keep-alive connections of a lean HTTP/1.1 client.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import statistics
import time
from collections.abc import Sequence

import httpx
import orjson
from bench_http import Connection, percentile, post_request
from bench_telemetry_common import CpuMeter, describe_cpu
from bench_vision_common import RECEIPT_PATH, admin_key, count, quick, register_machines, vision_server
from report import Report, load_note, rate
from vision_machines import MachineProfile, SimulatedMachine  # type: ignore[import-not-found]

from mirante.devstack import StackUrls

QUICK = quick()
MACHINES = 100 if QUICK else 1_000
INTERVAL = 5.0
"""Seconds between two heartbeats of a machine: the simulator's default, the seed's "every few seconds"."""
STEADY_SECONDS = 5.0 if QUICK else 30.0
LIGHT_SHARE = 10
"""The light steady phase: one machine in this many beats, a tenth of the seed's rate."""
LIGHT_SECONDS = 5.0 if QUICK else 15.0
STEADY_CONNECTIONS = 32
BURST_BEATS = 2
BURST_CONNECTIONS = 16
ROUNDS = 1 if QUICK else 3
HEARTBEAT_PATH = "/api/v1/webhooks/heartbeat/"

Prepared = tuple[bytes, dict[str, str]]


def _beats(machines: Sequence[tuple[str, str]], rounds: int, seed: int) -> list[list[Prepared]]:
    """`rounds` heartbeats of every machine as the simulator builds them: [round][machine] -> (body, headers)."""
    with_payloads = [
        SimulatedMachine(MachineProfile(name=f"HB-{index}"), index=index, seed=seed, machine_id=machine_id)
        for index, (machine_id, _) in enumerate(machines)
    ]
    return [
        [
            (
                orjson.dumps(simulated.heartbeat_payload()),
                {"Content-Type": "application/json", "Authorization": f"Bearer {credential}"},
            )
            for simulated, (_, credential) in zip(with_payloads, machines, strict=True)
        ]
        for _ in range(rounds)
    ]


async def _closed_loop(port: int, path: str, beats: Sequence[Prepared], connections: int) -> tuple[float, list[float]]:
    """Send every beat, `connections` at a time; (seconds, latencies). Fails on any answer but 200."""
    requests = collections.deque(post_request(port, path, body, headers) for body, headers in beats)
    latencies: list[float] = []

    async def worker() -> None:
        connection = await Connection.open(port)
        try:
            while requests:
                request = requests.popleft()
                sent = time.perf_counter()
                status, answer = await connection.exchange(request)
                latencies.append(time.perf_counter() - sent)
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}: {answer[:300]!r}")
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - started, latencies


async def _open_loop(port: int, path: str, beats: list[list[Prepared]], seconds: float) -> tuple[int, list[float]]:
    """Each machine beats every INTERVAL at its own phase for `seconds`; (requests, latencies from when each was
    due). Fails on any answer but 200."""
    rng = random.Random(7)
    phases = [rng.uniform(0, INTERVAL) for _ in beats[0]]
    schedule = sorted(
        (phase + n * INTERVAL, index, n % len(beats))
        for index, phase in enumerate(phases)
        for n in range(int(seconds / INTERVAL) + 1)
        if phase + n * INTERVAL < seconds
    )
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    latencies: list[float] = []
    start = time.perf_counter() + 0.2

    async def feeder() -> None:
        for offset, index, beat_round in schedule:
            due = start + offset
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            body, headers = beats[beat_round][index]
            queue.put_nowait((due, post_request(port, path, body, headers)))
        for _ in range(STEADY_CONNECTIONS):
            queue.put_nowait(None)

    async def worker() -> None:
        connection = await Connection.open(port)
        try:
            while (item := await queue.get()) is not None:
                due, request = item
                status, answer = await connection.exchange(request)
                latencies.append(time.perf_counter() - due)
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}: {answer[:300]!r}")
        finally:
            connection.close()

    await asyncio.gather(feeder(), *(worker() for _ in range(STEADY_CONNECTIONS)))
    return len(schedule), latencies


def _ms(latencies: Sequence[float]) -> str:
    return f"{percentile(latencies, 0.5) * 1000:.1f} ms / {percentile(latencies, 0.99) * 1000:.1f} ms"


async def run(urls: StackUrls) -> Report:
    load_at_start = os.getloadavg()[0]
    # The presence sweep would turn machines offline while the receipt phases run: it is a periodic chore, not
    # part of taking a heartbeat, so it is pushed out of the run.
    async with vision_server(urls, machine_offline_after_seconds="3600") as server:
        key = await admin_key(server.database_url)
        started = time.perf_counter()
        machines = await register_machines(server.base_url, key, MACHINES, "MV-Bench")
        registering = time.perf_counter() - started
        beats = _beats(machines, BURST_BEATS, seed=11)
        flat = [beat for beat_round in beats for beat in beat_round]
        # Every machine beats once (offline -> online, its event and wake-up), and the receipt route is warmed.
        await _closed_loop(server.port, HEARTBEAT_PATH, beats[0], BURST_CONNECTIONS)
        await _closed_loop(server.port, RECEIPT_PATH, beats[0], BURST_CONNECTIONS)
        async with httpx.AsyncClient(base_url=server.base_url, headers={"X-API-Key": key}) as client:
            online = (await client.get("/api/v1/machines/", params={"status": "online", "page_size": 1})).json()
        light = [beat_round[: MACHINES // LIGHT_SHARE] for beat_round in beats]
        light_receipts, light_receipt_latencies = await _open_loop(server.port, RECEIPT_PATH, light, LIGHT_SECONDS)
        light_beats, light_latencies = await _open_loop(server.port, HEARTBEAT_PATH, light, LIGHT_SECONDS)
        steady_cpu: dict[str, dict[str, float]] = {}
        meter = CpuMeter({"service": [server.pid]})
        meter.start()
        steady_receipts, steady_receipt_latencies = await _open_loop(server.port, RECEIPT_PATH, beats, STEADY_SECONDS)
        steady_cpu["receipt"] = meter.stop()
        meter.start()
        steady_beats, steady_latencies = await _open_loop(server.port, HEARTBEAT_PATH, beats, STEADY_SECONDS)
        steady_cpu["heartbeat"] = meter.stop()
        receipt_runs: list[tuple[float, list[float]]] = []
        beat_runs: list[tuple[float, list[float]]] = []
        cpu: dict[str, list[dict[str, float]]] = {"receipt": [], "heartbeat": []}
        for _ in range(ROUNDS):
            for path, runs, name in ((RECEIPT_PATH, receipt_runs, "receipt"), (HEARTBEAT_PATH, beat_runs, "heartbeat")):
                meter = CpuMeter({"service": [server.pid], "client": [os.getpid()]})
                meter.start()
                runs.append(await _closed_loop(server.port, path, flat, BURST_CONNECTIONS))
                cpu[name].append(meter.stop())
        stored = await count(server.database_url, "SELECT count(*) FROM vision_orchestrator.heartbeats")
        receipts = await count(server.database_url, "SELECT count(*) FROM bench_receipts")
    expected_beats = MACHINES + light_beats + steady_beats + ROUNDS * len(flat)
    expected_receipts = MACHINES + light_receipts + steady_receipts + ROUNDS * len(flat)
    if (stored, receipts) != (expected_beats, expected_receipts):
        raise RuntimeError(
            f"expected {expected_beats:,} heartbeats and {expected_receipts:,} receipts stored; "
            f"found {stored:,} and {receipts:,}"
        )

    ratios = [receipt[0] / beat[0] for receipt, beat in zip(receipt_runs, beat_runs, strict=True)]
    best_receipt = min(receipt_runs, key=lambda run: run[0])
    best_beat = min(beat_runs, key=lambda run: run[0])
    seed_rate = MACHINES / INTERVAL
    p99 = percentile(steady_latencies, 0.99) * 1000
    light_rate = seed_rate / LIGHT_SHARE

    def cpu_per_request(runs: list[tuple[float, list[float]]], used: list[dict[str, float]]) -> float:
        """Milliseconds of the service's CPU per request, the least of the bursts."""
        return min(
            cores * seconds / len(flat) * 1000
            for (seconds, _), cores in zip(runs, [u["service"] for u in used], strict=True)
        )

    receipt_cpu_ms = cpu_per_request(receipt_runs, cpu["receipt"])
    beat_cpu_ms = cpu_per_request(beat_runs, cpu["heartbeat"])
    return Report(
        name="vision_heartbeats",
        title=f"vision-orchestrator: heartbeats from {MACHINES:,} machines",
        rows=[
            (f"registering {MACHINES:,} machines through `POST /machines/`, 8 in flight", rate(MACHINES, registering)),
            ("machines online after their first heartbeat", f"{online.get('count', '?'):,}"),
            (
                f"baseline: receipt endpoint at a tenth of the seed's rate ({light_rate:,.0f}/s for "
                f"{LIGHT_SECONDS:.0f} s): p50 / p99",
                _ms(light_receipt_latencies),
            ),
            (
                f"heartbeats at a tenth of the seed's rate ({light_rate:,.0f}/s for {LIGHT_SECONDS:.0f} s): p50 / p99",
                _ms(light_latencies),
            ),
            (
                f"baseline: receipt endpoint at the seed's rate ({seed_rate:,.0f}/s for {STEADY_SECONDS:.0f} s): "
                "p50 / p99",
                _ms(steady_receipt_latencies),
            ),
            (
                f"**heartbeats at the seed's rate ({seed_rate:,.0f}/s for {STEADY_SECONDS:.0f} s): p50 / p99**",
                f"{_ms(steady_latencies)} (target p99 < 50 ms)",
            ),
            (
                "CPU in cores at the seed's rate: receipt; heartbeat",
                f"{describe_cpu(steady_cpu['receipt'])}; {describe_cpu(steady_cpu['heartbeat'])}",
            ),
            (
                f"baseline: receipt endpoint, burst of {len(flat):,} (best of {ROUNDS})",
                f"{rate(len(flat), best_receipt[0])}; p50 / p99 {_ms(best_receipt[1])}",
            ),
            (
                f"**heartbeats, burst of {len(flat):,} (best of {ROUNDS})**",
                f"{rate(len(flat), best_beat[0])}; p50 / p99 {_ms(best_beat[1])}",
            ),
            (
                f"heartbeat ÷ receipt rate, each of {ROUNDS} alternating burst pairs, in run order",
                ", ".join(f"{value:.2f}" for value in ratios),
            ),
            ("CPU in cores during the bursts, receipt", "; ".join(describe_cpu(used) for used in cpu["receipt"])),
            ("CPU in cores during the bursts, heartbeat", "; ".join(describe_cpu(used) for used in cpu["heartbeat"])),
            (
                f"service CPU per request in the bursts (least of {ROUNDS}): receipt, heartbeat",
                f"{receipt_cpu_ms:.2f} ms, {beat_cpu_ms:.2f} ms",
            ),
        ],
        ratio=statistics.median(ratios),
        ratio_meaning=f"heartbeat burst rate ÷ receipt endpoint burst rate, median of {ROUNDS} pairs",
        target=f"≥ 0.5, and p99 < 50 ms at the seed's rate (measured {p99:.1f} ms)",
        notes=[
            f"{MACHINES:,} machines registered through the API, each with its own credential; one uvicorn process "
            f"on 127.0.0.1 running the whole app (dispatcher, presence sweep, outbox relay); steady phases over "
            f"{STEADY_CONNECTIONS} keep-alive connections, bursts over {BURST_CONNECTIONS}, from a lean "
            "HTTP/1.1 client in the benchmark's process. Bodies are the simulator's heartbeats (about "
            f"{sum(len(body) for body, _ in flat) // len(flat)} bytes).",
            "The baseline is a receipt endpoint added to the same app: the same process, request-scoped session "
            "and commit, one INSERT of the raw body into a plain table. A heartbeat adds the credential check "
            "(the credential and its machine read in one statement, a SHA-256 comparison, `last_used_at` written "
            "at most once a minute), validation of the seed's fields, and one statement inserting into the "
            "day-partitioned time series and updating the machine's presence (a data-modifying CTE).",
            "Steady phases are open loop: each machine's beat is due at its own phase every "
            f"{INTERVAL:.0f} s and its latency counts from then, so waiting for a free connection counts too. The "
            f"light phase has one machine in {LIGHT_SHARE} beat.",
            f"At the seed's rate the service needs about {seed_rate * beat_cpu_ms / 1000:.2f} of a core for the "
            f"heartbeats alone ({seed_rate:,.0f}/s x {beat_cpu_ms:.2f} ms, the bursts' CPU per heartbeat), all of "
            "it on its one event loop; when the machine leaves it less than that, the open-loop phase builds a "
            "queue and its p99 is the queue's length rather than a request's own time.",
            "The presence sweep's timeout is raised for the run (the receipt phases leave the machines silent "
            "longer than the default 30 s); the sweep is a periodic chore apart from taking a heartbeat.",
            f"Checked after the run: {stored:,} heartbeats and {receipts:,} receipts stored, as many as sent.",
            load_note(load_at_start),
        ],
    )

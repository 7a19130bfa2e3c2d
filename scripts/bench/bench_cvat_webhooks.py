"""Signed CVAT webhooks handled per second by cvat-sync, against a bare endpoint on the same server.

The real app runs under uvicorn (one process, 127.0.0.1) in a child process, with one extra route that only
reads the body and answers 200. An httpx client in this process sends, 16 at a time, 2,000 signed
`update:job` deliveries for 500 jobs (each one newer than the last, so each is verified, logged, diffed,
written with a history row and an outbox event, and committed), and the same 2,000 bodies to the bare route.
The outbox relay of the app runs as it does in production, publishing to the stack's Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI, Request, Response
from report import Report, rate

from mirante.db import plain_url
from mirante.devstack import StackUrls
from mirante.testing.database import create_test_database, drop_test_database
from mirante.webhooks import sign_sha256_hex

JOBS = 500
UPDATES = 2_000
CONCURRENCY = 16
WARMUP = 200
SECRET = "bench-webhook-secret"
WEBHOOK_PATH = "/api/v1/webhooks/cvat"
BARE_PATH = "/bench/bare"
BASE = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
STATES = ("new", "in progress", "completed")
ASSIGNEES = ({"id": 3, "username": "alice"}, {"id": 4, "username": "bob"})
HERE = Path(__file__).resolve().parent


async def _bare(request: Request) -> Response:
    await request.body()
    return Response(status_code=200)


def bench_app() -> FastAPI:
    """The cvat-sync app as configured by the environment, plus the bare baseline route (uvicorn factory)."""
    from cvat_sync.main import create_app

    app = create_app()
    app.add_api_route(BARE_PATH, _bare, methods=["POST"], include_in_schema=False)
    return app


def _job(job_id: int, version: int) -> dict[str, Any]:
    assignee = ASSIGNEES[version % 2]
    return {
        "url": f"http://cvat.bench/api/jobs/{job_id}",
        "id": job_id,
        "task_id": 1000 + job_id // 20,
        "task_name": f"batch-{job_id // 20:03d}",
        "project_id": 7,
        "project_name": "Bench scenes",
        "assignee": {"url": f"http://cvat.bench/api/users/{assignee['id']}", **assignee},
        "guide_id": None,
        "dimension": "2d",
        "mode": "annotation",
        "media_type": "image",
        "status": "annotation",
        "stage": "annotation",
        "state": STATES[version % 3],
        "frame_count": 50,
        "start_frame": 0,
        "stop_frame": 49,
        "created_date": BASE.isoformat().replace("+00:00", "Z"),
        "updated_date": (BASE + timedelta(minutes=version)).isoformat().replace("+00:00", "Z"),
        "issues": {"url": f"http://cvat.bench/api/issues?job_id={job_id}", "count": 0},
        "labels": {"url": f"http://cvat.bench/api/labels?job_id={job_id}"},
        "type": "annotation",
        "organization": 2,
        "target_storage": None,
        "source_storage": None,
        "assignee_updated_date": None,
        "parent_job_id": None,
        "consensus_replicas": 0,
        "replicas_count": 0,
    }


def _delivery(event: str, job: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    sender = {"url": "http://cvat.bench/api/users/1", "id": 1, "username": "admin1", "first_name": "", "last_name": ""}
    body = json.dumps({"event": event, "job": job, "sender": sender, "webhook_id": 7}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Signature-256": sign_sha256_hex(SECRET, body),
        "User-Agent": "python-requests/2.32.3",
    }
    return body, headers


def _deliveries() -> tuple[list[tuple[bytes, dict[str, str]]], list[tuple[bytes, dict[str, str]]]]:
    creates = [_delivery("create:job", _job(job_id, 0)) for job_id in range(1, JOBS + 1)]
    updates = [_delivery("update:job", _job(n % JOBS + 1, n // JOBS + 1)) for n in range(UPDATES)]
    return creates, updates


async def _send_all(
    client: httpx.AsyncClient, path: str, deliveries: Sequence[tuple[bytes, dict[str, str]]], expect: str | None
) -> float:
    """Send every delivery with CONCURRENCY in flight; returns the seconds taken. Fails on any other answer."""
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for delivery in deliveries:
        queue.put_nowait(delivery)

    async def worker() -> None:
        while not queue.empty():
            body, headers = queue.get_nowait()
            response = await client.post(path, content=body, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
            if expect is not None and response.json()["status"] != expect:
                raise RuntimeError(f"{path} answered {response.text[:300]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far; 0.0 where /proc is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(
    client: httpx.AsyncClient,
    server: subprocess.Popen[bytes],
    path: str,
    deliveries: Sequence[tuple[bytes, dict[str, str]]],
    expect: str | None,
) -> tuple[float, float, float]:
    """(seconds, server CPU ms per request, client CPU ms per request) for sending `deliveries`."""
    server_cpu, client_cpu = _cpu_seconds(server.pid), time.process_time()
    seconds = await _send_all(client, path, deliveries, expect)
    count = len(deliveries)
    server_ms = (_cpu_seconds(server.pid) - server_cpu) * 1000 / count
    client_ms = (time.process_time() - client_cpu) * 1000 / count
    return seconds, server_ms, client_ms


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start_server(urls: StackUrls, database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MIRANTE_DATABASE_URL": database_url,
        "MIRANTE_REDIS_URL": urls.redis_url,
        "MIRANTE_MQTT_URL": urls.mqtt_url,
        "MIRANTE_LOG_LEVEL": "WARNING",
        "CVAT_SYNC_WEBHOOK_SECRET": SECRET,
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench_cvat_webhooks:bench_app",
        "--factory",
        "--app-dir",
        str(HERE),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(command, env=env)


async def _wait_ready(client: httpx.AsyncClient, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the benchmark server exited with code {server.returncode}")
        try:
            if (await client.get("/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the benchmark server did not become ready within 60 s")


async def _written(database_url: str) -> dict[str, int]:
    connection = await asyncpg.connect(plain_url(database_url))
    try:
        counts = {}
        for name, query in (
            ("history", "SELECT count(*) FROM cvat_sync.job_history"),
            ("outbox", "SELECT count(*) FROM cvat_sync.outbox"),
            ("logs", "SELECT count(*) FROM cvat_sync.webhook_logs WHERE status = 'success'"),
        ):
            counts[name] = int(await connection.fetchval(query))
        return counts
    finally:
        await connection.close()


def _client_bound_note(bare: tuple[float, float, float]) -> list[str]:
    _, server_ms, client_ms = bare
    if client_ms <= server_ms:
        return []
    return [
        f"The bare rate is bounded by the client (httpx used {client_ms:.1f} ms of CPU per request, the server "
        f"{server_ms:.1f} ms), so the ratio flatters the webhook path; the server CPU row compares the server alone."
    ]


async def run(urls: StackUrls) -> Report:
    creates, updates = _deliveries()
    database_url = await create_test_database(urls.database_url, prefix="mirante_bench")
    port = _free_port()
    server = _start_server(urls, database_url, port)
    try:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as client:
            await _wait_ready(client, server)
            await _send_all(client, BARE_PATH, updates[:WARMUP], expect=None)
            bare_before = await _measure(client, server, BARE_PATH, updates, expect=None)
            creating = await _measure(client, server, WEBHOOK_PATH, creates, expect="success")
            updating = await _measure(client, server, WEBHOOK_PATH, updates, expect="success")
            bare_after = await _measure(client, server, BARE_PATH, updates, expect=None)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    try:
        written = await _written(database_url)
    finally:
        await drop_test_database(urls.database_url, database_url)
    expected = JOBS + UPDATES
    if written["history"] != expected or written["outbox"] != expected or written["logs"] != expected:
        raise RuntimeError(f"expected {expected} history rows, outbox events and logs; found {written}")

    bare = min(bare_before, bare_after)
    slower_bare = max(bare_before, bare_after)
    ratio = bare[0] / updating[0]
    body_size = sum(len(body) for body, _ in updates) // len(updates)
    return Report(
        name="cvat_webhooks",
        title="cvat-sync: signed CVAT webhooks with the audit log",
        rows=[
            ("baseline: bare endpoint (read body, answer 200), same server", rate(UPDATES, bare[0])),
            ("bare endpoint, other run (the faster run is the baseline)", rate(UPDATES, slower_bare[0])),
            (f"`create:job` for {JOBS} new jobs", rate(JOBS, creating[0])),
            (f"`update:job`, {UPDATES:,} deliveries over {JOBS} jobs, each applied", rate(UPDATES, updating[0])),
            ("server CPU per request: bare / `update:job`", f"{bare[1]:.1f} ms / {updating[1]:.1f} ms"),
            ("client (httpx) CPU per request: bare / `update:job`", f"{bare[2]:.1f} ms / {updating[2]:.1f} ms"),
        ],
        ratio=ratio,
        ratio_meaning="signed `update:job` rate ÷ bare endpoint rate",
        target="≥ 0.5",
        notes=[
            f"One uvicorn process on 127.0.0.1; an httpx client with {CONCURRENCY} requests in flight; bodies of "
            f"about {body_size:,} bytes in CVAT's serialisation, signed with `X-Signature-256`.",
            "Per delivery: HMAC check over the raw body, the audit log row (with the duplicate check) before "
            "processing, a savepoint, the job locked and diffed, one statement writing the job, its history row and "
            "the log's outcome, the outbox event, one commit: 7 statements, plus the 3 of the connection pool's "
            "pre-ping (`BEGIN`, an empty query, `ROLLBACK`) at checkout. The app's outbox relay runs meanwhile.",
            *_client_bound_note(bare),
            f"Checked after the run: {written['history']:,} history rows, {written['outbox']:,} outbox events and "
            f"{written['logs']:,} successful log rows.",
        ],
    )

"""What the vision-orchestrator benchmarks share: a bench database, the service under uvicorn in a child process
with a receipt endpoint beside its routes, an admin API key, and registered machines.

The receipt endpoint (`RECEIPT_PATH`) is the baseline of the webhook benchmarks: the same app, process and
request-scoped session as the service's routes, and all it does is insert the raw body into `bench_receipts` and
commit. Whatever a webhook costs beyond it is what the orchestrator adds to storing a request.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from bench_process import ServiceServer, free_port
from fastapi import FastAPI, Request, Response
from sqlalchemy import text

from mirante.auth import Role
from mirante.auth.commands import create_api_key
from mirante.db import Session, create_engine, create_sessionmaker, plain_url
from mirante.devstack import StackUrls
from mirante.testing.database import create_test_database, drop_test_database

HERE = Path(__file__).resolve().parent
SIMULATORS = HERE.parent / "simulators"
if str(SIMULATORS) not in sys.path:
    sys.path.insert(0, str(SIMULATORS))

API = "/api/v1"
RECEIPT_PATH = "/bench/receipt"
RECEIPTS_DDL = (
    "CREATE TABLE bench_receipts (id bigserial PRIMARY KEY, body text NOT NULL, received_at timestamptz NOT NULL)"
)
INSERT_RECEIPT = text("INSERT INTO bench_receipts (body, received_at) VALUES (:body, :received_at)")
PIPELINE: dict[str, Any] = {
    "tools": [
        {"name": "image_source", "parameters": {"source_type": "file", "file_path": "/path/to/image.jpg"}},
        {"name": "blob_detection", "parameters": {"min_area": 100, "max_area": 10000, "threshold": 128}},
    ],
    "connections": [{"from": "image_source", "to": "blob_detection"}],
}
"""The seed's example pipeline."""


def quick() -> bool:
    """`BENCH_QUICK=1` (or `run.py --quick`): a few seconds per benchmark, to check that it runs."""
    return os.environ.get("BENCH_QUICK") == "1"


async def _receipt(request: Request, session: Session) -> Response:
    """The least a receiver that keeps what it is sent does: the raw body stored in the request's transaction."""
    body = await request.body()
    await session.execute(INSERT_RECEIPT, {"body": body.decode(), "received_at": datetime.now(UTC)})
    return Response(status_code=200)


def bench_app() -> FastAPI:
    """vision-orchestrator as configured by the environment, plus the receipt route (uvicorn factory)."""
    from vision_orchestrator.main import create_app

    app = create_app()
    app.add_api_route(RECEIPT_PATH, _receipt, methods=["POST"], include_in_schema=False)
    return app


class VisionServer(ServiceServer):
    """vision-orchestrator (with the receipt route) under uvicorn on 127.0.0.1, in a child process."""

    def __init__(self, urls: StackUrls, database_url: str, **settings: str) -> None:
        port = free_port()
        super().__init__(
            "vision-orchestrator",
            "bench_vision_common:bench_app",
            replace(urls, database_url=database_url),
            env_prefix="VISION_ORCHESTRATOR_",
            settings={
                # Registering a thousand machines is a thousand user calls: the bench's API key is not limited.
                "user_rate_limit": "none",
                "public_url": f"http://127.0.0.1:{port}",
                **settings,
            },
            app_dir=HERE,
            port=port,
        )
        self.database_url = database_url


@asynccontextmanager
async def vision_server(urls: StackUrls, **settings: str) -> AsyncIterator[VisionServer]:
    """A migrated bench database with `bench_receipts`, and the service on it; both gone afterwards."""
    database_url = await create_test_database(urls.database_url, prefix="mirante_bench")
    try:
        connection = await asyncpg.connect(plain_url(database_url))
        try:
            await connection.execute(RECEIPTS_DDL)
        finally:
            await connection.close()
        server = VisionServer(urls, database_url, **settings)
        try:
            await server.wait_ready()
            yield server
        finally:
            server.stop()
    finally:
        await drop_test_database(urls.database_url, database_url)


async def admin_key(database_url: str) -> str:
    """An admin API key with the `vision` scope, committed; its plaintext."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            _key, plaintext = await create_api_key(session, "bench-vision", ["vision"], role=Role.admin)
    finally:
        await engine.dispose()
    return plaintext


async def register_machines(
    base_url: str, key: str, count: int, prefix: str, in_flight: int = 8
) -> list[tuple[str, str]]:
    """Register `count` machines through `POST /api/v1/machines/` as the seed's clients do; (id, credential)
    of each, in order."""
    registered: list[tuple[str, str] | None] = [None] * count
    indices = iter(range(count))

    async def worker(client: httpx.AsyncClient) -> None:
        for index in indices:
            body = {
                "name": f"{prefix}-{index + 1:04d}",
                "location": "Linha de Produção A",
                "ip_address": "127.0.0.1",
                "port": 20000 + index,
                "max_concurrent_inspections": 2,
                "supported_inspection_types": ["blob_detection", "edge_detection"],
                "hardware_specs": {"gpu": "RTX 3080", "cpu": "Intel i7-10700K", "memory": "32GB"},
            }
            response = await client.post(f"{API}/machines/", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"registering a machine answered {response.status_code}: {response.text[:300]}")
            answer = response.json()
            registered[index] = (answer["id"], answer["credential"])

    async with httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": key}, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(in_flight)))
    return [item for item in registered if item is not None]


async def count(database_url: str, query: str) -> int:
    connection = await asyncpg.connect(plain_url(database_url))
    try:
        return int(await connection.fetchval(query))
    finally:
        await connection.close()

"""Helpers of the dispatch tests: a database of their own (dispatchers commit, and run on their own engines),
machines and inspections written straight to it, users with tokens, and the results webhook of the other side
played by a small HTTP server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mirante.auth.commands import create_user
from mirante.auth.service import issue_token
from mirante.auth.tokens import TokenCodec
from mirante.settings import DatabaseSettings, InfraSettings
from vision_orchestrator.capacity import announce_capacity
from vision_orchestrator.config import Settings
from vision_orchestrator.identifiers import new_machine_id
from vision_orchestrator.inspections.service import create_inspection, transition
from vision_orchestrator.lifecycle import InspectionStatus
from vision_orchestrator.tables import Inspection, InspectionResult, Machine

PIPELINE = {
    "tools": [
        {"name": "image_source", "parameters": {"source_type": "file", "file_path": "/images/a.jpg"}},
        {"name": "blob_detection", "parameters": {"min_area": 100, "max_area": 10000, "threshold": 128}},
    ],
    "connections": [{"from": "image_source", "to": "blob_detection"}],
}


def settings_for(infra: InfraSettings, database_url: str, **overrides: Any) -> Settings:
    own = infra.model_copy(update={"database": DatabaseSettings(url=database_url, pool_size=5, max_overflow=5)})
    values: dict[str, Any] = {
        "dispatch_interval_seconds": 0.3,
        "dispatch_retry_base_seconds": 0.05,
        "dispatch_retry_cap_seconds": 0.5,
        "machine_connect_timeout_seconds": 0.5,
        "machine_read_timeout_seconds": 1.0,
        "listen_retry_base_seconds": 0.05,
        "listen_retry_cap_seconds": 0.5,
    }
    return Settings(infra=own, **(values | overrides))


async def add_machine(
    session: AsyncSession,
    port: int,
    *,
    capacity: int = 2,
    types: tuple[str, ...] = ("blob_detection", "edge_detection"),
    status: str = "online",
    location: str | None = "Linha A",
    line: str | None = None,
) -> str:
    machine_id = new_machine_id()
    session.add(
        Machine(
            id=machine_id,
            name=f"mv-test-{uuid.uuid4().hex[:8]}",
            location=location,
            line=line,
            ip_address="127.0.0.1",
            port=port,
            status=status,
            max_concurrent_inspections=capacity,
            supported_inspection_types=list(types),
        )
    )
    await session.flush()
    return machine_id


async def add_inspection(
    session: AsyncSession, *, priority: int = 5, inspection_type: str = "blob_detection", target: str | None = None
) -> str:
    values = {
        "name": "test inspection",
        "inspection_type": inspection_type,
        "pipeline_config": PIPELINE,
        "priority": priority,
        "target_machine_id": target,
    }
    return (await create_inspection(session, values, "user:test")).id


async def operator_token(sessions: async_sessionmaker[AsyncSession], infra: InfraSettings, role: str) -> str:
    async with sessions() as session, session.begin():
        user = await create_user(
            session, username=f"{role}-{uuid.uuid4().hex[:8]}", password="test-password-1234", role=role
        )
    return issue_token(TokenCodec.from_settings(infra.jwt), user).token


async def finish(session: AsyncSession, inspection: Inspection, *, failed: bool, processing_time: float) -> None:
    """What the results webhook does with a result (the other side of the contract), enough for these tests."""
    machine_id = inspection.assigned_machine_id
    assert machine_id is not None
    session.add(
        InspectionResult(
            inspection_id=inspection.id,
            machine_id=machine_id,
            idempotency_key=f"{inspection.id}:{inspection.lease}",
            lease=inspection.lease,
            status="failed" if failed else "completed",
            processing_time_seconds=processing_time,
        )
    )
    target = InspectionStatus.failed if failed else InspectionStatus.completed
    await transition(session, inspection, target, actor=f"machine:{machine_id}")
    await announce_capacity(session, machine_id)


def results_receiver(sessions: async_sessionmaker[AsyncSession]) -> Starlette:
    """The orchestrator's webhooks as far as these tests need them: results end their inspection."""

    async def results(request: Request) -> Response:
        body = await request.json()
        async with sessions() as session, session.begin():
            inspection = (
                await session.scalars(
                    select(Inspection).where(Inspection.id == body["inspection_id"]).with_for_update()
                )
            ).one_or_none()
            if (
                inspection is None
                or inspection.status not in ("assigned", "processing")
                or inspection.assigned_machine_id != body["machine_id"]
                or inspection.lease != body.get("attempt", 1)
            ):
                return JSONResponse({"error": {"code": "stale", "message": "not this assignment"}}, 409)
            processing_time = float(body["results"].get("processing_time", 0.01))
            await finish(session, inspection, failed=body["status"] == "failed", processing_time=processing_time)
        return JSONResponse({"ok": True})

    async def accept(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/api/v1/webhooks/results/", results, methods=["POST"]),
            Route("/api/v1/webhooks/status/", accept, methods=["POST"]),
            Route("/api/v1/webhooks/heartbeat/", accept, methods=["POST"]),
        ]
    )


@asynccontextmanager
async def capacity_checked(engine: AsyncEngine) -> AsyncIterator[None]:
    """Makes PostgreSQL refuse any commit that would hold more inspections on a machine than its capacity."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "ALTER TABLE vision_orchestrator.machines ADD CONSTRAINT test_within_capacity "
                "CHECK (current_inspections <= max_concurrent_inspections)"
            )
        )
    yield

"""Dispatch against a database of its own (dispatchers commit, on engines of their own): two replicas under
concurrent results, and end to end with the simulated machines through the API.

The replicas test: two dispatchers (separate engines, separate LISTEN connections) while results free slots
concurrently never assign an inspection twice nor put more on a machine than its capacity. PostgreSQL itself
checks the capacity at every commit (a CHECK constraint added for the test), and the status history of every
inspection is replayed afterwards. The results webhook of the other side is played by a small HTTP server.
"""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mirante.auth.commands import create_user
from mirante.auth.service import issue_token
from mirante.auth.tokens import TokenCodec
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import StackUrls
from mirante.settings import DatabaseSettings, InfraSettings
from mirante.testing.database import create_test_database, drop_test_database
from mirante.testing.streams import wait_until
from vision_orchestrator.capacity import announce_capacity
from vision_orchestrator.config import Settings
from vision_orchestrator.dispatch.client import MachineClient
from vision_orchestrator.dispatch.dispatcher import Dispatcher
from vision_orchestrator.identifiers import new_machine_id
from vision_orchestrator.inspections.service import create_inspection, transition
from vision_orchestrator.lifecycle import InspectionStatus
from vision_orchestrator.main import create_app
from vision_orchestrator.tables import Inspection, InspectionResult, InspectionStatusChange, Machine

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.vision_machines import HttpServer, MachineFleet, ProcessingTime  # noqa: E402

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


INSPECTIONS = 120


@pytest_asyncio.fixture(loop_scope="session")
async def own_database(mirante_urls: StackUrls) -> AsyncIterator[str]:
    url = await create_test_database(mirante_urls.database_url, prefix="vision_dispatch")
    try:
        yield url
    finally:
        await drop_test_database(mirante_urls.database_url, url)


def machine_app(*, refuse_every: int, garbage: bool = False) -> Starlette:
    """A machine that takes everything, except one send in `refuse_every` (503 at capacity), or answers junk."""
    seen = {"count": 0}

    async def accept(request: Request) -> Response:
        body = await request.json()
        if garbage:
            return Response(b"\x00 not json", status_code=200)
        seen["count"] += 1
        if seen["count"] % refuse_every == 0:
            return JSONResponse(
                {"error": {"code": "at_capacity", "message": "full"}}, 503, headers={"Retry-After": "0"}
            )
        return JSONResponse({"inspection_id": body["inspection_id"], "status": "processing"}, 202)

    async def cancel(request: Request) -> Response:
        return JSONResponse({"error": {"code": "unknown_inspection", "message": "not here"}}, 404)

    return Starlette(
        routes=[
            Route("/api/v1/inspections/", accept, methods=["POST"]),
            Route("/api/v1/inspections/{inspection_id}/cancel/", cancel, methods=["POST"]),
        ]
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_two_dispatchers_never_assign_twice_nor_overfill_a_machine(
    own_database: str, infra_settings: InfraSettings
) -> None:
    settings = settings_for(infra_settings, own_database)
    engines = [create_engine(own_database) for _ in range(3)]
    servers = [HttpServer(machine_app(refuse_every=5 + index)) for index in range(3)]
    servers.append(HttpServer(machine_app(refuse_every=1, garbage=True)))
    for server in servers:
        await server.start()
    test_sessions = create_sessionmaker(engines[0])
    dispatchers = [
        Dispatcher(
            create_sessionmaker(engine),
            settings,
            MachineClient(connect_timeout=0.5, read_timeout=1.0),
            database_url=own_database,
        )
        for engine in engines[1:]
    ]
    tasks: list[asyncio.Task[None]] = []
    try:
        async with capacity_checked(engines[0]):
            pass
        async with test_sessions() as session, session.begin():
            machine_ids = [
                await add_machine(session, server.port, capacity=1 + index % 3)
                for index, server in enumerate(servers * 2)
            ]
            rng = random.Random(7)
            for _ in range(INSPECTIONS):
                await add_inspection(session, priority=rng.randint(1, 10))
        assert len(machine_ids) == 8

        stop = asyncio.Event()
        overfilled: list[str] = []

        async def complete_some(seed: int) -> None:
            rng = random.Random(seed)
            while not stop.is_set():
                # One result per transaction, as the results webhook takes them.
                async with test_sessions() as session, session.begin():
                    inspection = (
                        await session.scalars(
                            select(Inspection)
                            .where(Inspection.status == "processing")
                            .order_by(func.random())
                            .limit(1)
                            .with_for_update(skip_locked=True)
                        )
                    ).one_or_none()
                    if inspection is not None:
                        await finish(session, inspection, failed=rng.random() < 0.1, processing_time=0.01)
                await asyncio.sleep(0.002)

        async def watch_capacity() -> None:
            while not stop.is_set():
                async with engines[0].connect() as connection:
                    over = await connection.execute(
                        text(
                            "SELECT m.id FROM vision_orchestrator.machines m WHERE m.current_inspections > "
                            "m.max_concurrent_inspections OR (SELECT count(*) FROM vision_orchestrator.inspections i "
                            "WHERE i.assigned_machine_id = m.id AND i.status IN ('assigned', 'processing')) "
                            "> m.max_concurrent_inspections"
                        )
                    )
                    overfilled.extend(row[0] for row in over)
                await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(dispatcher.run()) for dispatcher in dispatchers]
        tasks += [asyncio.create_task(complete_some(seed)) for seed in (1, 2)]
        tasks.append(asyncio.create_task(watch_capacity()))

        async def all_finished() -> bool:
            async with test_sessions() as session:
                left = await session.scalar(
                    select(func.count())
                    .select_from(Inspection)
                    .where(Inspection.status.not_in(["completed", "failed"]))
                )
            return left == 0

        await wait_until(all_finished, within=120, what="every inspection to finish")
        stop.set()

        assert overfilled == []
        for dispatcher in dispatchers:
            assert dispatcher.stats["pass_errors"] == 0
            assert dispatcher.stats["record_errors"] == 0
        assert sum(d.stats["assigned"] for d in dispatchers) >= INSPECTIONS
        assert sum(d.stats["send_busy"] + d.stats["send_refused"] for d in dispatchers) > 0

        async with test_sessions() as session:
            inspections = {row.id: row for row in await session.scalars(select(Inspection))}
            history = list(await session.scalars(select(InspectionStatusChange).order_by(InspectionStatusChange.id)))
            machines = list(await session.scalars(select(Machine)))
        moves: dict[str, list[InspectionStatusChange]] = {}
        for change in history:
            moves.setdefault(change.inspection_id, []).append(change)
        garbage_machines = {machine_ids[3], machine_ids[7]}
        for inspection_id, changes in moves.items():
            previous = None
            for change in changes:
                assert change.from_status == previous, (
                    f"{inspection_id}: {[(c.from_status, c.to_status) for c in changes]}"
                )
                previous = change.to_status
            assignments = [c for c in changes if c.to_status == "assigned"]
            assert len(assignments) == inspections[inspection_id].lease
            assert inspections[inspection_id].assigned_machine_id not in garbage_machines
        assert all(machine.current_inspections == 0 for machine in machines)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for dispatcher in dispatchers:
            await dispatcher.close()
        for server in servers:
            await server.stop()
        for engine in engines:
            await engine.dispose()


@pytest.mark.asyncio(loop_scope="session")
async def test_end_to_end_with_the_simulated_fleet(own_database: str, infra_settings: InfraSettings) -> None:
    engine = create_engine(own_database)
    sessions = create_sessionmaker(engine)
    receiver = HttpServer(results_receiver(sessions))
    await receiver.start()
    app = create_app(settings_for(infra_settings, own_database, public_url=receiver.url))
    try:
        async with (
            MachineFleet(3, capacity=2, processing=ProcessingTime(0.05, "fixed"), failure_rate=0.2, seed=3) as fleet,
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
        ):
            async with sessions() as session, session.begin():
                for machine in fleet.machines:
                    machine.machine_id = await add_machine(session, machine.port, capacity=2)
                dead = await add_machine(session, 1, types=("color_filter",))
            operator = {"Authorization": f"Bearer {await operator_token(sessions, infra_settings, 'operator')}"}
            viewer = {"Authorization": f"Bearer {await operator_token(sessions, infra_settings, 'viewer')}"}

            created = []
            for index in range(12):
                answer = await client.post(
                    "/api/v1/inspections/",
                    headers=operator,
                    json={
                        "name": f"e2e {index}",
                        "inspection_type": "blob_detection",
                        "pipeline_config": PIPELINE,
                        "priority": 1 + index % 3,
                    },
                )
                assert answer.status_code == 201, answer.text
                created.append(answer.json()["id"])

            async def all_done() -> bool:
                async with sessions() as session:
                    left = await session.scalar(
                        select(func.count())
                        .select_from(Inspection)
                        .where(Inspection.id.in_(created), Inspection.status.not_in(["completed", "failed"]))
                    )
                return left == 0

            await wait_until(all_done, within=60, what="the fleet to finish every inspection")
            for inspection_id in created:
                detail = (await client.get(f"/api/v1/inspections/{inspection_id}/", headers=viewer)).json()
                assert [c["to_status"] for c in detail["history"]][:3] == ["pending", "assigned", "processing"]
                assert len(detail["results"]) == 1
            assert sum(machine.counts["accepted"] for machine in fleet.machines) == len(created)

            queue = await client.get("/api/v1/orchestrator/queue", headers=viewer)
            assert queue.status_code == 200, queue.text
            assert queue.json()["pending_inspections"] == []
            assignments = queue.json()["machine_assignments"]
            assert set(assignments) == {m.machine_id for m in fleet.machines} | {dead}
            assert assignments[dead]["current_inspections"] == 0

            # A machine that refuses the connection: the inspection stays pending with the reason, for a retry.
            answer = await client.post(
                "/api/v1/inspections/",
                headers=operator,
                json={"name": "colour", "inspection_type": "color_filter", "pipeline_config": PIPELINE},
            )
            colour = answer.json()["id"]
            forbidden = await client.post(
                "/api/v1/orchestrator/distribute/", headers=viewer, json={"inspection_id": colour}
            )
            assert forbidden.status_code == 403
            sent = await client.post(
                f"/api/v1/inspections/{colour}/send/", headers=operator, json={"target_machine_id": dead, "priority": 1}
            )
            if sent.status_code == 409:  # the dispatcher was quicker and met the same refusal
                await wait_until(lambda: _pending(sessions, colour), within=10, what="the refusal to be recorded")
            else:
                assert sent.status_code == 202, sent.text
                body = sent.json()
                assert body["delivered"] is False and "cannot reach" in body["reason"]
                assert body["inspection"]["status"] == "pending"
                assert body["inspection"]["target_machine_id"] == dead
            async with sessions() as session:
                row = await session.get(Inspection, colour)
                assert row is not None and row.last_dispatch_error is not None and row.dispatch_attempts >= 1

            wrong = await client.post(
                f"/api/v1/inspections/{colour}/send/",
                headers=operator,
                json={"target_machine_id": fleet.machines[0].machine_id},
            )
            assert wrong.status_code in (409, 422), wrong.text

            async with sessions() as session, session.begin():
                machine = await session.get(Machine, dead)
                assert machine is not None
                machine.maintenance = True
            await wait_until(lambda: _pending(sessions, colour), within=10, what="the inspection to be pending")
            refused = await client.post(
                "/api/v1/orchestrator/distribute",
                headers=operator,
                json={"inspection_id": colour, "strategy": "nearest"},
            )
            assert refused.status_code == 409, refused.text
            assert refused.json()["error"]["code"] == "no_machine_available"
            assert "offline or in maintenance" in refused.json()["error"]["details"]["reason"]
    finally:
        await receiver.stop()
        await engine.dispose()


async def _pending(sessions: async_sessionmaker[AsyncSession], inspection_id: str) -> bool:
    async with sessions() as session:
        row = await session.get(Inspection, inspection_id)
        return row is not None and row.status == "pending"

"""Dispatch against a database of its own (dispatchers commit, on engines of their own): two replicas under
concurrent results. End to end with the simulated fleet and the real webhooks is `test_end_to_end.py`.

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
from vision_orchestrator.tables import Inspection, InspectionResult, InspectionStatusChange, Machine

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.vision_machines import HttpServer  # noqa: E402

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
async def own_database(mirante_urls: StackUrls, migrated_template: str) -> AsyncIterator[str]:
    url = await create_test_database(mirante_urls.database_url, prefix="vision_dispatch", template=migrated_template)
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
async def test_a_wake_up_arriving_with_the_shutdown_does_not_keep_the_dispatcher_running(
    infra_settings: InfraSettings,
) -> None:
    settings = Settings(infra=infra_settings, dispatch_interval_seconds=60)
    for steps in range(6):
        dispatcher = Dispatcher(
            async_sessionmaker(), settings, MachineClient(connect_timeout=0.5, read_timeout=1.0), database_url=None
        )
        passed = asyncio.Event()

        async def no_work(*, chores: bool = True, passed: asyncio.Event = passed) -> int:
            passed.set()
            return 0

        dispatcher.run_pass = no_work  # type: ignore[method-assign]
        task = asyncio.create_task(dispatcher.run())
        await passed.wait()
        await asyncio.sleep(0)  # into its wait for the next wake-up
        # The wake-up and the cancellation land together, a few loop steps apart.
        dispatcher.wake()
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=10)
        await dispatcher.close()
        assert done, f"the dispatcher kept running after a wake-up {steps} step(s) before its cancellation"


@pytest.mark.asyncio(loop_scope="session")
async def test_a_machine_filled_between_the_plan_and_its_lock_sends_the_work_elsewhere_on_the_next_pass(
    own_database: str, infra_settings: InfraSettings
) -> None:
    """The dispatcher plans on an unlocked read and locks only the machines it chose: when the chosen one fills
    up before its lock is granted, the inspection stays pending, a pass follows at once, and that pass places it
    on the machine that still has room."""
    settings = settings_for(infra_settings, own_database)
    engines = [create_engine(own_database) for _ in range(2)]
    server = HttpServer(machine_app(refuse_every=1_000_000))
    await server.start()
    test_sessions = create_sessionmaker(engines[0])
    dispatcher = Dispatcher(
        create_sessionmaker(engines[1]), settings, MachineClient(connect_timeout=0.5, read_timeout=1.0)
    )
    try:
        async with capacity_checked(engines[0]):
            pass
        async with test_sessions() as session, session.begin():
            idle = await add_machine(session, server.port, capacity=1)
            half = await add_machine(session, server.port, capacity=2)
            await session.execute(
                text("UPDATE vision_orchestrator.machines SET current_inspections = 1 WHERE id = :id"), {"id": half}
            )
            inspection_id = await add_inspection(session)

        async with engines[0].connect() as blocker:
            transaction = await blocker.begin()
            # Another replica's assignment to the idle machine, not committed yet: the plan still sees it free.
            await blocker.execute(
                text(
                    "UPDATE vision_orchestrator.machines SET current_inspections = current_inspections + 1 "
                    "WHERE id = :id"
                ),
                {"id": idle},
            )
            first = asyncio.create_task(dispatcher.run_pass(chores=False))

            async def waiting_for_the_lock() -> bool:
                async with engines[0].connect() as connection:
                    waiting = await connection.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND wait_event_type = 'Lock'"
                        )
                    )
                return bool(waiting)

            await wait_until(waiting_for_the_lock, within=10, what="the pass to wait for the idle machine's lock")
            await transaction.commit()
            assert await asyncio.wait_for(first, 10) == 0
        assert dispatcher.stats["replanned"] == 1
        assert dispatcher._wake.is_set()

        assert await dispatcher.run_pass(chores=False) == 1
        await dispatcher.drain()
        async with test_sessions() as session:
            inspection = await session.get(Inspection, inspection_id)
            assert inspection is not None
            assert inspection.assigned_machine_id == half
            assert inspection.status == "processing"
    finally:
        await dispatcher.close()
        await server.stop()
        for engine in engines:
            await engine.dispose()

"""Giving inspections to machines, on databases of their own (the dispatchers commit, on engines of their own):

- an assignment whose machine's answer was never recorded (a replica died between its commit and the call) is
  sent again under the same attempt by the periodic pass, which a machine that has it answers as a duplicate;
- `/inspections/{id}/send/` to a machine that refuses answers 202 with the reason, the inspection pending for
  that machine, and a dispatcher tries again with backoff until the machine takes it;
- `/orchestrator/distribute/` answers 409 naming why no machine can take the inspection, and changes nothing;
  a body naming a machine that does not exist is a 404 naming the field, before anything is tried.

The machines are small scripted HTTP servers; the app runs under uvicorn with its dispatcher off, so the only
dispatcher that moves work is the one a test starts.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select, text
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
from mirante.testing.browser import LiveServer
from mirante.testing.database import create_test_database, drop_test_database
from mirante.testing.streams import wait_until
from vision_orchestrator.config import Settings
from vision_orchestrator.dispatch.client import MachineClient
from vision_orchestrator.dispatch.dispatcher import Dispatcher
from vision_orchestrator.main import create_app
from vision_orchestrator.tables import Inspection, InspectionStatusChange, Machine

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.vision_machines import HttpServer  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="session")

API = "/api/v1"
PIPELINE = {
    "tools": [
        {"name": "image_source", "parameters": {"source_type": "file", "file_path": "/images/a.jpg"}},
        {"name": "blob_detection", "parameters": {"min_area": 100, "max_area": 10000, "threshold": 128}},
    ],
    "connections": [{"from": "image_source", "to": "blob_detection"}],
}
RETRY_BASE = 0.05


@dataclass
class ScriptedMachine:
    """A machine's HTTP API that answers sends with `answers` in turn (status, error code, headers), then takes
    them; an inspection it holds sent again under the same attempt answers 200, a duplicate."""

    answers: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    held: set[tuple[str, int]] = field(default_factory=set)

    def app(self) -> Starlette:
        async def take(request: Request) -> Response:
            order = await request.json()
            self.orders.append(order)
            key = (order["inspection_id"], order["attempt"])
            if key in self.held:
                view = {"inspection_id": key[0], "attempt": key[1], "status": "processing", "duplicate": True}
                return JSONResponse(view, 200)
            if self.answers:
                status, code, headers = self.answers.pop(0)
                return JSONResponse({"error": {"code": code, "message": f"scripted {code}"}}, status, headers=headers)
            self.held.add(key)
            view = {"inspection_id": key[0], "attempt": key[1], "status": "processing", "duplicate": False}
            return JSONResponse(view, 202)

        return Starlette(routes=[Route("/api/v1/inspections/", take, methods=["POST"])])


@asynccontextmanager
async def machines_up(*machines: ScriptedMachine) -> AsyncIterator[list[HttpServer]]:
    servers = [HttpServer(machine.app()) for machine in machines]
    try:
        for server in servers:
            await server.start()
        yield servers
    finally:
        for server in servers:
            await server.stop()


def closed_port() -> int:
    """A port of 127.0.0.1 nobody listens on: a machine that is down."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def settings_for(infra: InfraSettings, database_url: str, **overrides: Any) -> Settings:
    own = infra.model_copy(update={"database": DatabaseSettings(url=database_url, pool_size=5, max_overflow=5)})
    values: dict[str, Any] = {
        "dispatch_interval_seconds": 0.3,
        "dispatch_retry_base_seconds": RETRY_BASE,
        "dispatch_retry_cap_seconds": 0.5,
        "machine_connect_timeout_seconds": 0.5,
        "machine_read_timeout_seconds": 1.0,
        "listen_retry_base_seconds": 0.05,
        "listen_retry_cap_seconds": 0.5,
        "user_rate_limit": None,
    }
    return Settings(infra=own, **(values | overrides))


@pytest_asyncio.fixture(loop_scope="session")
async def own_database(mirante_urls: StackUrls) -> AsyncIterator[str]:
    url = await create_test_database(mirante_urls.database_url, prefix="vision_sends")
    try:
        yield url
    finally:
        await drop_test_database(mirante_urls.database_url, url)


@pytest_asyncio.fixture(loop_scope="session")
async def engine(own_database: str) -> AsyncIterator[AsyncEngine]:
    made = create_engine(own_database)
    try:
        yield made
    finally:
        await made.dispose()


@dataclass
class Orchestrator:
    """The app under uvicorn with its dispatcher off, an admin's client on it, and the database it uses."""

    http: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings

    async def register(self, port: int, *, capacity: int = 1, online: bool = True, **fields: Any) -> str:
        body = {
            "name": f"MV-{uuid.uuid4().hex[:8]}",
            "ip_address": "127.0.0.1",
            "port": port,
            "max_concurrent_inspections": capacity,
            "supported_inspection_types": ["blob_detection"],
            **fields,
        }
        answer = await self.http.post(f"{API}/machines/", json=body)
        assert answer.status_code == 201, answer.text
        machine_id: str = answer.json()["id"]
        if online:
            async with self.sessions() as session, session.begin():
                await session.execute(
                    text("UPDATE vision_orchestrator.machines SET status = 'online' WHERE id = :id"), {"id": machine_id}
                )
        return machine_id

    async def create(self, **fields: Any) -> str:
        body = {"name": "send test", "inspection_type": "blob_detection", "pipeline_config": PIPELINE, **fields}
        answer = await self.http.post(f"{API}/inspections/", json=body)
        assert answer.status_code == 201, answer.text
        inspection_id: str = answer.json()["id"]
        return inspection_id

    async def row(self, inspection_id: str) -> Inspection:
        async with self.sessions() as session:
            found = await session.get(Inspection, inspection_id)
        assert found is not None
        return found

    async def moves(self, inspection_id: str) -> list[str]:
        async with self.sessions() as session:
            changes = await session.scalars(
                select(InspectionStatusChange.to_status)
                .where(InspectionStatusChange.inspection_id == inspection_id)
                .order_by(InspectionStatusChange.id)
            )
            return list(changes)

    async def machine(self, machine_id: str) -> Machine:
        async with self.sessions() as session:
            found = await session.get(Machine, machine_id)
        assert found is not None
        return found


@pytest_asyncio.fixture(loop_scope="session")
async def orchestrator(
    own_database: str, engine: AsyncEngine, infra_settings: InfraSettings
) -> AsyncIterator[Orchestrator]:
    settings = settings_for(infra_settings, own_database, dispatcher_enabled=False)
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        admin = await create_user(
            session, username=f"sends-{uuid.uuid4().hex[:8]}", password="sends-password-1234", role="admin"
        )
    token = issue_token(TokenCodec.from_settings(infra_settings.jwt), admin).token
    server = LiveServer(create_app(settings), name="vision-sends")
    async with (
        server,
        httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
    ):
        yield Orchestrator(http, sessions, settings)


@asynccontextmanager
async def dispatcher_running(orchestrator: Orchestrator, database_url: str) -> AsyncIterator[Dispatcher]:
    """A dispatcher of another replica, on an engine of its own."""
    engine = create_engine(database_url)
    dispatcher = Dispatcher(
        create_sessionmaker(engine),
        orchestrator.settings,
        MachineClient(connect_timeout=0.5, read_timeout=1.0),
        database_url=database_url,
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await dispatcher.close()
        await engine.dispose()


async def test_send_to_a_refusing_machine_answers_202_and_the_dispatcher_retries_until_it_takes_it(
    orchestrator: Orchestrator, own_database: str
) -> None:
    # Refuses the first send as invalid, is busy for the second (Retry-After: 0), takes the third.
    picky = ScriptedMachine(answers=[(422, "unsupported_tool", {}), (503, "at_capacity", {"Retry-After": "0"})])
    async with machines_up(picky) as servers:
        machine_id = await orchestrator.register(servers[0].port)
        down_id = await orchestrator.register(closed_port())
        inspection_id = await orchestrator.create()
        unsent_id = await orchestrator.create()
        before = datetime.now(UTC)

        answer = await orchestrator.http.post(
            f"{API}/inspections/{inspection_id}/send/", json={"target_machine_id": machine_id, "priority": 2}
        )

        assert answer.status_code == 202, answer.text
        result = answer.json()
        assert (result["machine_id"], result["delivered"]) == (machine_id, False)
        assert result["reason"] == "machine refused it: unsupported_tool: scripted unsupported_tool"
        next_attempt = datetime.fromisoformat(result["next_attempt_at"])
        assert before <= next_attempt <= datetime.now(UTC) + timedelta(seconds=RETRY_BASE)
        inspection = result["inspection"]
        assert (inspection["status"], inspection["target_machine_id"], inspection["priority"]) == (
            "pending",
            machine_id,
            2,
        )
        assert inspection["assigned_machine_id"] is None
        assert inspection["dispatch_attempts"] == 1
        assert inspection["last_dispatch_error"] == f"{machine_id}: {result['reason']}"
        assert [change["to_status"] for change in inspection["history"]] == ["pending", "assigned", "pending"]
        assert [order["attempt"] for order in picky.orders] == [1]
        assert (await orchestrator.machine(machine_id)).current_inspections == 0

        unreachable = await orchestrator.http.post(
            f"{API}/inspections/{unsent_id}/send/", json={"target_machine_id": down_id}
        )
        assert unreachable.status_code == 202, unreachable.text
        assert unreachable.json()["reason"].startswith("cannot reach http://127.0.0.1:")
        assert unreachable.json()["inspection"]["status"] == "pending"

        # Next: a dispatcher gives it to that machine again (no other would do: it is the target now), with
        # backoff, until the machine takes it.
        async with dispatcher_running(orchestrator, own_database) as dispatcher:

            async def taken() -> bool:
                return (await orchestrator.row(inspection_id)).status == "processing"

            await wait_until(taken, within=30, what="the refused inspection to be taken on a later try")
            assert dispatcher.stats["send_busy"] >= 1
            assert dispatcher.stats["send_unreachable"] >= 1  # the other one, still tried with backoff
        done = await orchestrator.row(inspection_id)
        assert (done.assigned_machine_id, done.lease, done.dispatch_attempts) == (machine_id, 3, 2)
        assert done.last_dispatch_error == f"{machine_id}: machine busy (at_capacity: scripted at_capacity)"
        assert [order["attempt"] for order in picky.orders] == [1, 2, 3]
        assert all(order["priority"] == 2 for order in picky.orders)
        assert await orchestrator.moves(inspection_id) == [
            "pending",
            "assigned",
            "pending",
            "assigned",
            "pending",
            "assigned",
            "processing",
        ]
        assert (await orchestrator.machine(machine_id)).current_inspections == 1
        still = await orchestrator.row(unsent_id)
        assert (still.status, still.target_machine_id) == ("pending", down_id)
        assert still.dispatch_attempts >= 2


async def test_distribute_answers_409_naming_why_no_machine_can_take_it_and_changes_nothing(
    orchestrator: Orchestrator,
) -> None:
    busy = ScriptedMachine(answers=[(503, "at_capacity", {"Retry-After": "30"})])
    async with machines_up(busy) as servers:
        full = await orchestrator.register(servers[0].port, capacity=1, location="Linha Z")
        offline = await orchestrator.register(servers[0].port, online=False)
        other_kind = await orchestrator.register(servers[0].port, supported_inspection_types=["edge_detection"])
        async with orchestrator.sessions() as session, session.begin():
            await session.execute(
                text("UPDATE vision_orchestrator.machines SET current_inspections = 1 WHERE id = :id"), {"id": full}
            )
        inspection_id = await orchestrator.create()

        async def distribute(**fields: Any) -> httpx.Response:
            return await orchestrator.http.post(
                f"{API}/orchestrator/distribute/", json={"inspection_id": inspection_id, **fields}
            )

        refusals = {
            "load_balanced": (await distribute(), "the 1 available machine(s) running blob_detection are at capacity"),
            "nearest": (
                await distribute(strategy="nearest", location="Linha Z"),
                "the 1 available machine(s) running blob_detection are at capacity",
            ),
            "offline target": (
                await distribute(target_machine_id=offline),
                f"its target machine {offline} is offline or in maintenance",
            ),
            "full target": (
                await distribute(strategy="specialized", target_machine_id=full),
                f"its target machine {full} is at capacity (1/1)",
            ),
            "wrong type": (
                await distribute(target_machine_id=other_kind),
                f"its target machine {other_kind} does not run blob_detection",
            ),
        }
        for case, (answer, reason) in refusals.items():
            assert answer.status_code == 409, (case, answer.text)
            error = answer.json()["error"]
            assert (error["code"], error["details"]) == ("no_machine_available", {"reason": reason}), case
            assert reason in error["message"], case

        untouched = await orchestrator.row(inspection_id)
        assert (untouched.status, untouched.lease, untouched.dispatch_attempts) == ("pending", 0, 0)
        assert untouched.last_dispatch_error is None
        assert await orchestrator.moves(inspection_id) == ["pending"]
        assert busy.orders == []

        # A slot frees: distribute gives it to that machine, which is busy after all: 202, pending again.
        async with orchestrator.sessions() as session, session.begin():
            await session.execute(
                text("UPDATE vision_orchestrator.machines SET current_inspections = 0 WHERE id = :id"), {"id": full}
            )
        refused = await distribute()
        assert refused.status_code == 202, refused.text
        assert (refused.json()["machine_id"], refused.json()["delivered"]) == (full, False)
        assert refused.json()["inspection"]["status"] == "pending"
        next_attempt = datetime.fromisoformat(refused.json()["next_attempt_at"])
        assert next_attempt >= datetime.now(UTC) + timedelta(seconds=20)  # the machine's Retry-After: 30

        cancelled = await orchestrator.http.post(f"{API}/inspections/{inspection_id}/cancel/")
        assert cancelled.status_code == 200, cancelled.text
        not_pending = await distribute()
        assert not_pending.status_code == 409
        assert not_pending.json()["error"]["code"] == "inspection_not_pending"
        unknown = await orchestrator.http.post(
            f"{API}/orchestrator/distribute/", json={"inspection_id": "ins_000000000000"}
        )
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "inspection_not_found"
        assert unknown.json()["error"]["details"] == {"field": "inspection_id"}


async def test_a_body_naming_a_machine_that_does_not_exist_is_404_naming_the_field(
    orchestrator: Orchestrator,
) -> None:
    async with machines_up(ScriptedMachine()) as servers:
        machine_id = await orchestrator.register(servers[0].port, capacity=2)
        other_kind = await orchestrator.register(servers[0].port, supported_inspection_types=["edge_detection"])
        inspection_id = await orchestrator.create()
        nothing = "mv_000000000000"

        refusals = {
            "distribute, target": (
                await orchestrator.http.post(
                    f"{API}/orchestrator/distribute/",
                    json={"inspection_id": inspection_id, "target_machine_id": nothing},
                ),
                {"field": "target_machine_id"},
            ),
            "distribute, preferred": (
                await orchestrator.http.post(
                    f"{API}/orchestrator/distribute/",
                    json={"inspection_id": inspection_id, "preferred_machines": [machine_id, nothing]},
                ),
                {"field": "preferred_machines", "machine_ids": [nothing]},
            ),
            "send": (
                await orchestrator.http.post(
                    f"{API}/inspections/{inspection_id}/send/", json={"target_machine_id": nothing}
                ),
                {"field": "target_machine_id"},
            ),
        }
        for case, (answer, details) in refusals.items():
            assert answer.status_code == 404, (case, answer.text)
            error = answer.json()["error"]
            assert (error["code"], error["details"]) == ("machine_not_found", details), case

        lacking = await orchestrator.http.post(
            f"{API}/inspections/{inspection_id}/send/", json={"target_machine_id": other_kind}
        )
        assert lacking.status_code == 409, lacking.text
        assert lacking.json()["error"]["code"] == "machine_lacks_type"
        assert lacking.json()["error"]["details"] == {"field": "target_machine_id", "inspection_type": "blob_detection"}

        untouched = await orchestrator.row(inspection_id)
        assert (untouched.status, untouched.target_machine_id, untouched.dispatch_attempts) == ("pending", None, 0)
        assert await orchestrator.moves(inspection_id) == ["pending"]


async def test_an_assignment_never_answered_is_sent_again_under_the_same_attempt(
    own_database: str, engine: AsyncEngine, infra_settings: InfraSettings
) -> None:
    settings = settings_for(infra_settings, own_database, delivery_timeout_seconds=30)
    sessions = create_sessionmaker(engine)
    holder, fresh = ScriptedMachine(), ScriptedMachine()
    now = datetime.now(UTC)
    long_ago, just_now = now - timedelta(seconds=120), now - timedelta(seconds=1)
    async with machines_up(holder, fresh) as servers:
        async with sessions() as session, session.begin():

            def machine(port: int, held: int, status: str = "online") -> str:
                machine_id = f"mv_{uuid.uuid4().hex[:12]}"
                session.add(
                    Machine(
                        id=machine_id,
                        name=f"resend-{machine_id}",
                        ip_address="127.0.0.1",
                        port=port,
                        status=status,
                        max_concurrent_inspections=2,
                        current_inspections=held,
                        supported_inspection_types=["blob_detection"],
                    )
                )
                return machine_id

            def assigned(machine_id: str, at: datetime) -> str:
                inspection_id = f"ins_{uuid.uuid4().hex[:12]}"
                session.add(
                    Inspection(
                        id=inspection_id,
                        name="resend test",
                        inspection_type="blob_detection",
                        pipeline_config=PIPELINE,
                        status="assigned",
                        assigned_machine_id=machine_id,
                        assigned_at=at,
                        lease=1,
                    )
                )
                return inspection_id

            has_it = machine(servers[0].port, held=2)
            lost_it = machine(servers[1].port, held=1)
            down = machine(closed_port(), held=1)
            gone = machine(servers[0].port, held=1, status="offline")
            await session.flush()
            answered_late = assigned(has_it, long_ago)  # the machine got it; its answer was never recorded
            recent = assigned(has_it, just_now)  # still within the delivery timeout: left alone
            never_arrived = assigned(lost_it, long_ago)  # the call never happened
            unreachable = assigned(down, long_ago)
            on_offline = assigned(gone, long_ago)  # the offline machine's work is re-queued after a grace instead
        holder.held.add((answered_late, 1))

        dispatcher = Dispatcher(
            sessions, settings, MachineClient(connect_timeout=0.5, read_timeout=1.0), database_url=own_database
        )
        try:
            assert await dispatcher.resend_undelivered() == 3
            await dispatcher.drain()
        finally:
            await dispatcher.close()

    async with sessions() as session:
        rows = {row.id: row for row in await session.scalars(select(Inspection))}
        machines = {row.id: row for row in await session.scalars(select(Machine))}
    assert [(order["inspection_id"], order["attempt"]) for order in holder.orders] == [(answered_late, 1)]
    assert [(order["inspection_id"], order["attempt"]) for order in fresh.orders] == [(never_arrived, 1)]
    for taken in (answered_late, never_arrived):
        assert (rows[taken].status, rows[taken].lease, rows[taken].dispatch_attempts) == ("processing", 1, 0)
    assert (rows[recent].status, rows[recent].assigned_at) == ("assigned", just_now)
    assert rows[on_offline].status == "assigned"
    touched = rows[answered_late].assigned_at
    assert touched is not None and touched > now  # touched when sent again, so a pass does not send it twice
    back = rows[unreachable]
    assert (back.status, back.assigned_machine_id, back.dispatch_attempts) == ("pending", None, 1)
    assert back.last_dispatch_error is not None and back.last_dispatch_error.startswith(f"{down}: cannot reach")
    assert (machines[has_it].current_inspections, machines[lost_it].current_inspections) == (2, 1)
    assert machines[down].current_inspections == 0
    assert dispatcher.stats["resent"] == 3
    assert dispatcher.stats["delivered"] == 2

"""End to end with the real pieces: the app served by uvicorn on 127.0.0.1, with its dispatcher, presence sweep and
webhooks, and a simulated fleet (scripts/simulators/vision_machines.py) that registers through the API,
heartbeats, takes the inspections the dispatcher gives it (checking the orchestrator's signatures) and posts
results to the real webhooks.

Inspections created through the API are dispatched on their own and end completed or failed as the fleet's
seeded plan says. Then a machine dies holding work: it turns offline, its work goes back to the queue after the
grace period and is done elsewhere under a new attempt, a late result of the old attempt is refused 409, and
when the machine comes back it is told to drop what was re-queued.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

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
from vision_orchestrator.main import create_app
from vision_orchestrator.tables import Inspection, MachineDrop

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.vision_machines import MachineFleet, ProcessingTime, SimulatedMachine  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="session")

API = "/api/v1"
PIPELINE = {
    "tools": [
        {"name": "image_source", "parameters": {"source_type": "file", "file_path": "/images/a.jpg"}},
        {"name": "blob_detection", "parameters": {"min_area": 100, "max_area": 10000, "threshold": 128}},
    ],
    "connections": [{"from": "image_source", "to": "blob_detection"}],
}


@pytest_asyncio.fixture(loop_scope="session")
async def own_database(mirante_urls: StackUrls, migrated_template: str) -> AsyncIterator[str]:
    url = await create_test_database(mirante_urls.database_url, prefix="vision_e2e", template=migrated_template)
    try:
        yield url
    finally:
        await drop_test_database(mirante_urls.database_url, url)


async def test_a_fleet_works_through_the_real_app_and_survives_a_dying_machine(
    own_database: str, infra_settings: InfraSettings
) -> None:
    infra = infra_settings.model_copy(update={"database": DatabaseSettings(url=own_database, pool_size=5)})
    settings = Settings(
        infra=infra,
        dispatch_interval_seconds=0.3,
        dispatch_retry_base_seconds=0.05,
        dispatch_retry_cap_seconds=0.5,
        machine_connect_timeout_seconds=0.5,
        machine_read_timeout_seconds=1.0,
        machine_offline_after_seconds=1.0,
        presence_check_interval_seconds=0.2,
        offline_requeue_grace_seconds=0.5,
        delivery_timeout_seconds=5.0,
        user_rate_limit=None,
    )
    app = create_app(settings)
    server = LiveServer(app, name="vision-e2e")
    settings.public_url = server.url  # the callbacks the machines are given
    engine = create_engine(own_database)
    sessions = create_sessionmaker(engine)
    codec = TokenCodec.from_settings(infra_settings.jwt)
    async with sessions() as session, session.begin():
        admin = await create_user(
            session, username=f"e2e-{uuid.uuid4().hex[:8]}", password="e2e-password-1234", role="admin"
        )
    headers = {"Authorization": f"Bearer {issue_token(codec, admin).token}"}
    try:
        async with (
            server,
            # The last machine is slow (its inspections take 20 s): the one that dies holding work.
            MachineFleet(
                3,
                capacity=2,
                processing=ProcessingTime(0.2, "fixed"),
                failure_rate=0.3,
                slow_machines=1,
                slow_factor=100,
                heartbeat_interval=0.3,
                require_signature=True,
                seed=11,
            ) as fleet,
            httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as client,
        ):
            await fleet.register(server.url, token=headers["Authorization"].removeprefix("Bearer "))
            by_id = {str(machine.machine_id): machine for machine in fleet.machines}
            fast, slow = fleet.machines[:2], fleet.machines[2]

            async def set_maintenance(machine: SimulatedMachine, on: bool) -> None:
                answer = await client.patch(f"{API}/machines/{machine.machine_id}/", json={"maintenance": on})
                assert answer.status_code == 200, answer.text

            async def statuses() -> dict[str, str]:
                listed = (await client.get(f"{API}/machines/", params={"page_size": 100})).json()["results"]
                return {item["id"]: item["status"] for item in listed}

            async def fleet_online() -> bool:
                return set((await statuses()).values()) <= {"online", "busy"}

            await wait_until(fleet_online, within=30, what="every machine's first heartbeat")

            async def create(count: int, label: str) -> list[str]:
                created = []
                for index in range(count):
                    answer = await client.post(
                        f"{API}/inspections/",
                        json={
                            "name": f"{label} {index}",
                            "inspection_type": "blob_detection",
                            "pipeline_config": PIPELINE,
                            "priority": 1 + index % 3,
                        },
                    )
                    assert answer.status_code == 201, answer.text
                    created.append(answer.json()["id"])
                return created

            async def rows(ids: list[str]) -> list[Inspection]:
                async with sessions() as session:
                    return list(await session.scalars(select(Inspection).where(Inspection.id.in_(ids))))

            async def finished(ids: list[str]) -> bool:
                return all(row.status in ("completed", "failed") for row in await rows(ids))

            def assert_as_planned(done: list[Inspection]) -> None:
                for row in done:
                    machine = by_id[str(row.assigned_machine_id)]
                    planned = "failed" if machine.plan(row.id, row.lease).fails else "completed"
                    assert row.status == planned, (row.id, row.lease, row.status)

            # 1. Dispatched on their own to the fast machines, ended as the seeded plan says.
            await set_maintenance(slow, True)
            first = await create(10, "batch")
            await wait_until(lambda: finished(first), within=60, what="the fleet to finish the first batch")
            done = await rows(first)
            assert_as_planned(done)
            assert {row.status for row in done} == {"completed", "failed"}
            assert {str(row.assigned_machine_id) for row in done} <= {str(m.machine_id) for m in fast}
            assert sum(m.counts["refused_unsigned"] for m in fleet.machines) == 0
            assert sum(m.counts["accepted"] for m in fast) >= len(first)

            # 2. Only the slow machine may take work; it dies holding two inspections.
            for machine in fast:
                await set_maintenance(machine, True)
            await set_maintenance(slow, False)
            second = await create(2, "stranded")

            async def held_by_slow() -> bool:
                return all(
                    row.status == "processing" and row.assigned_machine_id == slow.machine_id
                    for row in await rows(second)
                )

            await wait_until(held_by_slow, within=30, what="the slow machine to take the second batch")
            first_attempts = {row.id: row.lease for row in await rows(second)}
            await slow.die()
            for machine in fast:
                await set_maintenance(machine, False)

            async def slow_offline() -> bool:
                return (await statuses())[str(slow.machine_id)] == "offline"

            await wait_until(slow_offline, within=30, what="the dead machine to turn offline")
            await wait_until(lambda: finished(second), within=60, what="the stranded work to be done elsewhere")
            redone = await rows(second)
            assert_as_planned(redone)
            for row in redone:
                assert row.assigned_machine_id != slow.machine_id
                assert row.lease > first_attempts[row.id]
                history = (await client.get(f"{API}/inspections/{row.id}/")).json()["history"]
                assert [change["to_status"] for change in history][:5] == [
                    "pending",
                    "assigned",
                    "processing",
                    "pending",
                    "assigned",
                ]

            # A result of the old attempt arriving late is refused: the work went to another machine.
            late = {
                "machine_id": slow.machine_id,
                "inspection_id": second[0],
                "status": "completed",
                "results": {"processing_time": 1.0},
                "timestamp": datetime.now(UTC).isoformat(),
                "attempt": first_attempts[second[0]],
            }
            refused = await client.post(
                f"{API}/webhooks/results/", json=late, headers={"Authorization": f"Bearer {slow.credential}"}
            )
            assert refused.status_code == 409, refused.text
            assert refused.json()["error"]["code"] == "stale_attempt"

            # 3. Back, the machine is told to drop each re-queued inspection (it lost them: 404, which settles it).
            await slow.revive()

            async def drops_settled() -> bool:
                async with sessions() as session:
                    drops = list(
                        await session.scalars(select(MachineDrop).where(MachineDrop.machine_id == slow.machine_id))
                    )
                return len(drops) == len(second) and all(drop.settled_at is not None for drop in drops)

            await wait_until(drops_settled, within=30, what="the revived machine to be told to drop its old work")
            async with sessions() as session:
                drops = list(
                    await session.scalars(select(MachineDrop).where(MachineDrop.machine_id == slow.machine_id))
                )
            assert {drop.inspection_id for drop in drops} == set(second)
            assert {drop.reason for drop in drops} == {"reassigned"}
            assert {drop.outcome for drop in drops} == {"unknown"}
            assert (await statuses())[str(slow.machine_id)] in ("online", "busy")
    finally:
        await engine.dispose()

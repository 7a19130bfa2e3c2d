"""The dashboard over HTTP on real data: machines and inspections moved through the status flow with
`inspections.service.transition`, then the totals, health and performance read back.

Counts are compared before and after each test's own changes, so rows other tests of the run committed do not
matter; the health rule itself is checked on its own in `judge`'s tests.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.testing.plugin import HeadersFactory
from vision_orchestrator.dashboard.health import Health, Signals, judge
from vision_orchestrator.inspections import repository, service
from vision_orchestrator.lifecycle import InspectionStatus
from vision_orchestrator.tables import Inspection, InspectionResult, Machine

DASHBOARD = "/api/v1/dashboard/"
PIPELINE = {"tools": [{"name": "image_source"}, {"name": "blob_detection"}], "connections": []}


async def read(client: httpx.AsyncClient, headers: dict[str, str], path: str = DASHBOARD) -> dict[str, Any]:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def add_machine(client: httpx.AsyncClient, admin: dict[str, str], **changes: Any) -> str:
    response = await client.post(
        "/api/v1/machines/",
        json={
            "name": f"MV-{uuid.uuid4().hex[:8]}",
            "ip_address": "10.0.0.7",
            "port": 5000,
            "max_concurrent_inspections": 4,
            "supported_inspection_types": ["blob_detection"],
            **changes,
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    machine_id: str = response.json()["id"]
    return machine_id


async def add_inspection(client: httpx.AsyncClient, operator: dict[str, str]) -> str:
    body = {"name": "Inspeção", "inspection_type": "blob_detection", "pipeline_config": PIPELINE}
    response = await client.post("/api/v1/inspections/", json=body, headers=operator)
    assert response.status_code == 201, response.text
    inspection_id: str = response.json()["id"]
    return inspection_id


async def move(session: AsyncSession, inspection_id: str, *targets: InspectionStatus, machine_id: str) -> None:
    for target in targets:
        row = await repository.get_inspection(session, inspection_id, for_update=True)
        assert row is not None
        await service.transition(session, row, target, actor="system", machine_id=machine_id)


def difference(after: dict[str, Any], before: dict[str, Any], *keys: str) -> dict[str, int]:
    return {key: after[key] - before[key] for key in keys}


COUNTS = (
    "total_machines",
    "online_machines",
    "maintenance_machines",
    "total_inspections",
    "pending_inspections",
    "processing_inspections",
    "completed_inspections",
    "failed_inspections",
    "cancelled_inspections",
)


async def test_totals_follow_machines_and_inspections_through_the_flow(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    admin, operator, viewer = [await auth_headers(role) for role in ("admin", "operator", "viewer")]
    before = await read(client, viewer)
    online = await add_machine(client, admin)
    await add_machine(client, admin)
    await add_machine(client, admin, maintenance=True)
    await db_session.execute(update(Machine).where(Machine.id == online).values(status="busy"))
    ids = [await add_inspection(client, operator) for _ in range(6)]
    await move(db_session, ids[1], InspectionStatus.assigned, machine_id=online)
    await move(db_session, ids[2], InspectionStatus.assigned, InspectionStatus.processing, machine_id=online)
    await move(db_session, ids[3], InspectionStatus.assigned, InspectionStatus.completed, machine_id=online)
    await move(db_session, ids[4], InspectionStatus.assigned, InspectionStatus.failed, machine_id=online)
    await move(db_session, ids[5], InspectionStatus.cancelled, machine_id=online)

    after = await read(client, viewer)

    assert difference(after, before, *COUNTS) == {
        "total_machines": 3,
        "online_machines": 1,
        "maintenance_machines": 1,
        "total_inspections": 6,
        "pending_inspections": 1,
        "processing_inspections": 2,
        "completed_inspections": 1,
        "failed_inspections": 1,
        "cancelled_inspections": 1,
    }
    assert after["system_health"] in {"good", "degraded", "critical"}
    assert after["window_minutes"] == 60


async def test_performance_uses_reported_times_else_measured_ones_over_the_window(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    admin, operator = await auth_headers("admin"), await auth_headers("operator")
    machine_id = await add_machine(client, admin)
    before = await read(client, operator)
    ids = [await add_inspection(client, operator) for _ in range(4)]
    for inspection_id in ids[:3]:
        await move(
            db_session, inspection_id, InspectionStatus.assigned, InspectionStatus.processing, machine_id=machine_id
        )
    await move(db_session, ids[0], InspectionStatus.completed, machine_id=machine_id)
    await move(db_session, ids[1], InspectionStatus.completed, machine_id=machine_id)
    await move(db_session, ids[2], InspectionStatus.failed, machine_id=machine_id)
    await move(db_session, ids[3], InspectionStatus.assigned, InspectionStatus.completed, machine_id=machine_id)
    # ids[0]: the machine reported 2 s; ids[1]: no result, processed for 4 s; ids[3]: finished a day ago.
    db_session.add(
        InspectionResult(
            inspection_id=ids[0],
            machine_id=machine_id,
            idempotency_key="k",
            status="completed",
            processing_time_seconds=2.0,
        )
    )
    await db_session.execute(
        update(Inspection)
        .where(Inspection.id == ids[1])
        .values(started_at=Inspection.finished_at - timedelta(seconds=4))
    )
    await db_session.execute(
        update(Inspection).where(Inspection.id == ids[3]).values(finished_at=Inspection.finished_at - timedelta(days=1))
    )
    await db_session.flush()

    after = await read(client, operator)

    finished_before = before["performance_metrics"]["throughput_per_hour"]
    assert after["performance_metrics"]["throughput_per_hour"] == pytest.approx(finished_before + 3)
    if finished_before == 0:
        assert after["performance_metrics"]["average_processing_time"] == pytest.approx(3.0)
        assert after["performance_metrics"]["success_rate"] == pytest.approx(66.7)


async def test_a_long_wait_in_the_queue_makes_the_system_critical(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    operator = await auth_headers("operator")
    inspection_id = await add_inspection(client, operator)
    await db_session.execute(
        update(Inspection)
        .where(Inspection.id == inspection_id)
        .values(queued_at=Inspection.queued_at - timedelta(hours=2))
    )

    body = await read(client, operator)

    assert body["system_health"] == "critical"
    assert any("oldest pending inspection has waited" in reason for reason in body["health_reasons"])


async def test_the_path_without_its_slash_answers_too_and_anonymous_callers_are_refused(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    viewer = await auth_headers("viewer")
    with_slash = await read(client, viewer)
    without = await read(client, viewer, "/api/v1/dashboard")
    assert without.keys() == with_slash.keys()
    assert (await client.get(DASHBOARD)).status_code == 401
    assert (await client.get(DASHBOARD, headers=await auth_headers("admin", tenant="acme"))).status_code == 403


# -- the health rule ------------------------------------------------------------------------------------------


def signals(**changes: Any) -> Signals:
    values: dict[str, Any] = {
        "machines_in_service": 10,
        "online_in_service": 10,
        "finished": 100,
        "failed": 0,
        "oldest_pending_seconds": None,
    }
    return Signals(**(values | changes))


@pytest.mark.parametrize(
    ("changes", "health"),
    [
        ({}, Health.good),
        ({"online_in_service": 9}, Health.good),
        ({"online_in_service": 8}, Health.degraded),
        ({"online_in_service": 4}, Health.critical),
        ({"failed": 5}, Health.degraded),
        ({"failed": 25}, Health.critical),
        ({"finished": 4, "failed": 4}, Health.good),
        ({"oldest_pending_seconds": 299.0}, Health.good),
        ({"oldest_pending_seconds": 300.0}, Health.degraded),
        ({"oldest_pending_seconds": 1800.0}, Health.critical),
        ({"machines_in_service": 0, "online_in_service": 0}, Health.good),
        ({"machines_in_service": 0, "online_in_service": 0, "oldest_pending_seconds": 1.0}, Health.critical),
    ],
)
def test_health_is_the_worst_of_fleet_failures_and_queue_age(changes: dict[str, Any], health: Health) -> None:
    assert judge(signals(**changes)).health is health


def test_the_reasons_name_each_signal_that_is_not_good_worst_first() -> None:
    verdict = judge(signals(online_in_service=8, failed=30, oldest_pending_seconds=60.0))

    assert verdict.health is Health.critical
    assert verdict.reasons == [
        "30 of 100 inspections finished recently failed",
        "8 of 10 machines in service are online",
    ]

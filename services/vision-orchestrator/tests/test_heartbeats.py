"""Heartbeat partitions (created ahead, rows stranded in the default moved, expired days dropped), the offline
sweep, and a machine's statistics."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.testing.plugin import HeadersFactory
from vision_orchestrator.heartbeats.partitions import day_partitions, drop_expired, ensure_partitions
from vision_orchestrator.heartbeats.presence import sweep_silent
from vision_orchestrator.tables import Machine

from .test_machine_reports import (
    WEBHOOKS,
    assigned_inspection,
    bearer,
    heartbeat,
    machine_row,
    outbox_types,
    register,
    result,
)


async def test_partitions_are_made_ahead_and_dropped_past_retention(db_session: AsyncSession) -> None:
    today = date(2031, 1, 10)

    created = await ensure_partitions(db_session, today, ahead_days=3)

    assert created == [f"heartbeats_p203101{day}" for day in (10, 11, 12, 13)]
    assert await ensure_partitions(db_session, today, ahead_days=3) == []
    dropped = await drop_expired(db_session, date(2031, 2, 12), retention_days=30)
    assert set(created[:3]) <= set(dropped)
    assert "heartbeats_p20310113" not in dropped
    remaining = await day_partitions(db_session)
    assert date(2031, 1, 13) in remaining
    assert date(2031, 1, 12) not in remaining


async def test_rows_in_the_default_partition_move_into_their_day(db_session: AsyncSession) -> None:
    at = datetime(2031, 3, 1, 12, tzinfo=UTC)
    await db_session.execute(
        text(
            "INSERT INTO vision_orchestrator.heartbeats (received_at, machine_id, status)"
            " VALUES (:at, 'mv_00000000abcd', 'online')"
        ),
        {"at": at},
    )

    assert await ensure_partitions(db_session, date(2031, 3, 1), ahead_days=1) == [
        "heartbeats_p20310301",
        "heartbeats_p20310302",
    ]

    moved = await db_session.scalar(
        text("SELECT count(*) FROM vision_orchestrator.heartbeats_p20310301 WHERE machine_id = 'mv_00000000abcd'")
    )
    left = await db_session.scalar(
        text("SELECT count(*) FROM vision_orchestrator.heartbeats_default WHERE received_at = :at"), {"at": at}
    )
    assert (moved, left) == (1, 0)


async def test_a_silent_machine_turns_offline_once_and_a_heartbeat_brings_it_back(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    machine = await register(client, await auth_headers("admin"))
    machine_id = machine["id"]
    await client.post(f"{WEBHOOKS}/heartbeat/", json=heartbeat(machine_id), headers=bearer(machine))
    await db_session.execute(
        update(Machine).where(Machine.id == machine_id).values(last_heartbeat=datetime.now(UTC) - timedelta(minutes=5))
    )

    first = await sweep_silent(db_session, timedelta(seconds=30))
    second = await sweep_silent(db_session, timedelta(seconds=30))

    assert machine_id in first
    assert machine_id not in second
    assert (await machine_row(db_session, machine_id)).status == "offline"
    await client.post(f"{WEBHOOKS}/heartbeat/", json=heartbeat(machine_id), headers=bearer(machine))
    assert (await machine_row(db_session, machine_id)).status == "online"
    assert machine_id not in await sweep_silent(db_session, timedelta(seconds=30))
    assert await outbox_types(db_session, f"machine/{machine_id}") == [
        "vision.machine.online",
        "vision.machine.offline",
        "vision.machine.online",
    ]


async def test_statistics_count_results_processing_time_and_utilisation(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    machine = await register(client, await auth_headers("admin"))
    machine_id = machine["id"]
    operator, viewer = await auth_headers("operator"), await auth_headers("viewer")
    await client.post(f"{WEBHOOKS}/heartbeat/", json=heartbeat(machine_id), headers=bearer(machine))
    done = await assigned_inspection(client, operator, db_session, machine_id)
    failed = await assigned_inspection(client, operator, db_session, machine_id)
    await client.post(f"{WEBHOOKS}/results/", json=result(machine_id, done), headers=bearer(machine))
    await client.post(
        f"{WEBHOOKS}/results/",
        json=result(machine_id, failed, status="failed", error_message="no image", results={"processing_time": 1.7}),
        headers=bearer(machine),
    )

    response = await client.get(f"/api/v1/machines/{machine_id}/statistics/?period=hour", headers=viewer)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["period"] == "hour"
    assert len(body["series"]) in (24, 25)
    totals = body["totals"]
    assert (totals["inspections_completed"], totals["inspections_failed"]) == (1, 1)
    assert totals["success_rate"] == 50.0
    assert totals["average_processing_time"] == 2.0
    assert totals["heartbeats"] == 1
    assert totals["average_cpu_usage"] == 45.2
    assert totals["utilization"] is not None and totals["utilization"] >= 0
    assert sum(bucket["inspections_completed"] for bucket in body["series"]) == 1


async def test_statistics_refuse_a_bad_window(client: httpx.AsyncClient, auth_headers: HeadersFactory) -> None:
    machine = await register(client, await auth_headers("admin"))
    viewer = await auth_headers("viewer")
    url = f"/api/v1/machines/{machine['id']}/statistics"

    for query in (
        "period=year",
        "start_date=2025-08-13&end_date=2025-08-12",
        "period=hour&start_date=2020-01-01&end_date=2025-01-01",
        "start_date=yesterday",
    ):
        response = await client.get(f"{url}?{query}", headers=viewer)
        assert response.status_code == 422, (query, response.text)
    by_day = await client.get(f"{url}?period=day&start_date=2025-08-01&end_date=2025-08-08", headers=viewer)
    assert by_day.status_code == 200, by_day.text
    assert [bucket["start"][:10] for bucket in by_day.json()["series"]][:2] == ["2025-08-01", "2025-08-02"]
    assert len(by_day.json()["series"]) == 7
    assert (await client.get("/api/v1/machines/mv_000000000000/statistics/", headers=viewer)).status_code == 404

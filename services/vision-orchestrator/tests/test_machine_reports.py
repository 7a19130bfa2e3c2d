"""Machine webhooks over HTTP: heartbeats, status reports and results by credential or signature, one effect per
result, refusals of what a machine may not report, and the rate limits of users and machines; heartbeat
partitions (made ahead, stranded default rows moved, expired days dropped), the offline sweep and a machine's
statistics."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory, HeadersFactory
from mirante.webhooks.signatures import generate_standard_secret, sign_standard
from vision_orchestrator.config import Settings
from vision_orchestrator.deps import USER_RATE_SCOPE
from vision_orchestrator.heartbeats.partitions import day_partitions, drop_expired, ensure_partitions
from vision_orchestrator.heartbeats.presence import sweep_silent
from vision_orchestrator.inspections import service as inspections
from vision_orchestrator.lifecycle import InspectionStatus
from vision_orchestrator.main import create_app
from vision_orchestrator.tables import Heartbeat, Inspection, InspectionResult, InspectionStatusChange, Machine

WEBHOOKS = "/api/v1/webhooks"


async def register(client: httpx.AsyncClient, admin: dict[str, str], capacity: int = 2) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/machines/",
        json={
            "name": f"MV-{uuid.uuid4().hex[:8]}",
            "ip_address": "10.0.0.7",
            "port": 5000,
            "max_concurrent_inspections": capacity,
            "supported_inspection_types": ["blob_detection"],
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    machine: dict[str, Any] = response.json()
    return machine


def bearer(machine: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {machine['credential']}"}


def heartbeat(machine_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "machine_id": machine_id,
        "status": "online",
        "system_info": {"cpu_usage": 45.2, "memory_usage": 67.8, "gpu_usage": 23.1, "temperature": 42.5},
        "performance_metrics": {"inspections_per_hour": 12, "average_processing_time": 2.3, "success_rate": 98.5},
        "timestamp": "2025-08-13T20:10:00Z",
        **fields,
    }


def result(machine_id: str, inspection_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "machine_id": machine_id,
        "inspection_id": inspection_id,
        "status": "completed",
        "results": {
            "blob_count": 5,
            "blob_locations": [{"x": 100, "y": 150, "width": 50, "height": 30}],
            "processing_time": 2.3,
            "confidence_score": 0.95,
        },
        "error_message": None,
        "timestamp": "2025-08-13T20:10:00Z",
        "attempt": 1,
        **fields,
    }


async def assigned_inspection(
    client: httpx.AsyncClient, operator: dict[str, str], db_session: AsyncSession, machine_id: str
) -> str:
    response = await client.post(
        "/api/v1/inspections/",
        json={
            "name": "Inspeção de Qualidade A",
            "inspection_type": "blob_detection",
            "pipeline_config": {"tools": [{"name": "blob_detection", "parameters": {}}], "connections": []},
        },
        headers=operator,
    )
    assert response.status_code == 201, response.text
    inspection_id: str = response.json()["id"]
    await move(db_session, inspection_id, InspectionStatus.assigned, machine_id=machine_id)
    return inspection_id


async def move(db_session: AsyncSession, inspection_id: str, target: InspectionStatus, **extra: Any) -> None:
    row = await db_session.get(Inspection, inspection_id, with_for_update=True, populate_existing=True)
    assert row is not None
    await inspections.transition(db_session, row, target, actor="system", **extra)


async def machine_row(db_session: AsyncSession, machine_id: str) -> Machine:
    row = await db_session.get(Machine, machine_id, populate_existing=True)
    assert row is not None
    return row


async def outbox_types(db_session: AsyncSession, subject: str) -> list[str]:
    rows = await db_session.execute(
        text("SELECT type FROM vision_orchestrator.outbox WHERE subject = :subject ORDER BY created_at, id"),
        {"subject": subject},
    )
    return [row.type for row in rows]


async def test_a_heartbeat_is_stored_and_brings_the_machine_online_once(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    machine = await register(client, await auth_headers("admin"))
    machine_id = machine["id"]

    for path in (f"{WEBHOOKS}/heartbeat/", f"{WEBHOOKS}/heartbeat"):
        response = await client.post(path, json=heartbeat(machine_id), headers=bearer(machine))
        assert response.status_code == 200, response.text
        assert response.json()["machine_id"] == machine_id

    row = await machine_row(db_session, machine_id)
    assert row.status == "online"
    assert row.last_heartbeat is not None
    beats = (await db_session.scalars(select(Heartbeat).where(Heartbeat.machine_id == machine_id))).all()
    assert len(beats) == 2
    assert beats[0].system_info["cpu_usage"] == 45.2
    assert await outbox_types(db_session, f"machine/{machine_id}") == ["vision.machine.online"]
    status = await client.get(f"/api/v1/machines/{machine_id}/status/", headers=await auth_headers("viewer"))
    assert status.status_code == 200
    assert status.json()["status"] == "online"
    assert status.json()["system_info"]["temperature"] == 42.5
    assert status.json()["performance_metrics"]["success_rate"] == 98.5


async def test_a_signature_alone_authenticates_and_a_forged_one_is_refused(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    machine = await register(client, await auth_headers("admin"))
    body = orjson.dumps(heartbeat(machine["id"]))
    json_type = {"Content-Type": "application/json"}

    signed = sign_standard(machine["webhook_secret"], body)
    assert (await client.post(f"{WEBHOOKS}/heartbeat/", content=body, headers=signed | json_type)).status_code == 200
    both = bearer(machine) | sign_standard(machine["webhook_secret"], body) | json_type
    assert (await client.post(f"{WEBHOOKS}/heartbeat/", content=body, headers=both)).status_code == 200

    forged = sign_standard(generate_standard_secret(), body)
    for headers in (forged, bearer(machine) | forged):
        refused = await client.post(f"{WEBHOOKS}/heartbeat/", content=body, headers=headers | json_type)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_machine_credential"
    altered = orjson.dumps(heartbeat(machine["id"], status="busy"))
    tampered = await client.post(f"{WEBHOOKS}/heartbeat/", content=altered, headers=signed | json_type)
    assert tampered.status_code == 401
    assert (await client.post(f"{WEBHOOKS}/heartbeat/", json=heartbeat(machine["id"]))).status_code == 401


async def test_a_machine_reports_only_for_itself(client: httpx.AsyncClient, auth_headers: HeadersFactory) -> None:
    admin = await auth_headers("admin")
    machine, other = await register(client, admin), await register(client, admin)

    for path, body in (
        ("heartbeat", heartbeat(other["id"])),
        ("status", {"machine_id": other["id"], "status": "busy", "current_inspections": 2}),
    ):
        response = await client.post(f"{WEBHOOKS}/{path}/", json=body, headers=bearer(machine))
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "not_this_machine"


async def test_a_result_completes_the_inspection_once_and_frees_the_slot(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    machine = await register(client, await auth_headers("admin"))
    machine_id = machine["id"]
    await client.post(f"{WEBHOOKS}/heartbeat/", json=heartbeat(machine_id), headers=bearer(machine))
    inspection_id = await assigned_inspection(client, await auth_headers("operator"), db_session, machine_id)
    assert (await machine_row(db_session, machine_id)).current_inspections == 1

    first = await client.post(f"{WEBHOOKS}/results/", json=result(machine_id, inspection_id), headers=bearer(machine))
    again = await client.post(f"{WEBHOOKS}/results", json=result(machine_id, inspection_id), headers=bearer(machine))

    assert first.status_code == 200, first.text
    assert first.json() == {"inspection_id": inspection_id, "status": "completed", "attempt": 1, "duplicate": False}
    assert again.status_code == 200
    assert again.json() | {"duplicate": False} == first.json()
    assert again.json()["duplicate"] is True
    inspection = await db_session.get(Inspection, inspection_id, populate_existing=True)
    assert inspection is not None
    assert inspection.status == "completed"
    assert inspection.finished_at is not None
    assert (await machine_row(db_session, machine_id)).current_inspections == 0
    stored = (
        await db_session.scalars(select(InspectionResult).where(InspectionResult.inspection_id == inspection_id))
    ).all()
    assert len(stored) == 1
    assert stored[0].processing_time_seconds == 2.3
    assert stored[0].results["blob_count"] == 5
    history = (
        await db_session.scalars(
            select(InspectionStatusChange.to_status).where(InspectionStatusChange.inspection_id == inspection_id)
        )
    ).all()
    assert history.count("completed") == 1
    assert await outbox_types(db_session, f"inspection/{inspection_id}") == ["vision.inspection.completed"]


async def test_a_failed_result_keeps_the_error(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    machine = await register(client, await auth_headers("admin"))
    inspection_id = await assigned_inspection(client, await auth_headers("operator"), db_session, machine["id"])
    await move(db_session, inspection_id, InspectionStatus.processing)

    response = await client.post(
        f"{WEBHOOKS}/results/",
        json=result(machine["id"], inspection_id, status="failed", error_message="camera timeout", results={}),
        headers=bearer(machine),
    )

    assert response.status_code == 200, response.text
    inspection = await db_session.get(Inspection, inspection_id, populate_existing=True)
    assert inspection is not None
    assert (inspection.status, inspection.error_message) == ("failed", "camera timeout")
    assert await outbox_types(db_session, f"inspection/{inspection_id}") == ["vision.inspection.failed"]


async def test_results_nobody_wants_are_refused(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    admin, operator = await auth_headers("admin"), await auth_headers("operator")
    machine, other = await register(client, admin), await register(client, admin)
    mine = await assigned_inspection(client, operator, db_session, machine["id"])
    theirs = await assigned_inspection(client, operator, db_session, other["id"])

    async def post(body: dict[str, Any]) -> httpx.Response:
        return await client.post(f"{WEBHOOKS}/results/", json=body, headers=bearer(machine))

    unknown = await post(result(machine["id"], "ins_000000000000"))
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_inspection")
    assert unknown.json()["error"]["details"] == {"field": "inspection_id"}
    foreign = await post(result(machine["id"], theirs))
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (403, "not_assigned")
    impersonating = await post(result(other["id"], theirs))
    assert (impersonating.status_code, impersonating.json()["error"]["code"]) == (403, "not_this_machine")
    newer = await post(result(machine["id"], mine, attempt=2))
    assert (newer.status_code, newer.json()["error"]["code"]) == (409, "stale_attempt")

    await move(db_session, mine, InspectionStatus.pending, reason="machine went offline")
    await move(db_session, mine, InspectionStatus.assigned, machine_id=machine["id"])
    old = await post(result(machine["id"], mine, attempt=1))
    assert (old.status_code, old.json()["error"]["details"]["current_attempt"]) == (409, 2)
    assert (await post(result(machine["id"], mine, attempt=2))).status_code == 200

    cancelled = await assigned_inspection(client, operator, db_session, machine["id"])
    await move(db_session, cancelled, InspectionStatus.cancelled)
    refused = await post(result(machine["id"], cancelled))
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "inspection_cancelled")
    assert (await db_session.get(Inspection, theirs, populate_existing=True)).status == "assigned"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "body",
    [
        {"status": "busy", "current_inspections": -1},
        {"status": "sleeping", "current_inspections": 0},
        {"status": "busy", "current_inspections": 0, "machine_id": "mv_a\u0000"},
    ],
)
async def test_a_bad_status_report_is_422(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, body: dict[str, Any]
) -> None:
    machine = await register(client, await auth_headers("admin"))
    response = await client.post(
        f"{WEBHOOKS}/status/", json={"machine_id": machine["id"], **body}, headers=bearer(machine)
    )
    assert response.status_code == 422, response.text


async def test_hostile_bodies_are_refused_cleanly(client: httpx.AsyncClient, auth_headers: HeadersFactory) -> None:
    machine = await register(client, await auth_headers("admin"))
    headers = bearer(machine) | {"Content-Type": "application/json"}

    out_of_range = heartbeat(machine["id"], performance_metrics={"success_rate": 101})
    assert (await client.post(f"{WEBHOOKS}/heartbeat/", json=out_of_range, headers=headers)).status_code == 422
    # asyncpg would store year 1's first instant as -infinity.
    first_instant = heartbeat(machine["id"], timestamp="0001-01-01T00:00:00Z")
    assert (await client.post(f"{WEBHOOKS}/heartbeat/", json=first_instant, headers=headers)).status_code == 422
    raw_nul = b'{"machine_id": "' + machine["id"].encode() + b'\x00", "status": "online"}'
    assert (await client.post(f"{WEBHOOKS}/heartbeat/", content=raw_nul, headers=headers)).status_code in (400, 422)
    nul_result = result(machine["id"], "ins_000000000000", results={"label": "a\u0000b"})
    assert (await client.post(f"{WEBHOOKS}/results/", json=nul_result, headers=headers)).status_code == 422
    huge = b'{"machine_id": "' + machine["id"].encode() + b'", "pad": "' + b"x" * 2_000_000 + b'"}'
    assert (await client.post(f"{WEBHOOKS}/heartbeat/", content=huge, headers=headers)).status_code == 413
    garbage = b"\x00\xff not json"
    signed_garbage = sign_standard(machine["webhook_secret"], garbage) | {"Content-Type": "application/json"}
    response = await client.post(f"{WEBHOOKS}/heartbeat/", content=garbage, headers=signed_garbage)
    assert response.status_code == 400
    stranger = orjson.dumps(heartbeat("mv_000000000000"))
    signed_stranger = sign_standard(machine["webhook_secret"], stranger) | {"Content-Type": "application/json"}
    response = await client.post(f"{WEBHOOKS}/heartbeat/", content=stranger, headers=signed_stranger)
    assert response.status_code == 401


async def test_status_reports_move_busy_and_online_and_an_offline_machine_waits_for_a_heartbeat(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    machine = await register(client, await auth_headers("admin"))
    machine_id = machine["id"]

    async def report(status: str) -> dict[str, Any]:
        response = await client.post(
            f"{WEBHOOKS}/status/",
            json={"machine_id": machine_id, "status": status, "current_inspections": 2},
            headers=bearer(machine),
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    assert (await report("busy"))["status"] == "offline"
    await client.post(f"{WEBHOOKS}/heartbeat/", json=heartbeat(machine_id), headers=bearer(machine))
    assert (await report("busy"))["status"] == "busy"
    assert (await report("online"))["status"] == "online"
    assert (await report("offline"))["status"] == "offline"
    assert await outbox_types(db_session, f"machine/{machine_id}") == [
        "vision.machine.online",
        "vision.machine.offline",
    ]


async def test_users_are_limited_but_webhooks_are_not(
    make_client: ClientFactory, infra_settings: InfraSettings, auth_headers: HeadersFactory, redis_client: Redis
) -> None:
    # User ids start again with each test database while Redis keeps the buckets of earlier runs.
    async for key in redis_client.scan_iter(match=f"*{USER_RATE_SCOPE}*"):
        await redis_client.delete(key)
    app = create_app(Settings(infra=infra_settings, user_rate_limit="4/hour"))
    client = await make_client(app)
    admin = await auth_headers("admin")
    machine = await register(client, admin)

    answers = [await client.get("/api/v1/machines/", headers=admin) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert answers[-1].json()["error"]["code"] == "rate_limited"

    beats = [
        await client.post(f"{WEBHOOKS}/heartbeat/", json=heartbeat(machine["id"]), headers=bearer(machine))
        for _ in range(6)
    ]
    assert {beat.status_code for beat in beats} == {200}


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
        # The default window reaches back from the end: from year 1 it left Python's dates (a 500).
        "end_date=0001-01-01",
        "end_date=0001-01-01T00:00:00Z",
    ):
        response = await client.get(f"{url}?{query}", headers=viewer)
        assert response.status_code == 422, (query, response.text)
    by_day = await client.get(f"{url}?period=day&start_date=2025-08-01&end_date=2025-08-08", headers=viewer)
    assert by_day.status_code == 200, by_day.text
    assert [bucket["start"][:10] for bucket in by_day.json()["series"]][:2] == ["2025-08-01", "2025-08-02"]
    assert len(by_day.json()["series"]) == 7
    assert (await client.get("/api/v1/machines/mv_000000000000/statistics/", headers=viewer)).status_code == 404

"""`/orchestrator/queue/`: the estimated waits, played forward from measured processing times and free slots, and
each machine's assignments (on the test's session; the app's dispatcher cannot see it, so nothing moves).

The fleet of the test runs two inspection types of its own, so nothing else in the run's database competes for
its slots: `measured` (results say 80 s and 120 s: a mean of 100 s) and `unmeasured` (no results: the configured
default of 30 s).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.testing.plugin import HeadersFactory
from vision_orchestrator.tables import Inspection, InspectionResult, InspectionType, Machine

QUEUE = "/api/v1/orchestrator/queue/"
PIPELINE = {"tools": [{"name": "image_source", "parameters": {}}], "connections": []}


def machine_id(rank: int) -> str:
    """An id that sorts by `rank` among the test's machines (ties of the estimate go to the lower id)."""
    return f"mv_{rank}{uuid.uuid4().hex[:11]}"


def add_machine(
    session: AsyncSession,
    rank: int,
    types: list[str],
    *,
    capacity: int,
    current: int = 0,
    status: str = "online",
    maintenance: bool = False,
) -> str:
    identifier = machine_id(rank)
    session.add(
        Machine(
            id=identifier,
            name=f"queue-{identifier}",
            ip_address="127.0.0.1",
            port=9,
            status=status,
            maintenance=maintenance,
            max_concurrent_inspections=capacity,
            current_inspections=current,
            supported_inspection_types=types,
        )
    )
    return identifier


def add_inspection(
    session: AsyncSession,
    inspection_type: str,
    *,
    priority: int = 5,
    queued_at: datetime,
    status: str = "pending",
    **fields: object,
) -> str:
    identifier = f"ins_{uuid.uuid4().hex[:12]}"
    session.add(
        Inspection(
            id=identifier,
            name=f"queue {identifier}",
            inspection_type=inspection_type,
            pipeline_config=PIPELINE,
            priority=priority,
            status=status,
            queued_at=queued_at,
            **fields,
        )
    )
    return identifier


async def test_estimated_waits_play_the_queue_forward_over_measured_times_and_free_slots(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    suffix = uuid.uuid4().hex[:8]
    measured, unmeasured = f"measured_{suffix}", f"unmeasured_{suffix}"
    db_session.add_all([InspectionType(name=measured), InspectionType(name=unmeasured)])
    await db_session.flush()
    now = datetime.now(UTC)

    # a: two slots, one busy for 40 s of its 100; b: one free slot, both types; c offline; d in maintenance.
    a = add_machine(db_session, 1, [measured], capacity=2, current=1)
    b = add_machine(db_session, 2, [measured, unmeasured], capacity=1)
    c = add_machine(db_session, 3, [measured], capacity=4, status="offline")
    d = add_machine(db_session, 4, [unmeasured], capacity=4, maintenance=True)
    await db_session.flush()
    for seconds in (80.0, 120.0):
        done = add_inspection(
            db_session, measured, queued_at=now - timedelta(hours=1), status="completed", assigned_machine_id=b
        )
        await db_session.flush()
        db_session.add(
            InspectionResult(
                inspection_id=done,
                machine_id=b,
                idempotency_key=f"attempt-{done}",
                status="completed",
                processing_time_seconds=seconds,
            )
        )
    running = add_inspection(
        db_session,
        measured,
        queued_at=now - timedelta(minutes=5),
        status="processing",
        assigned_machine_id=a,
        assigned_at=now - timedelta(seconds=41),
        started_at=now - timedelta(seconds=40),
    )

    # Pending, by priority then age (each queued a second after the one before).
    def at(index: int) -> datetime:
        return now - timedelta(minutes=1) + timedelta(seconds=index)

    first = add_inspection(db_session, measured, priority=1, queued_at=at(0))
    second = add_inspection(db_session, measured, priority=2, queued_at=at(1))
    third = add_inspection(db_session, unmeasured, priority=3, queued_at=at(2))
    fourth = add_inspection(db_session, measured, priority=4, queued_at=at(3))
    only_offline = add_inspection(db_session, measured, priority=5, queued_at=at(4), target_machine_id=c)
    sixth = add_inspection(db_session, measured, priority=5, queued_at=at(5))
    only_maintenance = add_inspection(db_session, unmeasured, priority=6, queued_at=at(6), target_machine_id=d)
    await db_session.flush()

    response = await client.get(QUEUE, headers=await auth_headers("viewer"))

    assert response.status_code == 200, response.text
    view = response.json()
    ours = [first, second, third, fourth, only_offline, sixth, only_maintenance]
    rows = {row["id"]: row for row in view["pending_inspections"] if row["id"] in ours}
    assert [row["id"] for row in view["pending_inspections"] if row["id"] in ours] == ours
    waits = {identifier: rows[identifier]["estimated_wait_time"] for identifier in ours}
    # first: a's free slot now (a busy till 60 s, then till 100 s); second: b's free slot now (b till 100 s);
    # third: only b runs `unmeasured`, free at 100 s (then till 130 s); fourth: a's slot freed by the running
    # inspection (100 s less the 40 s it has run, a till 160 s); sixth: a's slot at 100 s. Nothing may run the
    # inspections held for c (offline) and d (in maintenance).
    assert waits[first] == 0
    assert waits[second] == 0
    assert waits[third] == 100
    assert 55 <= waits[fourth] <= 60  # what the running inspection has left, read a moment after it was set up
    assert waits[sixth] == 100
    assert waits[only_offline] is None
    assert waits[only_maintenance] is None
    assert rows[only_offline]["target_machine_id"] == c

    machines = view["machine_assignments"]
    assert machines[a]["inspections"] == [running]
    assert (machines[a]["current_inspections"], machines[a]["max_concurrent_inspections"]) == (1, 2)
    assert machines[a]["queued_for"] == 2  # fourth and sixth wait for a slot of a
    assert machines[b]["queued_for"] == 1  # third waits for b's slot
    # Machines able to take one now, least loaded first: b (0 of 1) before a (1 of 2).
    assert machines[b]["queue_position"] < machines[a]["queue_position"]
    assert machines[c]["queue_position"] is None
    assert machines[d]["queue_position"] is None
    assert (machines[c]["status"], machines[d]["maintenance"]) == ("offline", True)
    assert view["pending_total"] >= len(ours)


async def test_the_queue_lists_the_first_in_line_up_to_the_limit(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    suffix = uuid.uuid4().hex[:8]
    kind = f"limited_{suffix}"
    db_session.add(InspectionType(name=kind))
    await db_session.flush()
    now = datetime.now(UTC)
    # Priority 1 and queued long ago: ahead of anything else the run's database may hold.
    urgent = [
        add_inspection(db_session, kind, priority=1, queued_at=now - timedelta(days=365, seconds=10 - index))
        for index in range(3)
    ]
    await db_session.flush()

    response = await client.get(QUEUE, params={"limit": 2}, headers=await auth_headers("viewer"))

    assert response.status_code == 200, response.text
    view = response.json()
    assert [row["id"] for row in view["pending_inspections"]] == urgent[:2]
    assert [row["estimated_wait_time"] for row in view["pending_inspections"]] == [None, None]
    assert view["pending_total"] >= 3
    over = await client.get(QUEUE, params={"limit": 1001}, headers=await auth_headers("viewer"))
    assert over.status_code == 422

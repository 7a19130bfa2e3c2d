"""The incident rule engine end to end: an event on the vision stream opens one incident through a rule, on the
real Redis and PostgreSQL; the same event delivered again opens none; events of types no rule is on are skipped,
and a rule saved applies to the next event at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from mirante.bus import Event
from mirante.db import create_sessionmaker
from rtls_cambus.incidents import service
from rtls_cambus.incidents.engine import incident_rule_consumer, rule_interest
from rtls_cambus.incidents.models import Incident, IncidentRule, SupportGroup
from rtls_cambus.incidents.schemas import RuleCreate

VISION_STREAM = "events:vision-orchestrator"


async def wait_for(condition, attempts: int = 200) -> None:  # type: ignore[no-untyped-def]
    for _ in range(attempts):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the consumer did not get there")


async def test_a_vision_failure_opens_one_incident_for_the_rules_group(
    db_engine: AsyncEngine, redis_client: Redis
) -> None:
    sessionmaker: async_sessionmaker = create_sessionmaker(db_engine)  # type: ignore[type-arg]
    marker = uuid.uuid4().hex
    async with sessionmaker() as session, session.begin():
        group = SupportGroup(name=f"Quality {marker}")
        session.add(group)
        await session.flush()
        rule = IncidentRule(
            name=f"Failed inspection {marker}",
            event_type="vision.inspection.failed",
            conditions=[
                {"path": "marker", "op": "equals", "value": marker},
                {"path": "result.defects", "op": "exists"},
            ],
            title_template="Inspection {inspection_id} failed on {result.camera}",
            severity="high",
            support_group_id=group.id,
        )
        session.add(rule)
        await session.flush()
        group_id, rule_id = group.id, rule.id

    consumer = incident_rule_consumer(
        redis_client,
        sessionmaker,
        [VISION_STREAM],
        rule_interest(sessionmaker, max_age=2),
        group=f"incident-rules-test-{marker}",
        consumer_name="test",
        block_ms=100,
    )
    await consumer.ensure_groups()
    event = Event(
        source="mirante/vision-orchestrator",
        type="vision.inspection.failed",
        subject="inspection/42",
        data={"marker": marker, "inspection_id": 42, "result": {"camera": "cam-3", "defects": 2}},
    )
    other = Event(
        source="mirante/vision-orchestrator", type="vision.inspection.failed", data={"marker": "someone else"}
    )
    task = asyncio.create_task(consumer.run())
    try:
        await redis_client.xadd(VISION_STREAM, other.to_fields())  # type: ignore[arg-type]
        await redis_client.xadd(VISION_STREAM, event.to_fields())  # type: ignore[arg-type]

        async def incidents() -> list[Incident]:
            async with sessionmaker() as session:
                return list((await session.scalars(select(Incident).where(Incident.rule_id == rule_id))).all())

        await wait_for(lambda: _non_empty(incidents))
        await redis_client.xadd(VISION_STREAM, event.to_fields())  # type: ignore[arg-type]

        async def duplicate_seen() -> bool:
            return consumer.stats.duplicates >= 1

        await wait_for(duplicate_seen)
        opened = await incidents()
        assert len(opened) == 1
        incident = opened[0]
        assert incident.title == "Inspection 42 failed on cam-3"
        assert (incident.severity, incident.status, incident.support_group_id) == ("high", "open", group_id)
        assert incident.source_event_id == event.id
        async with sessionmaker() as session:
            from mirante.bus.tables import outbox_table

            table = outbox_table("rtls_cambus")
            created = await session.scalar(
                select(func.count()).where(
                    table.c.subject == f"incident/{incident.id}", table.c.type == "rtls.incident.created"
                )
            )
            assert created == 1
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 10)
        await redis_client.xgroup_destroy(VISION_STREAM, f"incident-rules-test-{marker}")
        async with sessionmaker() as session, session.begin():
            await session.execute(delete(Incident).where(Incident.rule_id == rule_id))
            await session.execute(delete(IncidentRule).where(IncidentRule.id == rule_id))
            await session.execute(delete(SupportGroup).where(SupportGroup.id == group_id))


async def _non_empty(query) -> bool:  # type: ignore[no-untyped-def]
    return bool(await query())


async def test_events_no_rule_is_on_are_skipped_until_a_rule_saved_here_names_their_type(
    db_engine: AsyncEngine, redis_client: Redis
) -> None:
    sessionmaker: async_sessionmaker = create_sessionmaker(db_engine)  # type: ignore[type-arg]
    marker = uuid.uuid4().hex
    stream = f"events:incident-rules-test-{marker}"
    # Read again only when bumped: a rule must apply at once to events read after the transaction saving it.
    interest = rule_interest(sessionmaker, max_age=300)
    consumer = incident_rule_consumer(
        redis_client, sessionmaker, [stream], interest, group=f"incident-rules-{marker}", consumer_name="test"
    )
    await consumer.ensure_groups()
    body = RuleCreate.model_validate(
        {
            "name": f"Expired upload {marker}",
            "event_type": "recording.upload.expired",
            "conditions": [{"path": "marker", "op": "equals", "value": marker}],
            "title_template": "Upload {upload_id} expired",
            "severity": "low",
        }
    )
    before = Event(source="mirante/recording-storage", type=body.event_type, data={"marker": marker, "upload_id": 1})
    after = Event(source="mirante/recording-storage", type=body.event_type, data={"marker": marker, "upload_id": 2})
    task = asyncio.create_task(consumer.run())
    rule_id = None
    try:
        await redis_client.xadd(stream, before.to_fields())  # type: ignore[arg-type]
        await wait_for(_true_when(lambda: consumer.stats.skipped == 1))
        async with sessionmaker() as session, session.begin():
            rule_id = (await service.create_rule(session, body, interest)).id
        await redis_client.xadd(stream, after.to_fields())  # type: ignore[arg-type]
        await wait_for(_true_when(lambda: consumer.stats.processed == 1))
        async with sessionmaker() as session:
            opened = (await session.scalars(select(Incident).where(Incident.rule_id == rule_id))).all()
        assert [incident.source_event_id for incident in opened] == [after.id]
        assert consumer.stats.skipped == 1
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 10)
        await redis_client.delete(stream)
        if rule_id is not None:
            async with sessionmaker() as session, session.begin():
                await session.execute(delete(Incident).where(Incident.rule_id == rule_id))
                await session.execute(delete(IncidentRule).where(IncidentRule.id == rule_id))


def _true_when(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def holds() -> bool:
        return bool(check())

    return holds

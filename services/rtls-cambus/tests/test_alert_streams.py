"""The alert engine on real Redis streams through the library's consumer: an event delivered twice raises one
alert, one of a type no rule is on is skipped; and an alert, relayed from the outbox to the service's stream, opens
an incident through an incident rule."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mirante.bus import Event, OutboxRelay
from mirante.db import create_sessionmaker
from rtls_cambus.alerts import service
from rtls_cambus.alerts.engine import AlertEngine, alert_consumer
from rtls_cambus.alerts.models import AlertEvent, AlertRule
from rtls_cambus.alerts.schemas import rule_adapter
from rtls_cambus.identifiers import SCHEMA, SOURCE
from rtls_cambus.incidents.engine import incident_rule_consumer, rule_interest
from rtls_cambus.incidents.models import Incident, IncidentRule

GUARD_SECONDS = 20


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll `check` until it holds; a guard against a consumer that never gets there, not a timing assertion."""
    for _ in range(GUARD_SECONDS * 20):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the consumer did not get there")


@pytest_asyncio.fixture(loop_scope="session")
async def committed(
    db_engine: AsyncEngine, make_site: Any
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], Any, int]]:
    """A site and a zone-entry rule on its lab, committed (consumers use their own sessions); the rule is deleted
    afterwards so it raises nothing in other tests."""
    sessionmaker = create_sessionmaker(db_engine)
    async with sessionmaker() as session, session.begin():
        site = await make_site(session)
        rule = await service.create_rule(
            session,
            rule_adapter.validate_python(
                {
                    "kind": "zone_entry",
                    "name": f"lab-{uuid.uuid4().hex[:8]}",
                    "severity": "critical",
                    "zone_id": site.zones[1].id,
                    "cooldown_seconds": 0,
                }
            ),
        )
    try:
        yield sessionmaker, site, rule.id
    finally:
        async with sessionmaker() as session, session.begin():
            await session.execute(delete(AlertRule).where(AlertRule.id == rule.id))


def entered(site: Any, session_id: int) -> Event:
    return Event(
        source=SOURCE,
        type="rtls.person.zone_entered",
        subject=f"person/{site.person.id}",
        data={
            "session_id": session_id,
            "person_id": site.person.id,
            "tag_id": site.tag.id,
            "zone_id": site.zones[1].id,
            "floor_id": site.floor.id,
            "building_id": site.building.id,
        },
    )


async def waiting_on_a_lock(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    async with sessionmaker() as session:
        query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return bool(await session.scalar(query))


async def alerts_of(sessionmaker: async_sessionmaker[AsyncSession], rule_id: int) -> list[AlertEvent]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(AlertEvent).where(AlertEvent.rule_id == rule_id))).all())


async def test_an_event_delivered_twice_through_the_consumer_raises_one_alert(
    committed: tuple[async_sessionmaker[AsyncSession], Any, int], redis_client: Redis
) -> None:
    sessionmaker, site, rule_id = committed
    stream = f"events:alerts-test-{uuid.uuid4().hex[:8]}"
    consumer = alert_consumer(
        redis_client, sessionmaker, AlertEngine(), [stream], group=f"alerts-{uuid.uuid4().hex[:8]}", block_ms=100
    )
    await consumer.ensure_groups()
    event = entered(site, 9001)
    task = asyncio.create_task(consumer.run())
    try:
        await redis_client.xadd(stream, event.to_fields())  # type: ignore[arg-type]
        await redis_client.xadd(stream, event.to_fields())  # type: ignore[arg-type]
        await redis_client.xadd(stream, entered(site, 9001).to_fields())  # type: ignore[arg-type]
        await redis_client.xadd(stream, entered(site, 9002).to_fields())  # type: ignore[arg-type]

        async def all_handled() -> bool:
            return consumer.stats.processed + consumer.stats.duplicates >= 4

        await eventually(all_handled)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, GUARD_SECONDS)
        await redis_client.delete(stream)
    found = await alerts_of(sessionmaker, rule_id)
    assert sorted(alert.dedup_key for alert in found) == ["session:9001", "session:9002"]
    assert consumer.stats.duplicates == 1


async def test_an_event_no_rule_is_triggered_by_is_skipped_unparsed(
    committed: tuple[async_sessionmaker[AsyncSession], Any, int], redis_client: Redis
) -> None:
    sessionmaker, site, rule_id = committed
    stream = f"events:alerts-test-{uuid.uuid4().hex[:8]}"
    consumer = alert_consumer(
        redis_client, sessionmaker, AlertEngine(), [stream], group=f"alerts-{uuid.uuid4().hex[:8]}", block_ms=100
    )
    await consumer.ensure_groups()
    # Neither a rule's trigger nor the end of an alert that may be open (a zone exit may end a zone-entry alert).
    unrelated = Event(source=SOURCE, type="rtls.camera.registered", data={"camera_id": 1})
    task = asyncio.create_task(consumer.run())
    try:
        await redis_client.xadd(stream, unrelated.to_fields())  # type: ignore[arg-type]
        await redis_client.xadd(stream, entered(site, 9003).to_fields())  # type: ignore[arg-type]

        async def both_seen() -> bool:
            return consumer.stats.processed + consumer.stats.skipped >= 2

        await eventually(both_seen)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, GUARD_SECONDS)
        await redis_client.delete(stream)
    assert (consumer.stats.processed, consumer.stats.skipped) == (1, 1)
    assert [alert.dedup_key for alert in await alerts_of(sessionmaker, rule_id)].count("session:9003") == 1


async def test_a_zone_exit_through_the_consumer_resolves_the_entry_alert_it_ends(
    committed: tuple[async_sessionmaker[AsyncSession], Any, int], redis_client: Redis
) -> None:
    """The consumer skips types no rule is triggered by, but not those that end an alert it raised: the exit of
    the presence session resolves that session's alert, as the system, and no other."""
    sessionmaker, site, rule_id = committed
    stream = f"events:alerts-test-{uuid.uuid4().hex[:8]}"
    consumer = alert_consumer(
        redis_client, sessionmaker, AlertEngine(), [stream], group=f"alerts-{uuid.uuid4().hex[:8]}", block_ms=100
    )
    await consumer.ensure_groups()
    exited = Event(
        source=SOURCE,
        type="rtls.person.zone_exited",
        subject=f"person/{site.person.id}",
        data={"session_id": 9005, "person_id": site.person.id, "zone_id": site.zones[1].id},
    )
    task = asyncio.create_task(consumer.run())
    try:
        await redis_client.xadd(stream, entered(site, 9005).to_fields())  # type: ignore[arg-type]
        await redis_client.xadd(stream, entered(site, 9006).to_fields())  # type: ignore[arg-type]

        async def raised() -> bool:
            return len(await alerts_of(sessionmaker, rule_id)) >= 2

        await eventually(raised)
        await redis_client.xadd(stream, exited.to_fields())  # type: ignore[arg-type]

        async def resolved() -> bool:
            return any(alert.status == "resolved" for alert in await alerts_of(sessionmaker, rule_id))

        await eventually(resolved)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, GUARD_SECONDS)
        await redis_client.delete(stream)
    states = {
        alert.dedup_key: (alert.status, alert.resolved_by_kind) for alert in await alerts_of(sessionmaker, rule_id)
    }
    assert states == {"session:9005": ("resolved", "system"), "session:9006": ("open", None)}


async def test_an_alert_opens_an_incident_through_an_incident_rule(
    committed: tuple[async_sessionmaker[AsyncSession], Any, int], redis_client: Redis
) -> None:
    sessionmaker, site, rule_id = committed
    async with sessionmaker() as session, session.begin():
        incident_rule = IncidentRule(
            name=f"restricted entries {uuid.uuid4().hex[:8]}",
            event_type="rtls.alert.created",
            conditions=[
                {"path": "rule_id", "op": "equals", "value": rule_id},
                {"path": "severity", "op": "in", "value": ["high", "critical"]},
            ],
            title_template="{message} (alert {alert_id})",
            severity="critical",
        )
        session.add(incident_rule)
        await session.flush()
        incident_rule_id = incident_rule.id
    async with sessionmaker() as session, session.begin():
        [alert] = await AlertEngine().handle_event(session, entered(site, 9101))
        alert_id = alert.id

    stream = f"events:rtls-cambus-test-{uuid.uuid4().hex[:8]}"
    relay = OutboxRelay(sessionmaker, schema=SCHEMA, redis=redis_client, stream=stream)
    while await relay.publish_batch():
        pass
    consumer = incident_rule_consumer(
        redis_client,
        sessionmaker,
        [stream],
        rule_interest(sessionmaker, max_age=2),
        group=f"incidents-{uuid.uuid4().hex[:8]}",
        consumer_name="test",
        start_from="0",
        block_ms=100,
    )
    task = asyncio.create_task(consumer.run())

    async def incidents() -> list[Incident]:
        async with sessionmaker() as session:
            query = select(Incident).where(Incident.rule_id == incident_rule_id)
            return list((await session.scalars(query)).all())

    async def opened() -> bool:
        return bool(await incidents())

    try:
        await eventually(opened)
        [incident] = await incidents()
    finally:
        consumer.stop()
        await asyncio.wait_for(task, GUARD_SECONDS)
        await redis_client.delete(stream)
        async with sessionmaker() as session, session.begin():
            await session.execute(delete(IncidentRule).where(IncidentRule.id == incident_rule_id))
    assert incident.title == f"Ana Souza entered zone Lab (alert {alert_id})"
    assert incident.source_event_type == "rtls.alert.created" and incident.severity == "critical"


async def test_two_replicas_racing_for_one_situation_raise_one_alert(
    committed: tuple[async_sessionmaker[AsyncSession], Any, int],
) -> None:
    sessionmaker, site, rule_id = committed
    event = entered(site, 9201)
    first = sessionmaker()
    await first.begin()
    try:
        assert len(await AlertEngine().handle_event(first, event)) == 1

        async def other_replica() -> None:
            async with sessionmaker() as session, session.begin():
                await AlertEngine().handle_event(session, event)

        racing = asyncio.create_task(other_replica())
        await eventually(lambda: waiting_on_a_lock(sessionmaker))
        assert not racing.done(), "the second insert waits for the first transaction"
        await first.commit()
    finally:
        await first.close()
    with pytest.raises(IntegrityError):
        await asyncio.wait_for(racing, GUARD_SECONDS)
    assert [alert.dedup_key for alert in await alerts_of(sessionmaker, rule_id)].count("session:9201") == 1
    async with sessionmaker() as session, session.begin():
        assert await AlertEngine().handle_event(session, event) == [], "retried, it finds the alert there"

"""Threshold evaluation on the write path: one event per crossing, hysteresis, re-arming, late data, rules for
every device, the rule cache (a tenant without rules costs no query), and the events in the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.db import create_sessionmaker
from telemetry_ingest.tenancy import repository as tenants
from telemetry_ingest.tenancy.models import Tenant
from telemetry_ingest.tenancy.rows import ReadingRow
from telemetry_ingest.thresholds import repository, service
from telemetry_ingest.thresholds.cache import Rule, RuleCache
from telemetry_ingest.thresholds.evaluation import THRESHOLD_CROSSED, evaluate_thresholds, next_state
from telemetry_ingest.thresholds.schemas import ThresholdRuleCreate, ThresholdRuleUpdate

TenantFactory = Callable[..., Awaitable[str]]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


rule_cache = RuleCache()
"""The cache these tests evaluate with, as an app shares one between its writer and its rules API."""


async def evaluate(session: AsyncSession, tenant: Tenant, rows: list[ReadingRow]) -> int:
    return await evaluate_thresholds(session, tenant, rows, rule_cache)


def at(second: int) -> datetime:
    return T0 + timedelta(seconds=second)


def readings(device: str, sensor: str, values: list[tuple[int, float]]) -> list[ReadingRow]:
    """Rows for `(second, value)` pairs."""
    return [ReadingRow(device, sensor, at(second), value, "celsius") for second, value in values]


async def new_tenant(session: AsyncSession, make_tenant: TenantFactory) -> Tenant:
    tenant = await tenants.get_by_slug(session, await make_tenant())
    assert tenant is not None
    return tenant


async def add_rule(session: AsyncSession, tenant: Tenant, **fields: Any) -> int:
    rule = await service.create_rule(
        session, tenant, ThresholdRuleCreate(**fields), max_rules=1000, rule_cache=rule_cache
    )
    return rule.id


async def crossings(session: AsyncSession, tenant: Tenant) -> list[dict[str, Any]]:
    """The envelopes of the tenant's crossing events in the outbox, oldest first."""
    rows = await session.execute(
        text(
            "SELECT envelope FROM telemetry_ingest.outbox WHERE type = :type AND tenant = :tenant ORDER BY created_at"
        ),
        {"type": THRESHOLD_CROSSED, "tenant": tenant.slug},
    )
    return [row.envelope for row in rows]


async def states(session: AsyncSession, tenant: Tenant, rule_id: int) -> dict[str, str]:
    found, _count = await repository.list_states(session, tenant.schema_name, rule_id, offset=0, limit=100)
    return {item.device_id: item.state for item in found}


def transitions(envelopes: list[dict[str, Any]]) -> list[tuple[str, str, str, float]]:
    return [
        (item["data"]["device_id"], item["data"]["from_state"], item["data"]["to_state"], item["data"]["value"])
        for item in envelopes
    ]


@pytest.fixture
def statements(db_engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement sent on the test database while the test runs."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(db_engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(db_engine.sync_engine, "before_cursor_execute", record)


def rule(min_value: float | None = None, max_value: float | None = None, hysteresis: float = 0.0) -> Rule:
    return Rule(id=1, device_id=None, sensor="t", min_value=min_value, max_value=max_value, hysteresis=hysteresis)


@pytest.mark.parametrize(
    ("state", "value", "limits", "expected"),
    [
        ("normal", 20, rule(10, 30, 2), "normal"),
        ("normal", 30, rule(10, 30, 2), "normal"),
        ("normal", 30.01, rule(10, 30, 2), "above"),
        ("normal", 9.99, rule(10, 30, 2), "below"),
        ("above", 29, rule(10, 30, 2), "above"),
        ("above", 28, rule(10, 30, 2), "normal"),
        ("below", 11.9, rule(10, 30, 2), "below"),
        ("below", 12, rule(10, 30, 2), "normal"),
        ("above", 5, rule(10, 30, 2), "below"),
        ("below", 35, rule(10, 30, 2), "above"),
        ("normal", -1000, rule(max_value=30), "normal"),
        ("normal", 1000, rule(min_value=10), "normal"),
        # A limit removed from the rule cannot keep its state.
        ("below", 0, rule(max_value=30, hysteresis=5), "normal"),
        ("above", 50, rule(min_value=10, hysteresis=5), "normal"),
    ],
)
def test_next_state(state: str, value: float, limits: Rule, expected: str) -> None:
    assert next_state(state, value, limits) == expected


async def test_a_crossing_emits_once_not_per_reading(db_session: AsyncSession, make_tenant: TenantFactory) -> None:
    tenant = await new_tenant(db_session, make_tenant)
    rule_id = await add_rule(db_session, tenant, sensor="temperature", max_value=30)

    emitted = await evaluate(
        db_session, tenant, readings("boiler-1", "temperature", [(1, 20), (2, 31), (3, 35), (4, 40)])
    )
    assert emitted == 1
    assert await evaluate(db_session, tenant, readings("boiler-1", "temperature", [(5, 45)])) == 0

    [crossed] = await crossings(db_session, tenant)
    assert crossed["source"] == "mirante/telemetry-ingest"
    assert crossed["tenant"] == tenant.slug
    assert crossed["subject"] == f"tenants/{tenant.slug}/devices/boiler-1/sensors/temperature"
    assert crossed["data"] == {
        "rule_id": rule_id,
        "device_id": "boiler-1",
        "sensor": "temperature",
        "from_state": "normal",
        "to_state": "above",
        "value": 31,
        "unit": "celsius",
        "ts": at(2).isoformat(),
        "min_value": None,
        "max_value": 30,
        "hysteresis": 0,
    }
    [state] = (await repository.list_states(db_session, tenant.schema_name, rule_id, offset=0, limit=10))[0]
    assert (state.state, state.value, state.ts, state.changed_at) == ("above", 45, at(5), at(2))


async def test_hysteresis_keeps_the_state_until_the_value_is_back_inside_by_the_margin(
    db_session: AsyncSession, make_tenant: TenantFactory
) -> None:
    tenant = await new_tenant(db_session, make_tenant)
    await add_rule(db_session, tenant, sensor="temperature", min_value=10, max_value=30, hysteresis=2)

    values = [(1, 31), (2, 29.5), (3, 30.5), (4, 28.1), (5, 28), (6, 29.9), (7, 9), (8, 11.9), (9, 10.5), (10, 12)]
    assert await evaluate(db_session, tenant, readings("d1", "temperature", values)) == 4
    assert transitions(await crossings(db_session, tenant)) == [
        ("d1", "normal", "above", 31),
        ("d1", "above", "normal", 28),
        ("d1", "normal", "below", 9),
        ("d1", "below", "normal", 12),
    ]


async def test_a_rule_rearms_after_returning_to_normal_across_batches(
    db_session: AsyncSession, make_tenant: TenantFactory
) -> None:
    tenant = await new_tenant(db_session, make_tenant)
    await add_rule(db_session, tenant, sensor="pressure", min_value=1.0, hysteresis=0.5)

    counts = [
        await evaluate(db_session, tenant, readings("pump", "pressure", batch))
        for batch in ([(1, 0.5)], [(2, 1.2)], [(3, 1.6)], [(4, 0.9)], [(5, 0.8)], [(6, 3.0)])
    ]
    assert counts == [1, 0, 1, 1, 0, 1]
    assert transitions(await crossings(db_session, tenant)) == [
        ("pump", "normal", "below", 0.5),
        ("pump", "below", "normal", 1.6),
        ("pump", "normal", "below", 0.9),
        ("pump", "below", "normal", 3.0),
    ]


async def test_a_value_jumping_over_both_limits_emits_one_event(
    db_session: AsyncSession, make_tenant: TenantFactory
) -> None:
    tenant = await new_tenant(db_session, make_tenant)
    await add_rule(db_session, tenant, sensor="t", min_value=0, max_value=10, hysteresis=1)

    assert await evaluate(db_session, tenant, readings("d", "t", [(1, 11), (2, -1), (3, 12)])) == 3
    assert transitions(await crossings(db_session, tenant)) == [
        ("d", "normal", "above", 11),
        ("d", "above", "below", -1),
        ("d", "below", "above", 12),
    ]


async def test_readings_are_taken_in_timestamp_order_and_late_data_never_moves_a_state_back(
    db_session: AsyncSession, make_tenant: TenantFactory
) -> None:
    tenant = await new_tenant(db_session, make_tenant)
    rule_id = await add_rule(db_session, tenant, sensor="t", max_value=30)

    # Out of order inside one batch: 20 (t=1) is taken before 35 (t=2), so the device ends above.
    assert await evaluate(db_session, tenant, readings("d", "t", [(2, 35), (1, 20)])) == 1
    assert await states(db_session, tenant, rule_id) == {"d": "above"}

    # Older than what was evaluated, or the same reading again (a redelivery): ignored.
    assert await evaluate(db_session, tenant, readings("d", "t", [(0, 10), (1, 20), (2, 35)])) == 0
    assert await states(db_session, tenant, rule_id) == {"d": "above"}
    [state] = (await repository.list_states(db_session, tenant.schema_name, rule_id, offset=0, limit=10))[0]
    assert (state.value, state.ts) == (35, at(2))

    # Newer data still counts, even when older rows arrive in the same batch.
    assert await evaluate(db_session, tenant, readings("d", "t", [(3, 25), (1, 50)])) == 1
    assert await states(db_session, tenant, rule_id) == {"d": "normal"}
    assert len(await crossings(db_session, tenant)) == 2


async def test_device_wide_and_device_specific_rules(db_session: AsyncSession, make_tenant: TenantFactory) -> None:
    tenant = await new_tenant(db_session, make_tenant)
    every = await add_rule(db_session, tenant, sensor="humidity", max_value=80)
    own = await add_rule(db_session, tenant, device_id="d2", sensor="humidity", max_value=60)

    rows = [
        *readings("d1", "humidity", [(1, 70), (2, 85)]),
        *readings("d2", "humidity", [(1, 70), (2, 85)]),
        *readings("d3", "humidity", [(1, 10)]),
        *readings("d1", "temperature", [(1, 500)]),
    ]
    assert await evaluate(db_session, tenant, rows) == 3
    assert await states(db_session, tenant, every) == {"d1": "above", "d2": "above", "d3": "normal"}
    assert await states(db_session, tenant, own) == {"d2": "above"}
    events = [
        (item["data"]["rule_id"], item["data"]["device_id"], item["data"]["value"])
        for item in await crossings(db_session, tenant)
    ]
    assert sorted(events) == sorted([(every, "d1", 85), (every, "d2", 85), (own, "d2", 70)])


async def test_disabled_rules_are_not_evaluated(db_session: AsyncSession, make_tenant: TenantFactory) -> None:
    tenant = await new_tenant(db_session, make_tenant)
    rule_id = await add_rule(db_session, tenant, sensor="t", max_value=30, enabled=False)
    assert await evaluate(db_session, tenant, readings("d", "t", [(1, 99)])) == 0

    await service.update_rule(db_session, tenant, rule_id, ThresholdRuleUpdate(enabled=True), rule_cache=rule_cache)
    assert await evaluate(db_session, tenant, readings("d", "t", [(2, 99)])) == 1


async def test_no_rules_costs_no_query_once_cached(
    db_session: AsyncSession, make_tenant: TenantFactory, statements: list[str]
) -> None:
    tenant = await new_tenant(db_session, make_tenant)
    rows = readings("d", "t", [(second, 20.0) for second in range(1000)])

    loads = rule_cache.loads
    statements.clear()
    assert await evaluate(db_session, tenant, rows) == 0
    assert rule_cache.loads == loads + 1
    assert len(statements) == 1 and "threshold_rules" in statements[0]

    statements.clear()
    for _ in range(5):
        assert await evaluate(db_session, tenant, rows) == 0
    assert statements == []
    assert rule_cache.loads == loads + 1


async def test_rows_of_sensors_without_rules_touch_no_table(
    db_session: AsyncSession, make_tenant: TenantFactory, statements: list[str]
) -> None:
    tenant = await new_tenant(db_session, make_tenant)
    await add_rule(db_session, tenant, sensor="t", max_value=30)
    await add_rule(db_session, tenant, device_id="other", sensor="h", max_value=30)
    await evaluate(db_session, tenant, [])  # nothing to do: not even the rules are read
    await evaluate(db_session, tenant, readings("d", "co2", [(1, 5000)]))  # fills the cache

    statements.clear()
    assert await evaluate(db_session, tenant, readings("d", "co2", [(2, 5000)])) == 0
    assert await evaluate(db_session, tenant, readings("d", "h", [(2, 5000)])) == 0
    assert statements == []


async def test_rule_changes_through_the_service_reach_evaluation_at_once(
    db_session: AsyncSession, make_tenant: TenantFactory
) -> None:
    tenant = await new_tenant(db_session, make_tenant)
    assert await evaluate(db_session, tenant, readings("d", "t", [(1, 99)])) == 0  # cached: no rules

    rule_id = await add_rule(db_session, tenant, sensor="t", max_value=30)
    assert await evaluate(db_session, tenant, readings("d", "t", [(2, 99)])) == 1

    await service.update_rule(db_session, tenant, rule_id, ThresholdRuleUpdate(max_value=200), rule_cache=rule_cache)
    assert await evaluate(db_session, tenant, readings("d", "t", [(3, 99)])) == 1  # above -> normal

    await service.delete_rule(db_session, tenant, rule_id, rule_cache=rule_cache)
    assert await evaluate(db_session, tenant, readings("d", "t", [(4, 999)])) == 0


async def test_the_cache_expires(db_session: AsyncSession, make_tenant: TenantFactory) -> None:
    tenant = await new_tenant(db_session, make_tenant)
    ttl = rule_cache.ttl_seconds
    rule_cache.ttl_seconds = 0
    try:
        loads = rule_cache.loads
        for second in range(3):
            await evaluate(db_session, tenant, readings("d", "t", [(second, 1)]))
        assert rule_cache.loads == loads + 3
    finally:
        rule_cache.ttl_seconds = ttl


async def test_a_rule_deleted_by_another_process_is_skipped(
    db_session: AsyncSession, make_tenant: TenantFactory
) -> None:
    tenant = await new_tenant(db_session, make_tenant)
    gone = await add_rule(db_session, tenant, sensor="t", max_value=30)
    kept = await add_rule(db_session, tenant, sensor="t", max_value=50)
    assert await evaluate(db_session, tenant, readings("d1", "t", [(1, 20)])) == 0  # cache holds both

    # Deleted behind the cache's back, as another replica would: no new state can point at it.
    assert await repository.delete_rule(db_session, tenant.schema_name, gone)
    assert await evaluate(db_session, tenant, readings("d2", "t", [(1, 99)])) == 1
    assert await states(db_session, tenant, kept) == {"d1": "normal", "d2": "above"}
    assert [item["data"]["rule_id"] for item in await crossings(db_session, tenant)] == [kept]


async def test_concurrent_writers_of_one_device_cross_once(db_engine: AsyncEngine, make_tenant: TenantFactory) -> None:
    """Two transactions evaluating the same device at once: the second waits for the first's state lock and
    then sees its state, so the crossing is reported once."""
    slug = await make_tenant(committed=True)
    sessionmaker = create_sessionmaker(db_engine)
    async with sessionmaker() as session, session.begin():
        tenant = await tenants.get_by_slug(session, slug)
        assert tenant is not None
        await add_rule(session, tenant, sensor="t", max_value=30)
        await evaluate(session, tenant, readings("d", "t", [(0, 20)]))

    locked, release = asyncio.Event(), asyncio.Event()

    async def first_writer() -> int:
        async with sessionmaker() as session, session.begin():
            emitted = await evaluate(session, tenant, readings("d", "t", [(1, 40)]))
            locked.set()
            await release.wait()
            return emitted

    async def second_writer() -> int:
        async with sessionmaker() as session, session.begin():
            return await evaluate(session, tenant, readings("d", "t", [(2, 45)]))

    first = asyncio.create_task(first_writer())
    await locked.wait()
    second = asyncio.create_task(second_writer())
    try:
        # Wait (bounded only against a hang) until the second writer queues behind the first's lock.
        async with asyncio.timeout(120), db_engine.connect() as observer:
            waiting = 0
            while not waiting and not second.done():
                await asyncio.sleep(0.02)
                waiting = await observer.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
        assert waiting, "the second writer did not wait for the state lock"
    finally:
        release.set()
    assert (await first, await second) == (1, 0)
    async with sessionmaker() as session:
        assert len(await crossings(session, tenant)) == 1

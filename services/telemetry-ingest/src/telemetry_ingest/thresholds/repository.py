"""Queries of threshold rules and states, in the tenant schema named by the caller (always schema-qualified)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Row,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from telemetry_ingest.tenancy.naming import check_schema


@dataclass(frozen=True)
class ThresholdTables:
    """The threshold tables of one tenant schema."""

    rules: Table
    states: Table


@lru_cache(maxsize=1024)
def tables(schema: str) -> ThresholdTables:
    """The rule and state tables of one tenant schema (the tenant migrations create them)."""
    metadata = MetaData(schema=check_schema(schema))
    timestamp = DateTime(timezone=True)
    rules = Table(
        "threshold_rules",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("device_id", Text),
        Column("sensor", Text, nullable=False),
        Column("min_value", Float),
        Column("max_value", Float),
        Column("hysteresis", Float, nullable=False),
        Column("enabled", Boolean, nullable=False),
        Column("created_at", timestamp, nullable=False),
        Column("updated_at", timestamp, nullable=False),
    )
    states = Table(
        "threshold_states",
        metadata,
        Column("rule_id", Integer, primary_key=True),
        Column("device_id", Text, primary_key=True),
        Column("state", Text, nullable=False),
        Column("value", Float),
        Column("ts", timestamp),
        Column("changed_at", timestamp),
    )
    return ThresholdTables(rules=rules, states=states)


@dataclass(frozen=True)
class RuleRecord:
    """A stored rule."""

    id: int
    device_id: str | None
    sensor: str
    min_value: float | None
    max_value: float | None
    hysteresis: float
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Row[Any]) -> RuleRecord:
        """The record of a `threshold_rules` row."""
        return cls(**row._mapping)


@dataclass(frozen=True)
class StateRecord:
    """The state of one device against one rule."""

    device_id: str
    state: str
    value: float | None
    ts: datetime | None
    changed_at: datetime | None


async def count_rules(session: AsyncSession, schema: str) -> int:
    """How many rules the tenant has, enabled or not."""
    rules = tables(schema).rules
    return int(await session.scalar(select(func.count()).select_from(rules)) or 0)


async def list_rules(
    session: AsyncSession,
    schema: str,
    *,
    offset: int,
    limit: int,
    device_id: str | None = None,
    sensor: str | None = None,
    enabled: bool | None = None,
) -> tuple[list[RuleRecord], int]:
    """Rules by id, filtered (a `device_id` filter matches that device's rules only), with the total count."""
    rules = tables(schema).rules
    conditions = []
    if device_id is not None:
        conditions.append(rules.c.device_id == device_id)
    if sensor is not None:
        conditions.append(rules.c.sensor == sensor)
    if enabled is not None:
        conditions.append(rules.c.enabled.is_(enabled))
    rows = await session.execute(select(rules).where(*conditions).order_by(rules.c.id).offset(offset).limit(limit))
    count = await session.scalar(select(func.count()).select_from(rules).where(*conditions))
    return [RuleRecord.of(row) for row in rows], int(count or 0)


async def get_rule(session: AsyncSession, schema: str, rule_id: int) -> RuleRecord | None:
    """The rule `rule_id`, or None."""
    rules = tables(schema).rules
    row = (await session.execute(select(rules).where(rules.c.id == rule_id))).first()
    return None if row is None else RuleRecord.of(row)


async def find_same_rule(
    session: AsyncSession,
    schema: str,
    *,
    device_id: str | None,
    sensor: str,
    min_value: float | None,
    max_value: float | None,
    hysteresis: float,
    other_than: int | None = None,
) -> int | None:
    """The id of a rule with exactly these scope and limits (excluding `other_than`), if any."""
    rules = tables(schema).rules
    query = select(rules.c.id).where(
        rules.c.device_id.is_not_distinct_from(device_id),
        rules.c.sensor == sensor,
        rules.c.min_value.is_not_distinct_from(min_value),
        rules.c.max_value.is_not_distinct_from(max_value),
        rules.c.hysteresis == hysteresis,
    )
    if other_than is not None:
        query = query.where(rules.c.id != other_than)
    found = await session.scalar(query.limit(1))
    return None if found is None else int(found)


async def insert_rule(session: AsyncSession, schema: str, values: Mapping[str, Any]) -> RuleRecord:
    """Insert a rule from its column values; returns it as stored."""
    rules = tables(schema).rules
    row = (await session.execute(insert(rules).values(**values).returning(*rules.c))).one()
    return RuleRecord.of(row)


async def update_rule(session: AsyncSession, schema: str, rule_id: int, values: Mapping[str, Any]) -> RuleRecord | None:
    """Apply `values` and stamp `updated_at`; None when the rule does not exist."""
    rules = tables(schema).rules
    statement = update(rules).where(rules.c.id == rule_id).values(**values, updated_at=func.now()).returning(*rules.c)
    row = (await session.execute(statement)).first()
    return None if row is None else RuleRecord.of(row)


async def delete_rule(session: AsyncSession, schema: str, rule_id: int) -> bool:
    """Delete a rule (its states go with it); False when there was none."""
    rules = tables(schema).rules
    deleted = await session.execute(delete(rules).where(rules.c.id == rule_id).returning(rules.c.id))
    return deleted.first() is not None


async def state_counts(session: AsyncSession, schema: str, rule_id: int) -> dict[str, int]:
    """Devices per state for a rule (states without devices are absent)."""
    states = tables(schema).states
    rows = await session.execute(
        select(states.c.state, func.count()).where(states.c.rule_id == rule_id).group_by(states.c.state)
    )
    return {str(state): int(count) for state, count in rows}


async def list_states(
    session: AsyncSession,
    schema: str,
    rule_id: int,
    *,
    offset: int,
    limit: int,
    state: str | None = None,
    device_id: str | None = None,
) -> tuple[list[StateRecord], int]:
    """The devices' states against a rule, by device id, with the total count."""
    states = tables(schema).states
    conditions = [states.c.rule_id == rule_id]
    if state is not None:
        conditions.append(states.c.state == state)
    if device_id is not None:
        conditions.append(states.c.device_id == device_id)
    columns = (states.c.device_id, states.c.state, states.c.value, states.c.ts, states.c.changed_at)
    rows = await session.execute(
        select(*columns).where(*conditions).order_by(states.c.device_id).offset(offset).limit(limit)
    )
    count = await session.scalar(select(func.count()).select_from(states).where(*conditions))
    return [StateRecord(**row._mapping) for row in rows], int(count or 0)


async def delete_states(session: AsyncSession, schema: str, rule_id: int) -> None:
    """Forget every device's state against a rule (its scope changed: the next readings start from normal)."""
    states = tables(schema).states
    await session.execute(delete(states).where(states.c.rule_id == rule_id))

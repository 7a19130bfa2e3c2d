"""Queries of threshold rules and states, in the tenant schema named by the caller (bound with `in_tenant`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate
from telemetry_ingest.tenancy.tables import in_tenant, threshold_rules, threshold_states

rules = threshold_rules
states = threshold_states

RuleRow = Row[Any]
"""A `threshold_rules` row: every column, by name (`rule.sensor`)."""
StateRow = Row[Any]
"""A `threshold_states` row without `rule_id`."""

STATE_COLUMNS: Final = tuple(column for column in states.c if column.name != "rule_id")


async def count_rules(session: AsyncSession, schema: str) -> int:
    """How many rules the tenant has, enabled or not."""
    count = await session.scalar(select(func.count()).select_from(rules), execution_options=in_tenant(schema))
    return int(count or 0)


async def list_rules(
    session: AsyncSession,
    schema: str,
    *,
    offset: int,
    limit: int,
    device_id: str | None = None,
    sensor: str | None = None,
    enabled: bool | None = None,
) -> tuple[Sequence[RuleRow], int]:
    """Rules by id, filtered (a `device_id` filter matches that device's rules only), with the total count."""
    conditions = []
    if device_id is not None:
        conditions.append(rules.c.device_id == device_id)
    if sensor is not None:
        conditions.append(rules.c.sensor == sensor)
    if enabled is not None:
        conditions.append(rules.c.enabled.is_(enabled))
    statement = select(rules).where(*conditions).order_by(rules.c.id).execution_options(**in_tenant(schema))
    return await paginate(session, statement, offset=offset, limit=limit)


async def get_rule(session: AsyncSession, schema: str, rule_id: int) -> RuleRow | None:
    """The rule `rule_id`, or None."""
    statement = select(rules).where(rules.c.id == rule_id)
    return (await session.execute(statement, execution_options=in_tenant(schema))).first()


async def find_same_rule(
    session: AsyncSession,
    schema: str,
    identity: Mapping[str, Any],
    *,
    other_than: int | None = None,
) -> int | None:
    """The id of a rule whose columns equal `identity` (NULL matching NULL), other than `other_than`, if any."""
    query = select(rules.c.id).where(*(rules.c[name].is_not_distinct_from(value) for name, value in identity.items()))
    if other_than is not None:
        query = query.where(rules.c.id != other_than)
    found = await session.scalar(query.limit(1), execution_options=in_tenant(schema))
    return None if found is None else int(found)


async def insert_rule(session: AsyncSession, schema: str, values: Mapping[str, Any]) -> RuleRow:
    """Insert a rule from its column values; returns it as stored."""
    statement = insert(rules).values(**values).returning(*rules.c)
    return (await session.execute(statement, execution_options=in_tenant(schema))).one()


async def update_rule(session: AsyncSession, schema: str, rule_id: int, values: Mapping[str, Any]) -> RuleRow | None:
    """Apply `values` and stamp `updated_at`; None when the rule does not exist."""
    statement = update(rules).where(rules.c.id == rule_id).values(**values, updated_at=func.now()).returning(*rules.c)
    return (await session.execute(statement, execution_options=in_tenant(schema))).first()


async def delete_rule(session: AsyncSession, schema: str, rule_id: int) -> bool:
    """Delete a rule (its states go with it); False when there was none."""
    statement = delete(rules).where(rules.c.id == rule_id).returning(rules.c.id)
    deleted = await session.execute(statement, execution_options=in_tenant(schema))
    return deleted.first() is not None


async def state_counts(session: AsyncSession, schema: str, rule_id: int) -> dict[str, int]:
    """Devices per state for a rule (states without devices are absent)."""
    statement = select(states.c.state, func.count()).where(states.c.rule_id == rule_id).group_by(states.c.state)
    rows = await session.execute(statement, execution_options=in_tenant(schema))
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
) -> tuple[Sequence[StateRow], int]:
    """The devices' states against a rule, by device id, with the total count."""
    conditions = [states.c.rule_id == rule_id]
    if state is not None:
        conditions.append(states.c.state == state)
    if device_id is not None:
        conditions.append(states.c.device_id == device_id)
    statement = select(*STATE_COLUMNS).where(*conditions).order_by(states.c.device_id)
    return await paginate(session, statement.execution_options(**in_tenant(schema)), offset=offset, limit=limit)


async def delete_states(session: AsyncSession, schema: str, rule_id: int) -> None:
    """Forget every device's state against a rule (its scope changed: the next readings start from normal)."""
    await session.execute(delete(states).where(states.c.rule_id == rule_id), execution_options=in_tenant(schema))

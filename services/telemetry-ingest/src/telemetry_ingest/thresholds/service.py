"""Threshold rules of a tenant: create, list, read, change, delete, and the devices' current states.

Everything runs in the caller's transaction (`flush`, never `commit`). Each change drops the tenant's rules from
the app's evaluation cache (the caller passes it) at once and again when the transaction commits (an evaluation
in between may have reloaded the old rules); other processes see the change when their cache entry expires.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as SyncSession

from mirante.web.errors import ValidationFailedError
from telemetry_ingest.tenancy.locks import lock_tenant
from telemetry_ingest.tenancy.models import Tenant
from telemetry_ingest.thresholds import repository
from telemetry_ingest.thresholds.cache import RuleCache
from telemetry_ingest.thresholds.errors import DuplicateRuleError, RuleNotFoundError, TooManyRulesError
from telemetry_ingest.thresholds.repository import RuleRow, StateRow
from telemetry_ingest.thresholds.schemas import ThresholdRuleCreate, ThresholdRuleUpdate, limit_problems

logger = logging.getLogger(__name__)

RULES_NAMESPACE = 7_243_010
"""Advisory lock namespace (with the schema's hash): one writer of a tenant's rules at a time, so the duplicate
and count checks cannot race."""

SCOPE_FIELDS = ("device_id", "sensor")
IDENTITY_FIELDS: Final = tuple(name for name in ThresholdRuleCreate.model_fields if name != "enabled")
"""What makes two rules the same rule: every field of a new rule but `enabled`."""


def invalidate_rules(session: AsyncSession, schema: str, rule_cache: RuleCache) -> None:
    """Drop `schema`'s rules from `rule_cache` now and after the session's transaction commits."""
    rule_cache.invalidate(schema)

    def after_commit(_session: SyncSession) -> None:
        rule_cache.invalidate(schema)

    event.listen(session.sync_session, "after_commit", after_commit, once=True)


async def list_rules(
    session: AsyncSession,
    tenant: Tenant,
    *,
    offset: int,
    limit: int,
    device_id: str | None = None,
    sensor: str | None = None,
    enabled: bool | None = None,
) -> tuple[Sequence[RuleRow], int]:
    """The tenant's rules by id, filtered, with the total count."""
    return await repository.list_rules(
        session,
        tenant.schema_name,
        offset=offset,
        limit=limit,
        device_id=device_id,
        sensor=sensor,
        enabled=enabled,
    )


async def get_rule(session: AsyncSession, tenant: Tenant, rule_id: int) -> RuleRow:
    """One rule; `RuleNotFoundError` (404) when the tenant has none with this id."""
    rule = await repository.get_rule(session, tenant.schema_name, rule_id)
    if rule is None:
        raise RuleNotFoundError(rule_id)
    return rule


async def create_rule(
    session: AsyncSession, tenant: Tenant, body: ThresholdRuleCreate, *, max_rules: int, rule_cache: RuleCache
) -> RuleRow:
    """Add a rule. 409 when the same device, sensor and limits exist already or the tenant has `max_rules`."""
    schema = tenant.schema_name
    values = body.model_dump()
    await lock_tenant(session, RULES_NAMESPACE, schema)
    if await repository.count_rules(session, schema) >= max_rules:
        raise TooManyRulesError(max_rules)
    await _refuse_duplicate(session, schema, values)
    rule = await repository.insert_rule(session, schema, values)
    invalidate_rules(session, schema, rule_cache)
    logger.info("tenant %s: threshold rule %d created", tenant.slug, rule.id)
    return rule


async def update_rule(
    session: AsyncSession, tenant: Tenant, rule_id: int, body: ThresholdRuleUpdate, *, rule_cache: RuleCache
) -> RuleRow:
    """Change a rule. The result must pass the checks of a new rule (422) and not duplicate another (409).

    Moving a rule to another device or sensor forgets its states; changing limits keeps them, so the next
    reading of each device reports a crossing if the new limits put it on another side.
    """
    schema = tenant.schema_name
    await lock_tenant(session, RULES_NAMESPACE, schema)
    current = await get_rule(session, tenant, rule_id)
    changes = {field: value for field, value in body.changes().items() if getattr(current, field) != value}
    if not changes:
        return current
    merged: dict[str, Any] = {name: getattr(current, name) for name in IDENTITY_FIELDS} | changes
    problems = limit_problems(merged["min_value"], merged["max_value"], merged["hysteresis"])
    if problems:
        raise ValidationFailedError("; ".join(problem["message"] for problem in problems), details=problems)
    await _refuse_duplicate(session, schema, merged, other_than=rule_id)
    rule = await repository.update_rule(session, schema, rule_id, changes)
    if rule is None:
        raise RuleNotFoundError(rule_id)
    if any(field in changes for field in SCOPE_FIELDS):
        await repository.delete_states(session, schema, rule_id)
    invalidate_rules(session, schema, rule_cache)
    logger.info("tenant %s: threshold rule %d changed (%s)", tenant.slug, rule_id, ", ".join(sorted(changes)))
    return rule


async def delete_rule(session: AsyncSession, tenant: Tenant, rule_id: int, *, rule_cache: RuleCache) -> None:
    """Delete a rule and its states; `RuleNotFoundError` (404) when there is none."""
    schema = tenant.schema_name
    if not await repository.delete_rule(session, schema, rule_id):
        raise RuleNotFoundError(rule_id)
    invalidate_rules(session, schema, rule_cache)
    logger.info("tenant %s: threshold rule %d deleted", tenant.slug, rule_id)


async def state_counts(session: AsyncSession, tenant: Tenant, rule_id: int) -> dict[str, int]:
    """How many devices are normal, below and above for a rule."""
    return await repository.state_counts(session, tenant.schema_name, rule_id)


async def list_states(
    session: AsyncSession,
    tenant: Tenant,
    rule_id: int,
    *,
    offset: int,
    limit: int,
    state: str | None = None,
    device_id: str | None = None,
) -> tuple[Sequence[StateRow], int]:
    """The devices' states against an existing rule (404 otherwise), by device id."""
    await get_rule(session, tenant, rule_id)
    return await repository.list_states(
        session, tenant.schema_name, rule_id, offset=offset, limit=limit, state=state, device_id=device_id
    )


async def _refuse_duplicate(
    session: AsyncSession, schema: str, values: dict[str, Any], *, other_than: int | None = None
) -> None:
    identity = {name: values[name] for name in IDENTITY_FIELDS}
    existing = await repository.find_same_rule(session, schema, identity, other_than=other_than)
    if existing is not None:
        raise DuplicateRuleError(existing)

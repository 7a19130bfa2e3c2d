"""HTTP endpoints of threshold rules: `/api/v1/tenants/{tenant}/thresholds[/{rule_id}[/states]]`.

Viewers of the tenant read; operators create, change and delete.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from mirante.types import Id32
from mirante.web.pagination import Page, Pagination
from telemetry_ingest.deps import AppSettings
from telemetry_ingest.tenancy.deps import TenantOperator, TenantScope
from telemetry_ingest.thresholds import service
from telemetry_ingest.thresholds.deps import RuleCacheDep
from telemetry_ingest.thresholds.repository import RuleRow
from telemetry_ingest.thresholds.schemas import (
    Identifier,
    StateCounts,
    StateName,
    ThresholdRuleCreate,
    ThresholdRuleDetail,
    ThresholdRuleRead,
    ThresholdRuleUpdate,
    ThresholdStateRead,
)

router = APIRouter(prefix="/api/v1/tenants/{tenant}/thresholds", tags=["thresholds"])

RuleId = Annotated[Id32, Path(description="the rule's id")]

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such tenant or rule"}}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "a rule with the same device, sensor and limits exists, or the tenant has the most rules"},
    422: {"description": "no limit, min_value not below max_value, or hysteresis not below max_value - min_value"},
}


def _read(rule: RuleRow) -> ThresholdRuleRead:
    return ThresholdRuleRead.model_validate(rule)


@router.get("")
async def list_rules(
    scope: TenantScope,
    pagination: Pagination,
    device_id: Annotated[Identifier | None, Query(description="only this device's own rules")] = None,
    sensor: Annotated[Identifier | None, Query(description="only rules of this sensor")] = None,
    enabled: Annotated[bool | None, Query(description="only enabled (true) or disabled (false) rules")] = None,
) -> Page[ThresholdRuleRead]:
    """The tenant's threshold rules, by id."""
    rules, count = await service.list_rules(
        scope.session,
        scope.tenant,
        offset=pagination.offset,
        limit=pagination.limit,
        device_id=device_id,
        sensor=sensor,
        enabled=enabled,
    )
    return pagination.build([_read(rule) for rule in rules], count)


@router.post("", status_code=status.HTTP_201_CREATED, responses=WRITE_ERRORS)
async def create_rule(
    scope: TenantOperator,
    body: ThresholdRuleCreate,
    settings: AppSettings,
    rule_cache: RuleCacheDep,
    response: Response,
) -> ThresholdRuleRead:
    """Create a rule (operators): a reading of the sensor below `min_value` or above `max_value` publishes one
    `telemetry.threshold.crossed` event, and so does its return inside the limits by `hysteresis`."""
    rule = await service.create_rule(
        scope.session,
        scope.tenant,
        body,
        max_rules=settings.threshold_max_rules_per_tenant,
        rule_cache=rule_cache,
    )
    response.headers["Location"] = f"/api/v1/tenants/{scope.slug}/thresholds/{rule.id}"
    return _read(rule)


@router.get("/{rule_id}", responses=NOT_FOUND)
async def get_rule(scope: TenantScope, rule_id: RuleId) -> ThresholdRuleDetail:
    """One rule, with how many devices are currently normal, below and above."""
    rule = await service.get_rule(scope.session, scope.tenant, rule_id)
    counts = await service.state_counts(scope.session, scope.tenant, rule_id)
    return ThresholdRuleDetail(**_read(rule).model_dump(), states=StateCounts(**counts))


@router.patch("/{rule_id}", responses={**NOT_FOUND, **WRITE_ERRORS})
async def update_rule(
    scope: TenantOperator,
    rule_id: RuleId,
    body: ThresholdRuleUpdate,
    rule_cache: RuleCacheDep,
) -> ThresholdRuleRead:
    """Change a rule (operators). Moving it to another device or sensor resets its states."""
    return _read(await service.update_rule(scope.session, scope.tenant, rule_id, body, rule_cache=rule_cache))


@router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_rule(scope: TenantOperator, rule_id: RuleId, rule_cache: RuleCacheDep) -> Response:
    """Delete a rule and its states (operators)."""
    await service.delete_rule(scope.session, scope.tenant, rule_id, rule_cache=rule_cache)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{rule_id}/states", responses=NOT_FOUND)
async def list_states(
    scope: TenantScope,
    rule_id: RuleId,
    pagination: Pagination,
    state: Annotated[StateName | None, Query(description="only devices in this state")] = None,
    device_id: Annotated[Identifier | None, Query(description="only this device")] = None,
) -> Page[ThresholdStateRead]:
    """Each device's current state against the rule (devices appear once the rule has seen a reading of theirs)."""
    states, count = await service.list_states(
        scope.session,
        scope.tenant,
        rule_id,
        offset=pagination.offset,
        limit=pagination.limit,
        state=state,
        device_id=device_id,
    )
    return pagination.build([ThresholdStateRead.model_validate(item) for item in states], count)

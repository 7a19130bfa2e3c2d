"""HTTP endpoints of alerts: `/api/v1/alert-rules[...]`, `/api/v1/alert-events[...]`, `/api/v1/reports/alerts`.

Viewers read, operators manage rules and acknowledge or resolve alerts. Rules are closed to tenant-bound accounts;
alerts and the report show such an account only its tenant's alerts (see `deps`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from mirante.auth.policy import tenant_reach
from mirante.db import Session
from mirante.web.pagination import Page, Pagination
from rtls_cambus.alerts import reports, service
from rtls_cambus.alerts.deps import Reach, SuiteOperator, SuiteViewer
from rtls_cambus.alerts.repository import AlertFilters, RuleFilters
from rtls_cambus.alerts.schemas import (
    AlertAction,
    AlertId,
    AlertRead,
    AlertReport,
    AlertRuleCreate,
    AlertRuleId,
    AlertRuleRead,
    AlertRuleUpdate,
    AlertStatus,
    Bucket,
    EnabledFilter,
    From,
    KindFilter,
    PersonFilter,
    ReportTimeZone,
    RuleFilter,
    RuleKindFilter,
    SeverityFilter,
    StatusesFilter,
    To,
    ZoneFilter,
)
from rtls_cambus.deps import Operator
from rtls_cambus.fields import Search, search_text

router = APIRouter(prefix="/api/v1")

_RULE_REFUSALS: Final[dict[int | str, dict[str, Any]]] = {
    404: {
        "description": "a zone, person, group, gateway, camera, floor or building of the body names nothing "
        "(`details.field` names the field)"
    },
    409: {"description": "another rule has this name"},
    422: {"description": "invalid rule (a field of another kind, both a person and a group, an unknown time zone...)"},
}
_REPORT_REFUSALS: Final[dict[int | str, dict[str, Any]]] = {
    422: {"description": "`to` not after `from`, too many periods, or an unknown time zone"}
}
ActionBody = Annotated[AlertAction | None, Body(description="an optional note")]


@router.get("/alert-rules", tags=["alert rules"])
async def list_alert_rules(
    session: Session,
    principal: SuiteViewer,
    pagination: Pagination,
    kind: RuleKindFilter = None,
    enabled: EnabledFilter = None,
    severity: SeverityFilter = None,
    q: Search = None,
) -> Page[AlertRuleRead]:
    """Alert rules by name, filtered by kind, enabled flag, severity or part of the name."""
    filters = RuleFilters(
        kind=kind.value if kind else None,
        enabled=enabled,
        severity=severity.value if severity else None,
        search=search_text(q),
    )
    found, count = await service.list_rules(session, filters, offset=pagination.offset, limit=pagination.limit)
    return pagination.build(found, count)


@router.post("/alert-rules", tags=["alert rules"], status_code=status.HTTP_201_CREATED, responses=_RULE_REFUSALS)
async def create_alert_rule(
    session: Session, principal: SuiteOperator, body: AlertRuleCreate, response: Response
) -> AlertRuleRead:
    """A rule of one of six kinds (`kind`): `zone_entry`, `zone_absence`, `person_not_seen`, `gateway_offline`,
    `camera_event`, `suite_event`; operators."""
    rule = await service.create_rule(session, body)
    response.headers["Location"] = f"/api/v1/alert-rules/{rule.id}"
    return rule


@router.get("/alert-rules/{rule_id}", tags=["alert rules"])
async def get_alert_rule(session: Session, principal: SuiteViewer, rule_id: AlertRuleId) -> AlertRuleRead:
    return service.rule_read(await service.get_rule(session, rule_id))


@router.patch("/alert-rules/{rule_id}", tags=["alert rules"], responses=_RULE_REFUSALS)
async def update_alert_rule(
    session: Session, principal: SuiteOperator, rule_id: AlertRuleId, body: AlertRuleUpdate
) -> AlertRuleRead:
    """Change fields of the rule's kind (operators); the result must be a valid rule of that kind."""
    return await service.update_rule(session, rule_id, body)


@router.delete("/alert-rules/{rule_id}", tags=["alert rules"], status_code=status.HTTP_204_NO_CONTENT)
async def delete_alert_rule(session: Session, principal: SuiteOperator, rule_id: AlertRuleId) -> None:
    """Delete a rule (operators); the alerts it raised stay."""
    await service.delete_rule(session, rule_id)


@router.get("/alert-events", tags=["alerts"])
async def list_alert_events(
    session: Session,
    reach: Reach,
    pagination: Pagination,
    status: StatusesFilter = None,
    severity: SeverityFilter = None,
    kind: KindFilter = None,
    rule_id: RuleFilter = None,
    person_id: PersonFilter = None,
    zone_id: ZoneFilter = None,
    since: From = None,
    until: To = None,
) -> Page[AlertRead]:
    """Alerts, newest first, by status (one or more), severity, kind, rule, person, zone or period."""
    filters = AlertFilters(
        statuses=tuple(dict.fromkeys(item.value for item in status or [])),
        severity=severity.value if severity else None,
        kind=kind.value if kind else None,
        rule_id=rule_id,
        person_id=person_id,
        zone_id=zone_id,
        since=since,
        until=until,
    )
    found, count = await service.list_alerts(session, filters, reach, offset=pagination.offset, limit=pagination.limit)
    return pagination.build(found, count)


@router.get("/alert-events/{alert_id}", tags=["alerts"])
async def get_alert_event(session: Session, reach: Reach, alert_id: AlertId) -> AlertRead:
    return service.alert_read(await service.get_alert(session, alert_id, reach))


@router.post(
    "/alert-events/{alert_id}/acknowledge",
    tags=["alerts"],
    responses={409: {"description": "the alert is acknowledged or resolved already"}},
)
async def acknowledge_alert_event(
    session: Session, principal: Operator, alert_id: AlertId, body: ActionBody = None
) -> AlertRead:
    """Someone is on it (operators): an open alert becomes acknowledged, with who and when."""
    note = body.note if body else None
    reach = tenant_reach(principal)
    return await service.change_status(session, alert_id, AlertStatus.acknowledged, note, principal, reach)


@router.post(
    "/alert-events/{alert_id}/resolve",
    tags=["alerts"],
    responses={409: {"description": "the alert is resolved already"}},
)
async def resolve_alert_event(
    session: Session, principal: Operator, alert_id: AlertId, body: ActionBody = None
) -> AlertRead:
    """Done (operators): an open or acknowledged alert becomes resolved, with who and when; it is final."""
    note = body.note if body else None
    reach = tenant_reach(principal)
    return await service.change_status(session, alert_id, AlertStatus.resolved, note, principal, reach)


ReportBucket = Annotated[Bucket, Query(description="the length of a period")]


@router.get("/reports/alerts", tags=["reports"], responses=_REPORT_REFUSALS)
async def alerts_report(
    session: Session,
    reach: Reach,
    since: From = None,
    until: To = None,
    bucket: ReportBucket = Bucket.day,
    timezone: ReportTimeZone = "UTC",
    kind: KindFilter = None,
    severity: SeverityFilter = None,
    rule_id: RuleFilter = None,
) -> AlertReport:
    """Alerts raised in `[from, to)` (default: the 30 days before now) counted per period, kind and severity, with
    totals per kind and per severity. Periods start in `timezone`."""
    report = reports.checked_range(
        since,
        until,
        bucket,
        timezone,
        reach,
        kind=kind.value if kind else None,
        severity=severity.value if severity else None,
        rule_id=rule_id,
    )
    return await reports.alert_report(session, report)


@router.get(
    "/reports/alerts.csv",
    tags=["reports"],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "period_start, kind, severity, count; oldest first"},
        **_REPORT_REFUSALS,
    },
)
async def alerts_report_csv(
    request: Request,
    reach: Reach,
    since: From = None,
    until: To = None,
    bucket: ReportBucket = Bucket.day,
    timezone: ReportTimeZone = "UTC",
    kind: KindFilter = None,
    severity: SeverityFilter = None,
    rule_id: RuleFilter = None,
) -> StreamingResponse:
    """The same report as CSV, streamed: one line per period, kind and severity (`period_start` in `timezone`)."""
    report = reports.checked_range(
        since,
        until,
        bucket,
        timezone,
        reach,
        kind=kind.value if kind else None,
        severity=severity.value if severity else None,
        rule_id=rule_id,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        reports.alert_report_csv(request.app.state.engine, report),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="alerts-{report.bucket.value}-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )

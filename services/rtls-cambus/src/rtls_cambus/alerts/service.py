"""Alert rules, raising alerts, and working them (acknowledge, resolve). Runs in the caller's transaction.

Raising: one statement skips a situation already alerted (same rule and `dedup_key`) or a rule deleted since the
engine read it, claims the rule's cooldown for the subject (replicas racing for it queue on the row) and answers
the new alert's id and the names its message needs; a second inserts the alert with its `rtls.alert.created` outbox
row. Should another replica raise the same situation in between, the unique (rule, dedup key) fails the insert and
the caller's transaction is retried (the event redelivered, the check run again), finding the alert there. A
situation held back by the cooldown is not recorded: when the periodic check still finds it after the cooldown,
it raises its alert then.

Status flow: open → acknowledged → resolved, or open → resolved at once; resolved is final. Anything else is a
409. Each change records who and when and emits `rtls.alert.acknowledged` or `rtls.alert.resolved`. The engine
resolves the alerts of rules with `auto_resolve` when their situation ends (`resolution`), open or acknowledged
alike, as the system (`resolved_by.kind` `system`), with the same event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.principal import Principal
from mirante.bus import Event, emit, emit_many, outbox_insert
from mirante.web.errors import MissingReferenceError
from rtls_cambus import rows
from rtls_cambus.alerts import repository
from rtls_cambus.alerts.errors import (
    AlertNotFoundError,
    AlertRuleExistsError,
    AlertRuleInvalidError,
    AlertRuleNotFoundError,
    AlertTransitionRefusedError,
)
from rtls_cambus.alerts.evaluation import Situation, storable
from rtls_cambus.alerts.messages import compose
from rtls_cambus.alerts.models import AlertEvent, AlertRule
from rtls_cambus.alerts.repository import AlertFilters, RuleFilters
from rtls_cambus.alerts.resolution import Ending
from rtls_cambus.alerts.schemas import (
    COLUMN_FIELDS,
    REFERENCE_FIELDS,
    RULE_MODELS,
    ActorRead,
    AlertRead,
    AlertRuleRead,
    AlertRuleUpdate,
    AlertStatus,
    rule_read_adapter,
)
from rtls_cambus.devices.models import Device
from rtls_cambus.identifiers import SCHEMA, SOURCE

logger = logging.getLogger(__name__)

ALERT_CREATED: Final = "rtls.alert.created"
ALERT_ACKNOWLEDGED: Final = "rtls.alert.acknowledged"
ALERT_RESOLVED: Final = "rtls.alert.resolved"
TRANSITIONS: Final[dict[AlertStatus, tuple[AlertStatus, ...]]] = {
    AlertStatus.open: (AlertStatus.acknowledged, AlertStatus.resolved),
    AlertStatus.acknowledged: (AlertStatus.resolved,),
    AlertStatus.resolved: (),
}
_STORED: Final = ("id", "created_at", "updated_at")
_DEVICE_REFERENCES: Final = ("gateway_id", "camera_id")
_INSERTED: Final = (
    "id",
    "rule_id",
    "rule_name",
    "kind",
    "severity",
    "status",
    "message",
    "dedup_key",
    "cooldown_key",
    "person_id",
    "zone_id",
    "floor_id",
    "building_id",
    "gateway_id",
    "camera_id",
    "source_event_id",
    "source_event_type",
    "tenant",
    "details",
    "auto_resolve",
    "created_at",
)


# -- rules -----------------------------------------------------------------------------------------------------------


def rule_read(rule: AlertRule) -> AlertRuleRead:
    fields = RULE_MODELS[rule.kind].model_fields
    values: dict[str, Any] = {name: getattr(rule, name) for name in COLUMN_FIELDS if name in fields}
    values.update({name: value for name, value in (rule.params or {}).items() if name in fields})
    values.update({name: getattr(rule, name) for name in _STORED})
    return rule_read_adapter.validate_python(values)


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    """A validated rule's values as the row's columns: references and the kind's own parameters."""
    columns = {name: values.get(name) for name in (*REFERENCE_FIELDS, "event_type")}
    columns.update({name: value for name, value in values.items() if name in COLUMN_FIELDS})
    columns["params"] = {name: value for name, value in values.items() if name not in COLUMN_FIELDS}
    return rows.column_values(columns)


async def list_rules(
    session: AsyncSession, filters: RuleFilters, *, offset: int, limit: int
) -> tuple[list[AlertRuleRead], int]:
    found, count = await repository.list_rules(session, filters, offset=offset, limit=limit)
    return [rule_read(rule) for rule in found], count


async def get_rule(session: AsyncSession, rule_id: int) -> AlertRule:
    rule = await repository.get_rule(session, rule_id)
    if rule is None:
        raise AlertRuleNotFoundError(rule_id)
    return rule


async def _check_devices(session: AsyncSession, values: dict[str, Any]) -> None:
    # Gateways and cameras share one table, so the foreign key alone would take a gateway as a camera; a device
    # of the other kind is, as in the path `/devices/cameras/{id}`, no camera at all.
    for field in _DEVICE_REFERENCES:
        device_id = values.get(field)
        if device_id is None:
            continue
        kind = REFERENCE_FIELDS[field]
        if await session.scalar(select(Device.kind).where(Device.id == device_id)) != kind:
            raise MissingReferenceError(kind, device_id, field)


def _constraint_error(constraint: str, values: dict[str, Any]) -> Exception:
    for name, thing in REFERENCE_FIELDS.items():
        if constraint.startswith(f"fk_alert_rules_{name}_"):
            return MissingReferenceError(thing, values.get(name), name)
    return AlertRuleExistsError()


async def create_rule(session: AsyncSession, body: BaseModel) -> AlertRuleRead:
    """Store a rule from one of the kinds' bodies (`AlertRuleCreate`)."""
    values = body.model_dump(mode="json")
    await _check_devices(session, values)
    rule = AlertRule(**_columns(values))
    if constraint := await rows.add(session, rule):
        raise _constraint_error(constraint, values)
    await session.refresh(rule)
    return rule_read(rule)


def _problems(error: ValidationError) -> list[str]:
    found = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        found.append(f"{where}: {message}" if where else message)
    return found


async def update_rule(session: AsyncSession, rule_id: int, body: AlertRuleUpdate) -> AlertRuleRead:
    """Apply the fields sent to the rule, and check the result as a whole rule of its kind."""
    rule = await get_rule(session, rule_id)
    model = RULE_MODELS[rule.kind]
    sent = body.sent()
    foreign = sorted(name for name, value in sent.items() if name not in model.model_fields and value is not None)
    if foreign:
        raise AlertRuleInvalidError([f"{name} does not apply to a {rule.kind} rule" for name in foreign])
    current = rule_read(rule).model_dump(mode="json", exclude=set(_STORED))
    merged = current | {name: value for name, value in sent.items() if name in model.model_fields}
    try:
        values = model.model_validate(merged).model_dump(mode="json")
    except ValidationError as error:
        raise AlertRuleInvalidError(_problems(error)) from None
    await _check_devices(session, values)
    changes = _columns(values)
    if constraint := await rows.change(session, rule, changes):
        raise _constraint_error(constraint, changes)
    await session.refresh(rule)
    return rule_read(rule)


async def delete_rule(session: AsyncSession, rule_id: int) -> None:
    """Delete a rule; its alerts stay, with the rule's name."""
    await rows.remove(session, await get_rule(session, rule_id))


# -- raising ---------------------------------------------------------------------------------------------------------


async def raise_alerts(session: AsyncSession, situations: Sequence[Situation], now: datetime) -> list[AlertEvent]:
    """Raise an alert for each situation not alerted yet and not held back by its rule's cooldown; those raised."""
    if len(situations) > 1:
        # The periodic check finds the same situations round after round: one look skips those alerted already.
        known = await repository.existing_situations(session, [(item.rule.id, item.dedup_key) for item in situations])
        situations = [item for item in situations if (item.rule.id, item.dedup_key) not in known]
    raised = []
    seen: set[tuple[int, str]] = set()
    for situation in situations:
        identity = (situation.rule.id, situation.dedup_key)
        if identity in seen:
            continue
        seen.add(identity)
        alert = await _raise(session, situation, now)
        if alert is not None:
            raised.append(alert)
    return raised


async def _raise(session: AsyncSession, situation: Situation, now: datetime) -> AlertEvent | None:
    """Two round trips: the checks, cooldown claim, id and names; then the alert with its event."""
    rule = situation.rule
    prepared = await repository.prepare_alert(
        session,
        rule.id,
        situation.dedup_key,
        now=now,
        cooldown=(situation.cooldown_key, rule.cooldown_seconds) if rule.cooldown_seconds else None,
        person_id=situation.person_id if not situation.message else None,
        zone_id=situation.zone_id if not situation.message else None,
        gateway_id=situation.gateway_id if not situation.message else None,
        camera_id=situation.camera_id if not situation.message else None,
    )
    if prepared is None:
        return None
    alert = AlertEvent(
        id=prepared.alert_id,
        rule_id=rule.id,
        rule_name=rule.name,
        kind=rule.kind.value,
        severity=rule.severity,
        status=AlertStatus.open.value,
        message=storable(compose(situation, prepared.names)),
        dedup_key=situation.dedup_key,
        cooldown_key=situation.cooldown_key,
        person_id=situation.person_id,
        zone_id=situation.zone_id,
        floor_id=situation.floor_id,
        building_id=situation.building_id,
        gateway_id=situation.gateway_id,
        camera_id=situation.camera_id,
        source_event_id=situation.source_event_id,
        source_event_type=situation.source_event_type,
        tenant=storable(situation.tenant),
        details=storable(situation.details),
        auto_resolve=rule.auto_resolve,
        created_at=now,
    )
    values = {column: getattr(alert, column) for column in _INSERTED}
    outbox = outbox_insert(SCHEMA, [_event(ALERT_CREATED, alert)])
    assert outbox is not None
    await repository.insert_alert(session, values, outbox)
    logger.info("alert %s raised by rule %s (%s): %s", alert.id, rule.id, rule.kind.value, alert.message)
    return alert


async def resolve_ended(
    session: AsyncSession, now: datetime, endings: Sequence[Ending] | None = None
) -> list[AlertEvent]:
    """Resolve the alerts whose situation is over (those `endings` pick, or, None, those the site shows over) with
    their `rtls.alert.resolved` events; those resolved. Idempotent: an alert resolved already is left alone."""
    resolved = await repository.resolve_ended(session, now, endings)
    await emit_many(session, SCHEMA, [_event(ALERT_RESOLVED, alert) for alert in resolved])
    for alert in resolved:
        logger.info("alert %s (%s) resolved by the engine: %s", alert.id, alert.kind, alert.resolve_note)
    return resolved


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _actor(kind: str | None, actor_id: int | None, name: str | None) -> dict[str, Any] | None:
    return None if kind is None else {"kind": kind, "id": actor_id, "name": name}


def alert_payload(alert: AlertEvent) -> dict[str, Any]:
    """The data of `rtls.alert.*` events (consumers such as e-mail and Chatwoot rely on these names)."""
    return {
        "alert_id": alert.id,
        "rule_id": alert.rule_id,
        "rule_name": alert.rule_name,
        "kind": alert.kind,
        "severity": alert.severity,
        "status": alert.status,
        "message": alert.message,
        "person_id": alert.person_id,
        "zone_id": alert.zone_id,
        "floor_id": alert.floor_id,
        "building_id": alert.building_id,
        "gateway_id": alert.gateway_id,
        "camera_id": alert.camera_id,
        "source_event_id": alert.source_event_id,
        "source_event_type": alert.source_event_type,
        "auto_resolve": alert.auto_resolve,
        "created_at": _iso(alert.created_at),
        "acknowledged_at": _iso(alert.acknowledged_at),
        "acknowledged_by": _actor(alert.acknowledged_by_kind, alert.acknowledged_by_id, alert.acknowledged_by_name),
        "resolved_at": _iso(alert.resolved_at),
        "resolved_by": _actor(alert.resolved_by_kind, alert.resolved_by_id, alert.resolved_by_name),
    }


def _event(event_type: str, alert: AlertEvent) -> Event:
    return Event(
        source=SOURCE, type=event_type, subject=f"alert/{alert.id}", tenant=alert.tenant, data=alert_payload(alert)
    )


# -- alerts ----------------------------------------------------------------------------------------------------------


def alert_read(alert: AlertEvent) -> AlertRead:
    values = {name: getattr(alert, name) for name in AlertRead.model_fields if hasattr(AlertEvent, name)}
    by = {
        f"{step}_by": (
            ActorRead(kind=kind, id=getattr(alert, f"{step}_by_id"), name=getattr(alert, f"{step}_by_name") or "")
            if (kind := getattr(alert, f"{step}_by_kind"))
            else None
        )
        for step in ("acknowledged", "resolved")
    }
    return AlertRead.model_validate({**values, **by})


async def list_alerts(
    session: AsyncSession, filters: AlertFilters, reach: str | None, *, offset: int, limit: int
) -> tuple[list[AlertRead], int]:
    found, count = await repository.list_alerts(session, filters, reach, offset=offset, limit=limit)
    return [alert_read(alert) for alert in found], count


async def get_alert(session: AsyncSession, alert_id: int, reach: str | None, *, for_update: bool = False) -> AlertEvent:
    alert = await repository.get_alert(session, alert_id, reach, for_update=for_update)
    if alert is None:
        raise AlertNotFoundError(alert_id)
    return alert


async def change_status(
    session: AsyncSession,
    alert_id: int,
    wanted: AlertStatus,
    note: str | None,
    principal: Principal,
    reach: str | None,
) -> AlertRead:
    """Acknowledge or resolve the alert, recording who and when; 409 when its status does not allow it."""
    alert = await get_alert(session, alert_id, reach, for_update=True)
    current = AlertStatus(alert.status)
    if wanted not in TRANSITIONS[current]:
        raise AlertTransitionRefusedError(
            current.value, wanted.value, [status.value for status in TRANSITIONS[current]]
        )
    step = "acknowledged" if wanted is AlertStatus.acknowledged else "resolved"
    alert.status = wanted.value
    setattr(alert, f"{step}_at", func.now())
    setattr(alert, f"{step}_by_id", principal.id)
    setattr(alert, f"{step}_by_kind", principal.kind)
    setattr(alert, f"{step}_by_name", principal.name)
    setattr(alert, "acknowledge_note" if step == "acknowledged" else "resolve_note", note or None)
    await session.flush()
    await session.refresh(alert)
    await emit(session, SCHEMA, _event(ALERT_ACKNOWLEDGED if step == "acknowledged" else ALERT_RESOLVED, alert))
    return alert_read(alert)

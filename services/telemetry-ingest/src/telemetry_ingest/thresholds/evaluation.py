"""Threshold evaluation on the write path: readings move each (rule, device) between normal, below and above.

Called by the ingest writer inside its transaction for every stored batch of a tenant. A state change emits one
`telemetry.threshold.crossed` event, so an alarm fires once per crossing, not once per reading. Returning to
normal needs the value back inside by the rule's hysteresis (from below: value >= min + hysteresis; from above:
value <= max - hysteresis), so a value hovering at a limit does not flap. Readings of one (rule, device) are taken
in timestamp order, and one not newer than the last evaluated timestamp is ignored: late or redelivered data never
moves a state backwards.

Cost: rules come from the app's cache (`thresholds.cache`), so a tenant without rules costs a dictionary
lookup and no query. Rows are filtered to sensors that have rules before anything else; with rules, a batch
costs one `SELECT ... FOR UPDATE` of the states involved (serialising concurrent writers of the same device), one
`UPDATE`, and one outbox insert when something crossed (plus an insert the first time a (rule, device) is seen).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import TextClause, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus import Event, emit_many
from telemetry_ingest.tenancy.models import Tenant
from telemetry_ingest.tenancy.rows import ReadingRow
from telemetry_ingest.tenancy.tables import in_tenant, qualified, threshold_rules, threshold_states
from telemetry_ingest.thresholds.cache import RULE_FIELDS, Rule, RuleCache, RuleSet

logger = logging.getLogger(__name__)

OUTBOX_SCHEMA = "telemetry_ingest"
EVENT_SOURCE = "mirante/telemetry-ingest"
THRESHOLD_CROSSED = "telemetry.threshold.crossed"

State = Literal["normal", "below", "above"]
NORMAL: State = "normal"
BELOW: State = "below"
ABOVE: State = "above"


def next_state(state: str, value: float, rule: Rule) -> State:
    """The state of a (rule, device) after `value`, coming from `state`.

    Beyond a limit always means that side (also straight from the other side); back to normal needs the value
    inside by the hysteresis margin on the side it leaves. A limit the rule no longer has cannot hold a state.
    """
    low, high, margin = rule.min_value, rule.max_value, rule.hysteresis
    if low is not None and value < low:
        return BELOW
    if high is not None and value > high:
        return ABOVE
    if state == BELOW and low is not None and value < low + margin:
        return BELOW
    if state == ABOVE and high is not None and value > high - margin:
        return ABOVE
    return NORMAL


@dataclass(slots=True)
class _Tracked:
    """The stored state of one (rule, device) while a batch is evaluated."""

    state: str
    ts: datetime | None
    value: float | None
    changed_at: datetime | None
    touched: bool = False


async def evaluate_thresholds(
    session: AsyncSession, tenant: Tenant, rows: Sequence[ReadingRow], rule_cache: RuleCache
) -> int:
    """Evaluate `rows` (readings just stored for `tenant`) against its enabled rules, read through `rule_cache`;
    returns the events emitted.

    Runs in the caller's transaction and only flushes: states and `telemetry.threshold.crossed` events (in the
    `telemetry_ingest` outbox, tenant set) become visible when the caller commits.
    """
    if not rows:
        return 0
    schema = tenant.schema_name
    rules = await _rules(session, schema, rule_cache)
    if not rules.sensors:
        return 0
    sensors = rules.sensors
    pending: dict[tuple[int, str], list[ReadingRow]] = {}
    by_id: dict[int, Rule] = {}
    for row in rows:
        if row.sensor not in sensors:
            continue
        for rule in rules.rules_for(row.device_id, row.sensor):
            by_id[rule.id] = rule
            pending.setdefault((rule.id, row.device_id), []).append(row)
    if not pending:
        return 0

    keys = sorted(pending)
    states = await _lock_states(session, schema, keys)
    missing = [key for key in keys if key not in states]
    if missing:
        await _create_states(session, schema, missing)
        states.update(await _lock_states(session, schema, missing))

    events: list[Event] = []
    for key in keys:
        tracked = states.get(key)
        if tracked is None:
            continue  # the rule was deleted since the cache was filled
        rule = by_id[key[0]]
        for row in sorted(pending[key], key=_timestamp):
            if tracked.ts is not None and row.ts <= tracked.ts:
                continue
            new_state = next_state(tracked.state, row.value, rule)
            if new_state != tracked.state:
                events.append(_crossed(tenant, rule, row, tracked.state, new_state))
                tracked.state, tracked.changed_at = new_state, row.ts
            tracked.ts, tracked.value, tracked.touched = row.ts, row.value, True

    touched = [(key, tracked) for key, tracked in states.items() if tracked.touched]
    if touched:
        await session.execute(
            _update_states(schema),
            {
                "rule_ids": [key[0] for key, _ in touched],
                "device_ids": [key[1] for key, _ in touched],
                "states": [tracked.state for _, tracked in touched],
                "values": [tracked.value for _, tracked in touched],
                "tss": [tracked.ts for _, tracked in touched],
                "changed_ats": [tracked.changed_at for _, tracked in touched],
            },
        )
    if events:
        await emit_many(session, OUTBOX_SCHEMA, events)
        logger.info("tenant %s: %d threshold crossing(s)", tenant.slug, len(events))
    return len(events)


def _timestamp(row: ReadingRow) -> datetime:
    return row.ts


async def _rules(session: AsyncSession, schema: str, rule_cache: RuleCache) -> RuleSet:
    cached = rule_cache.get(schema)
    if cached is not None:
        return cached
    generation = rule_cache.generation(schema)
    result = await session.execute(_SELECT_RULES, execution_options=in_tenant(schema))
    rules = RuleSet.of([Rule(**row._mapping) for row in result])
    rule_cache.store(schema, rules, generation)
    return rules


async def _lock_states(
    session: AsyncSession, schema: str, keys: list[tuple[int, str]]
) -> dict[tuple[int, str], _Tracked]:
    result = await session.execute(
        _select_states(schema), {"rule_ids": [key[0] for key in keys], "device_ids": [key[1] for key in keys]}
    )
    return {
        (row.rule_id, row.device_id): _Tracked(state=row.state, ts=row.ts, value=row.value, changed_at=row.changed_at)
        for row in result
    }


async def _create_states(session: AsyncSession, schema: str, keys: list[tuple[int, str]]) -> None:
    await session.execute(
        _insert_states(schema), {"rule_ids": [key[0] for key in keys], "device_ids": [key[1] for key in keys]}
    )


def _crossed(tenant: Tenant, rule: Rule, row: ReadingRow, old: str, new: str) -> Event:
    data: dict[str, Any] = {
        "rule_id": rule.id,
        "device_id": row.device_id,
        "sensor": row.sensor,
        "from_state": old,
        "to_state": new,
        "value": row.value,
        "unit": row.unit,
        "ts": row.ts.isoformat(),
        "min_value": rule.min_value,
        "max_value": rule.max_value,
        "hysteresis": rule.hysteresis,
    }
    return Event(
        id=str(uuid.uuid4()),
        source=EVENT_SOURCE,
        type=THRESHOLD_CROSSED,
        subject=f"tenants/{tenant.slug}/devices/{row.device_id}/sensors/{row.sensor}",
        tenant=tenant.slug,
        data=data,
    )


_SELECT_RULES = select(*(threshold_rules.c[name] for name in RULE_FIELDS)).where(threshold_rules.c.enabled)


# Statements are built once per tenant schema from the table descriptions. The schema is the only interpolated
# part and `qualified` checks it against the tenant schema pattern first, hence the S608 exemptions.


@lru_cache(maxsize=4096)
def _select_states(schema: str) -> TextClause:
    # Locked in key order, the same order every writer uses, so two batches never deadlock on states.
    return text(
        "SELECT s.rule_id, s.device_id, s.state, s.value, s.ts, s.changed_at "  # noqa: S608
        f"FROM {qualified(threshold_states, schema)} AS s "
        "JOIN unnest(CAST(:rule_ids AS integer[]), CAST(:device_ids AS text[])) AS k(rule_id, device_id) "
        "ON s.rule_id = k.rule_id AND s.device_id = k.device_id "
        "ORDER BY s.rule_id, s.device_id FOR UPDATE OF s"
    )


@lru_cache(maxsize=4096)
def _insert_states(schema: str) -> TextClause:
    # Joined with the rules under FOR KEY SHARE: a rule deleted meanwhile drops out instead of failing the
    # foreign key and, with it, the whole ingest transaction.
    return text(
        f"INSERT INTO {qualified(threshold_states, schema)} (rule_id, device_id, state) "  # noqa: S608
        "SELECT k.rule_id, k.device_id, 'normal' "
        "FROM unnest(CAST(:rule_ids AS integer[]), CAST(:device_ids AS text[])) AS k(rule_id, device_id) "
        f"JOIN {qualified(threshold_rules, schema)} AS r ON r.id = k.rule_id "
        "ORDER BY k.rule_id, k.device_id FOR KEY SHARE OF r "
        "ON CONFLICT (rule_id, device_id) DO NOTHING"
    )


@lru_cache(maxsize=4096)
def _update_states(schema: str) -> TextClause:
    return text(
        f"UPDATE {qualified(threshold_states, schema)} AS s "  # noqa: S608
        "SET state = u.state, value = u.value, ts = u.ts, changed_at = u.changed_at "
        "FROM unnest(CAST(:rule_ids AS integer[]), CAST(:device_ids AS text[]), CAST(:states AS text[]), "
        "CAST(:values AS float8[]), CAST(:tss AS timestamptz[]), CAST(:changed_ats AS timestamptz[])) "
        "AS u(rule_id, device_id, state, value, ts, changed_at) "
        "WHERE s.rule_id = u.rule_id AND s.device_id = u.device_id"
    )

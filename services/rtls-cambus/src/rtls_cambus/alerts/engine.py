"""The alert engine: rules evaluated on events as they arrive, and a periodic check for rules about time.

Events come through the library's consumer (group `rtls-cambus-alerts`) from every installed service's stream,
this service's own among them (presence, gateways, cameras). Delivery is at least once; the inbox skips an event
seen before, and the unique (rule, situation) key on alerts holds even when the inbox row is gone, so an event
delivered again never raises a second alert.

The periodic check (every `RTLS_CAMBUS_ALERT_CHECK_INTERVAL_SECONDS`) evaluates dwell, absence and not-seen rules
against a snapshot of the site, under a transaction-level advisory lock so one replica runs it at a time.

Rules are read from the database and compiled at most every `RTLS_CAMBUS_ALERT_RULES_REFRESH_SECONDS`: a changed
rule takes effect within that time on every replica, and an event does not pay for reading a thousand rules.

Alerts whose situation ends are resolved (`resolution`): by the event that ends it, and by the periodic check from
the site's state. So that an event that ends nothing costs nothing, the engine knows which kinds of alerts may
still be resolved (read with the rules' fingerprint, and every alert it raises itself); an alert another replica
raised in the last refresh interval is left to the periodic check.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Container
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Final

from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.bus import Event, StreamConsumer
from mirante.service import configured_or_installed_streams
from rtls_cambus.alerts import repository, service
from rtls_cambus.alerts.evaluation import (
    CAMERA_EVENT,
    ZONE_ENTERED,
    CompiledRule,
    EventFacts,
    RuleSet,
    SiteSnapshot,
    evaluate_rules,
    evaluate_timed,
)
from rtls_cambus.alerts.models import AlertEvent
from rtls_cambus.alerts.resolution import ENDED_BY, endings
from rtls_cambus.alerts.schemas import REFUSED_EVENT_PREFIXES, Kind
from rtls_cambus.config import Settings
from rtls_cambus.identifiers import SCHEMA

logger = logging.getLogger(__name__)

GROUP: Final = "rtls-cambus-alerts"
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class AlertEngine:
    """The rules of one replica (compiled, refreshed from the database) and what evaluates them."""

    def __init__(self, refresh_seconds: float = 2.0, clock: Clock = utc_now) -> None:
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._rules: RuleSet | None = None
        self._fingerprint: str | None = None
        self._checked_at = 0.0
        self._to_resolve: frozenset[str] = frozenset()
        """Kinds of the alerts that may still be resolved, as of the last look."""
        self._raised: dict[str, float] = {}
        """Kind → when this engine last raised an alert of it that may be resolved (a look may not see it yet)."""

    def invalidate(self) -> None:
        """Read the rules again on the next use."""
        self._rules = None

    async def rules(self, session: AsyncSession) -> RuleSet:
        """The enabled rules, compiled; every `refresh_seconds` a one-row look tells whether any rule changed, and
        only then are they read again."""
        if self._rules is not None and time.monotonic() - self._checked_at < self.refresh_seconds:
            return self._rules
        fingerprint, to_resolve = await repository.rules_state(session)
        recent = time.monotonic() - 2 * self.refresh_seconds
        self._to_resolve = to_resolve | {kind for kind, at in self._raised.items() if at >= recent}
        if self._rules is None or fingerprint != self._fingerprint:
            rows = await repository.enabled_rules(session)
            self._rules = RuleSet.of(CompiledRule.of(row) for row in rows)
            self._fingerprint = fingerprint
        self._checked_at = time.monotonic()
        return self._rules

    def _note_raised(self, raised: list[AlertEvent]) -> None:
        kinds = {alert.kind for alert in raised if alert.auto_resolve}
        if kinds:
            self._to_resolve |= kinds
            now = time.monotonic()
            self._raised.update(dict.fromkeys(kinds, now))

    async def wanted_types(self, sessionmaker: async_sessionmaker[AsyncSession]) -> Container[str]:
        """The consumer's `wanted_types`: those some enabled rule is triggered by, and those that can end an alert
        that may still be resolved, so an event that can do neither costs no statement. `handle_event` must act
        on no other type."""
        ruleset = self._rules
        if ruleset is None or time.monotonic() - self._checked_at >= self.refresh_seconds:
            async with sessionmaker() as session:
                ruleset = await self.rules(session)
        ending = {event_type for kind in self._to_resolve for event_type in ENDED_BY.get(kind, ())}
        return ending.union(ruleset.by_trigger) if ending else ruleset.by_trigger

    async def handle_event(self, session: AsyncSession, event: Event) -> list[AlertEvent]:
        """The consumer's handler: the rules `event.type` triggers, evaluated, and the alerts whose situation the
        event ends, resolved; the alerts raised."""
        if event.type.startswith(REFUSED_EVENT_PREFIXES):
            return []
        ruleset = await self.rules(session)
        raised: list[AlertEvent] = []
        if rules := ruleset.by_trigger.get(event.type):
            facts = await _facts(session, event, rules)
            situations = evaluate_rules(rules, event, facts)
            raised = await service.raise_alerts(session, situations, self.clock())
            self._note_raised(raised)
        ended = [ending for ending in endings(event) if ending.kind.value in self._to_resolve]
        if ended:
            await service.resolve_ended(session, self.clock(), ended)
        return raised

    async def check(self, session: AsyncSession) -> list[AlertEvent]:
        """One periodic check: the alerts whose situation is over resolved, then the time rules evaluated against
        the site now; the alerts raised. Does nothing while another replica's check holds the lock."""
        rules = (await self.rules(session)).timed
        if not (rules or self._to_resolve) or not await repository.try_check_lock(session):
            return []
        now = self.clock()
        if self._to_resolve:
            await service.resolve_ended(session, now)
        if not rules:
            return []
        site = await _snapshot(session, rules, now)
        situations = [found for rule in rules for found in evaluate_timed(rule, site, now)]
        raised = await service.raise_alerts(session, situations, now)
        self._note_raised(raised)
        return raised


async def _facts(session: AsyncSession, event: Event, rules: tuple[CompiledRule, ...]) -> EventFacts:
    """What the rules need to know beyond the event, read only when one of them needs it."""
    data = event.data
    if event.type == ZONE_ENTERED:
        zone, person = data.get("zone_id"), data.get("person_id")
        restricted = any(rule.kind is Kind.zone_entry and rule.zone_id is None for rule in rules)
        groups = any(rule.person_group_id is not None for rule in rules)
        if isinstance(zone, int) and isinstance(person, int) and (restricted or groups):
            flagged, group_ids = await repository.zone_facts(
                session, zone, person, restricted=restricted, groups=groups
            )
            return EventFacts(restricted_zone=flagged, person_groups=group_ids)
    elif event.type == CAMERA_EVENT:
        camera = data.get("camera_id")
        if isinstance(camera, int):
            floor, camera_groups = await repository.camera_facts(session, camera)
            return EventFacts(camera_groups=camera_groups, camera_floor_id=floor)
    return EventFacts()


async def _snapshot(session: AsyncSession, rules: tuple[CompiledRule, ...], now: datetime) -> SiteSnapshot:
    """Read only what these rules need."""
    kinds = {rule.kind for rule in rules}
    groups = {rule.person_group_id for rule in rules if rule.person_group_id is not None}
    members = await repository.group_members(session, groups) if groups else {}
    groups_of: dict[int, set[int]] = {}
    for group, people in members.items():
        for person in people:
            groups_of.setdefault(person, set()).add(group)
    entry = [rule for rule in rules if rule.kind is Kind.zone_entry]
    absence = {rule.zone_id for rule in rules if rule.kind is Kind.zone_absence and rule.zone_id is not None}
    # A window is at most a day long, so an exit more than two days ago never counts.
    exits_since = now - timedelta(days=2)
    return SiteSnapshot(
        open_sessions=tuple(await repository.open_sessions(session)) if entry or absence else (),
        restricted_zones=(
            await repository.restricted_zones(session) if any(rule.zone_id is None for rule in entry) else frozenset()
        ),
        groups_of={person: frozenset(of) for person, of in groups_of.items()},
        members_of=members,
        last_exit=await repository.last_exits(session, absence, exits_since) if absence else {},
        last_seen=await repository.last_seen(session) if Kind.person_not_seen in kinds else {},
        zone_places=await repository.zone_places(session, absence) if absence else {},
    )


def event_streams(settings: Settings) -> list[str]:
    """The streams the engine reads: those configured, or every installed service's."""
    return configured_or_installed_streams(settings.alert_event_streams)


def alert_consumer(
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AlertEngine,
    streams: list[str],
    *,
    group: str = GROUP,
    consumer_name: str | None = None,
    start_from: str = "$",
    block_ms: int = 2_000,
    batch_size: int = 50,
) -> StreamConsumer:
    async def handle(session: AsyncSession, event: Event) -> None:
        await engine.handle_event(session, event)

    return StreamConsumer(
        redis,
        sessionmaker,
        streams,
        group,
        consumer_name or f"rtls-cambus-{socket.gethostname()}",
        handle,
        SCHEMA,
        start_from=start_from,
        block_ms=block_ms,
        batch_size=batch_size,
        wanted_types=partial(engine.wanted_types, sessionmaker),
    )


def install_alert_engine(app: FastAPI) -> None:
    """One engine per app, shared by its consumer and its periodic check (set up in the lifespan)."""
    settings: Settings = app.state.settings
    app.state.alert_engine = AlertEngine(settings.alert_rules_refresh_seconds)


async def alert_events_worker(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    if not settings.alert_engine_enabled:
        return
    consumer = alert_consumer(app.state.redis, app.state.sessionmaker, app.state.alert_engine, event_streams(settings))
    try:
        await consumer.run()
    finally:
        consumer.stop()


async def alert_checks_worker(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    if not settings.alert_engine_enabled:
        return
    engine: AlertEngine = app.state.alert_engine
    while True:
        try:
            async with app.state.sessionmaker() as session, session.begin():
                await engine.check(session)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the periodic alert check failed; trying again at the next interval")
        await asyncio.sleep(settings.alert_check_interval_seconds)

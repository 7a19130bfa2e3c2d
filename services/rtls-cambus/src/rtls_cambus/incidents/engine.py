"""The incident rule engine: a member of a consumer group on the suite's event streams that opens incidents.

The library's consumer brings at-least-once delivery with an inbox, so an event seen again (redelivered,
reclaimed, or published twice with the same id) is skipped before the handler runs; the unique (rule, event)
key on incidents makes that hold even for an inbox row deleted by retention. Matching is on the event type
only, so any event of the suite (`vision.inspection.failed`, `rtls.alert.created`) is one more type a rule
can name. Events about incidents themselves never match (rules on them are refused), which keeps the
engine from feeding on its own output.
"""

from __future__ import annotations

import logging
import socket
from typing import Final

from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.bus import Event, StreamConsumer, TypeInterest
from mirante.service import configured_or_installed_streams
from rtls_cambus.conditions import matches, render_template
from rtls_cambus.config import Settings
from rtls_cambus.identifiers import SCHEMA
from rtls_cambus.incidents import repository, service
from rtls_cambus.incidents.service import Actor

logger = logging.getLogger(__name__)

GROUP: Final = "rtls-cambus-incident-rules"
TITLE_MAX_LENGTH: Final = 500


async def apply_rules(session: AsyncSession, event: Event) -> None:
    """Open one incident per enabled rule on `event.type` whose conditions hold (the consumer's handler)."""
    for rule in await repository.enabled_rules_for(session, event.type):
        if not matches(event.data, rule.conditions):
            continue
        if await repository.incident_for_event(session, rule.id, event.id) is not None:
            continue
        values = {
            "title": render_template(rule.title_template, event.data, max_length=TITLE_MAX_LENGTH, fallback="Incident"),
            "description": f"Opened by incident rule {rule.name!r} from event {event.type} {event.id}"
            + (f" ({event.subject})" if event.subject else ""),
            "severity": rule.severity,
            "support_group_id": rule.support_group_id,
            "rule_id": rule.id,
            "source_event_id": event.id,
            "source_event_type": event.type,
        }
        incident = await service.open_incident(session, values, Actor("rule", rule.id, rule.name))
        logger.info("incident rule %s opened incident %s from event %s", rule.id, incident.id, event.id)


def event_streams(settings: Settings) -> list[str]:
    """The streams the engine reads: those configured, or every installed service's."""
    return configured_or_installed_streams(settings.incident_event_streams)


def rule_interest(sessionmaker: async_sessionmaker[AsyncSession], max_age: float) -> TypeInterest:
    """The types enabled rules are on: the engine's consumer skips every other event before any statement."""
    return TypeInterest(sessionmaker, repository.ruled_event_types, max_age=max_age)


def install_rule_interest(app: FastAPI) -> None:
    """One per app, shared by the rules API (which bumps it) and the engine's consumer."""
    settings: Settings = app.state.settings
    app.state.incident_rule_interest = rule_interest(app.state.sessionmaker, settings.event_interest_refresh_seconds)


def incident_rule_consumer(
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    streams: list[str],
    interest: TypeInterest,
    *,
    group: str = GROUP,
    consumer_name: str | None = None,
    start_from: str = "$",
    block_ms: int = 2_000,
) -> StreamConsumer:
    return StreamConsumer(
        redis,
        sessionmaker,
        streams,
        group,
        consumer_name or f"rtls-cambus-{socket.gethostname()}",
        apply_rules,
        SCHEMA,
        start_from=start_from,
        block_ms=block_ms,
        wanted_types=interest.types,
    )


async def incident_rules_worker(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    if not settings.incident_rules_enabled:
        return
    consumer = incident_rule_consumer(
        app.state.redis, app.state.sessionmaker, event_streams(settings), app.state.incident_rule_interest
    )
    try:
        await consumer.run()
    finally:
        consumer.stop()

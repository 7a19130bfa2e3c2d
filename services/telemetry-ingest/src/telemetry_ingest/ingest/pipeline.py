"""From raw messages to stored readings: parsing shared by MQTT and `POST /ingest`, and the MQTT batch handler.

Bad input never raises here: an unparseable topic or payload, a bad reading, an unknown tenant, each becomes a
recorded rejection (or unrouted message) with its reason, and the good readings of the same message are kept.

The MQTT handler stores one runner batch in one transaction and commits before returning; the runner then
acknowledges the batch. If the handler raises, nothing is acknowledged and the broker delivers the batch again:
storage is idempotent, so nothing accepted is lost or doubled. What may raise is decided in the writer
(`TelemetryWriter.write_isolating`): a message the database refuses because of its data is isolated and recorded
as not stored, so it cannot block the subscription; infrastructure failures and bugs raise and are retried, since
giving up on them would lose readings.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.auth.schemas import TENANT_SLUG_PATTERN
from mirante.mqtt import Message
from telemetry_ingest.config import Settings
from telemetry_ingest.ingest import reasons
from telemetry_ingest.ingest.metrics import IngestMetrics
from telemetry_ingest.ingest.payload import Rejection, TopicRoute, parse_readings, parse_topic
from telemetry_ingest.ingest.writer import IngestMessage, Source, TelemetryWriter, WriteResult
from telemetry_ingest.tenancy.models import Tenant
from telemetry_ingest.tenancy.rows import ReadingRow

logger = logging.getLogger(__name__)

_SLUG = re.compile(TENANT_SLUG_PATTERN)


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """Limits applied to every payload: how far in the future a reading may be, readings per message, and
    whether readings older than the tenant's retention are refused (they would be dropped at the next sweep)."""

    max_future_skew: timedelta = timedelta(minutes=5)
    max_readings: int = 1000
    enforce_retention: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> ParseOptions:
        return cls(
            max_future_skew=timedelta(seconds=settings.ingest_max_future_skew_seconds),
            max_readings=settings.ingest_max_readings_per_message,
            enforce_retention=settings.ingest_reject_beyond_retention,
        )


def topic_tenant(topic: str) -> str | None:
    """The tenant slug a topic names, also when the rest of the topic is invalid (None when it names none)."""
    route = parse_topic(topic)
    if isinstance(route, TopicRoute):
        return route.tenant
    if not isinstance(topic, str):
        return None
    parts = topic.split("/", 2)
    if len(parts) >= 2 and parts[0] == "tenants" and _SLUG.fullmatch(parts[1]):
        return parts[1]
    return None


def parse_message(
    source: Source,
    topic: str,
    payload: bytes,
    *,
    tenants: Mapping[str, Tenant],
    now: datetime,
    options: ParseOptions,
) -> IngestMessage:
    """Route and parse one message; `tenants` holds the known tenants among those the batch names.

    A topic naming a known tenant but otherwise invalid is a rejection in that tenant; a topic naming no known
    tenant makes the message unrouted.
    """
    route = parse_topic(topic)
    if isinstance(route, Rejection):
        slug = topic_tenant(topic)
        if slug is not None and slug in tenants:
            return IngestMessage(source, topic, payload, tenant=slug, rejections=[route])
        return IngestMessage(source, topic, payload, tenant=slug, unrouted_reason=route.reason)
    tenant = tenants.get(route.tenant)
    message = IngestMessage(source, topic, payload, tenant=route.tenant, device_id=route.device_id, sensor=route.sensor)
    if tenant is None:
        message.unrouted_reason = f"{reasons.UNKNOWN_TENANT_PREFIX} {route.tenant!r}"
        return message
    parsed = parse_readings(
        payload,
        now=now,
        max_future_skew=options.max_future_skew,
        max_age=timedelta(days=tenant.retention_days) if options.enforce_retention else None,
        max_readings=options.max_readings,
    )
    device_id, sensor = route.device_id, route.sensor
    message.rows = [
        ReadingRow(device_id, sensor, reading.ts, reading.value, reading.unit) for reading in parsed.readings
    ]
    message.rejections = parsed.rejections
    return message


class MqttIngestPipeline:
    """The `SubscriberRunner` batch handler: parse, store in one transaction, commit, count."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        writer: TelemetryWriter,
        metrics: IngestMetrics,
        options: ParseOptions,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.writer = writer
        self.metrics = metrics
        self.options = options
        self.clock = clock or _utc_now

    async def __call__(self, messages: Sequence[Message]) -> None:
        """Store a batch; returns once it is committed (raising leaves it unacknowledged, to be delivered again)."""
        started = time.perf_counter()
        now = self.clock()
        slugs = {slug for message in messages if (slug := topic_tenant(message.topic)) is not None}
        async with self.sessionmaker() as session, session.begin():
            tenants = await self.writer.tenants.resolve(session, slugs)
            parsed = [
                parse_message("mqtt", message.topic, message.payload, tenants=tenants, now=now, options=self.options)
                for message in messages
            ]
            result = await self.writer.write_isolating(session, parsed)
        self.metrics.record("mqtt", result, time.perf_counter() - started)
        _log_batch(len(messages), result)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _log_batch(messages: int, result: WriteResult) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "stored a batch of %d messages: %d written, %d duplicate, %d rejected, %d unrouted",
            messages,
            result.written,
            result.duplicate,
            result.rejected,
            sum(result.unrouted.values()),
        )

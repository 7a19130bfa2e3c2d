"""`POST /ingest`: storing an EMQX rule-engine body, and the app's writer shared with the MQTT worker.

The body is what EMQX's HTTP action sends for `SELECT clientid as client_id, topic, payload, timestamp as ts`:
one object or a list (see `payload.parse_emqx_rule_body`). Each message is routed and parsed like an MQTT message,
with the broker's arrival time `ts` as the time of readings that carry none (so a retried body stores the same
rows), unless it lies beyond the allowed clock skew. An API key bound to a tenant writes only that tenant: a
message for another one is refused with a reason and kept in the unrouted list, whether or not that tenant exists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.principal import Principal
from mirante.web.errors import ApiError, BadRequestError, PayloadTooLargeError
from telemetry_ingest.config import Settings
from telemetry_ingest.ingest import reasons
from telemetry_ingest.ingest.metrics import IngestMetrics
from telemetry_ingest.ingest.payload import EmqxMessage, Rejection, parse_emqx_rule_body
from telemetry_ingest.ingest.pipeline import ParseOptions, parse_message, topic_tenant
from telemetry_ingest.ingest.schemas import IngestReceipt, IngestRejection, ReadingCounts
from telemetry_ingest.ingest.tenants import TenantDirectory
from telemetry_ingest.ingest.writer import (
    MAX_STORED_TOPIC_CHARS,
    IngestMessage,
    TelemetryWriter,
    TenantCounts,
    WriteResult,
)
from telemetry_ingest.thresholds.cache import RuleCache

MAX_LISTED_REJECTIONS: Final = 1000
STORED_REJECTED: Final = "rejected_readings"
STORED_UNROUTED: Final = "unrouted"


def build_telemetry_writer(settings: Settings, rules: RuleCache) -> TelemetryWriter:
    """The writer an app builds in its lifespan: its own tenant cache, and the app's rule cache."""
    return TelemetryWriter(TenantDirectory(ttl_seconds=settings.ingest_tenant_cache_seconds), rules)


def telemetry_writer(app: FastAPI) -> TelemetryWriter:
    """The app's writer, shared by `POST /ingest` and the MQTT worker."""
    writer: TelemetryWriter = app.state.telemetry_writer
    return writer


@dataclass(frozen=True)
class HttpIngest:
    """What one request needs: the writer, the parsing limits, the message cap and the metrics."""

    writer: TelemetryWriter
    options: ParseOptions
    max_messages: int
    metrics: IngestMetrics


async def ingest_emqx_body(
    session: AsyncSession, body: bytes, principal: Principal, ingest: HttpIngest
) -> IngestReceipt:
    """Store an EMQX rule-engine body in the request's transaction (flush only) and say what became of it.

    Raises `BadRequestError` (400) when the body is not a JSON object or a non-empty list, and
    `PayloadTooLargeError` (413) when it holds more than `max_messages` messages; anything inside is answered
    per message or reading, never by failing the request.
    """
    started = time.perf_counter()
    try:
        document = _document(body, ingest.max_messages)
    except ApiError as error:
        ingest.metrics.record_unrouted("http", reasons.reason_class(error.message))
        raise
    items = parse_emqx_rule_body(document)
    server_now = datetime.now(UTC)
    wanted: set[str] = set()
    for item in items:
        if isinstance(item, EmqxMessage):
            slug = topic_tenant(item.topic)
            if slug is not None and principal.tenant in (None, slug):
                wanted.add(slug)
    tenants = await ingest.writer.tenants.resolve(session, wanted) if wanted else {}

    messages: list[IngestMessage] = []
    for item in items:
        if isinstance(item, Rejection):
            messages.append(IngestMessage("http", None, b"", unrouted_reason=item.reason))
            continue
        slug = topic_tenant(item.topic)
        if principal.tenant is not None and slug != principal.tenant:
            reason = (
                f"{reasons.FORBIDDEN_TENANT_PREFIX} {slug!r}: this API key writes only tenant {principal.tenant!r}"
                if slug is not None
                else f"{reasons.FORBIDDEN_TENANT_PREFIX}: the topic names no tenant, and this API key writes only "
                f"tenant {principal.tenant!r}"
            )
            messages.append(IngestMessage("http", item.topic, item.payload, tenant=slug, unrouted_reason=reason))
            continue
        now = item.received_at
        if now is None or now > server_now + ingest.options.max_future_skew:
            now = server_now
        messages.append(
            parse_message("http", item.topic, item.payload, tenants=tenants, now=now, options=ingest.options)
        )

    result = await ingest.writer.write_isolating(session, messages)
    ingest.metrics.record("http", result, time.perf_counter() - started)
    return _receipt(messages, result)


def _document(body: bytes, max_messages: int) -> Any:
    if not body:
        raise BadRequestError("empty body: send an EMQX rule-engine message or a JSON list of them")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequestError(f"malformed JSON body: {error}") from None
    if isinstance(document, list):
        if not document:
            raise BadRequestError("the body holds an empty list, no messages")
        if len(document) > max_messages:
            raise PayloadTooLargeError(
                f"the body holds {len(document)} messages, more than the limit of {max_messages}",
                details={"messages": len(document), "limit": max_messages},
            )
    elif not isinstance(document, dict):
        raise BadRequestError("body must be a JSON object or a list of objects (EMQX rule-engine messages)")
    return document


def _counts(counts: TenantCounts) -> ReadingCounts:
    return ReadingCounts(
        received=counts.received, written=counts.written, duplicate=counts.duplicate, rejected=counts.rejected
    )


def _receipt(messages: list[IngestMessage], result: WriteResult) -> IngestReceipt:
    rejections: list[IngestRejection] = []
    total = 0

    def add(index: int, reading: int | None, topic: str | None, reason: str, stored_in: str) -> None:
        nonlocal total
        total += 1
        if len(rejections) < MAX_LISTED_REJECTIONS:
            shown = None if topic is None else topic[:MAX_STORED_TOPIC_CHARS]
            rejections.append(
                IngestRejection(message=index, reading=reading, topic=shown, reason=reason, stored_in=stored_in)
            )

    for index, message in enumerate(messages):
        not_stored = result.not_stored.get(index)
        if not_stored is not None:
            add(
                index,
                None,
                message.topic,
                not_stored.reason,
                STORED_UNROUTED if not_stored.unrouted else STORED_REJECTED,
            )
            continue
        if message.unrouted_reason is not None:
            add(index, None, message.topic, message.unrouted_reason, STORED_UNROUTED)
            continue
        if message.tenant not in result.tenants:
            add(index, None, message.topic, f"{reasons.UNKNOWN_TENANT_PREFIX} {message.tenant!r}", STORED_UNROUTED)
            continue
        for rejection in message.rejections:
            add(index, rejection.index, message.topic, rejection.reason, STORED_REJECTED)

    total_counts = TenantCounts()
    for counts in result.tenants.values():
        total_counts.add(counts)
    return IngestReceipt(
        messages=len(messages),
        readings=_counts(total_counts),
        tenants={slug: _counts(counts) for slug, counts in sorted(result.tenants.items())},
        unrouted=sum(result.unrouted.values()),
        rejections=rejections,
        rejections_truncated=total > len(rejections),
    )

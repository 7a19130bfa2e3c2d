"""Receiving Chatwoot webhooks: check, log, de-duplicate and queue every request; never process one inline.

Order of checks (each failure is logged `rejected`): 415 when the content type is not `application/json`; 503
while the integration is off or has neither a webhook secret nor a token (an endpoint that checks nothing would
let anyone write into incident threads); 401 when authentication fails; 400 when the body is not a JSON object
with an `event` string.

Authentication: with `RTLS_CAMBUS_CHATWOOT_WEBHOOK_SECRET`, `X-Chatwoot-Signature` must be
`sha256=<hex HMAC-SHA256(secret, "{X-Chatwoot-Timestamp}." + raw body)>` (constant-time compare over the raw
bytes) with a timestamp within 5 minutes of now, which makes a captured request useless soon after. Chatwoot
servers that sign nothing (before 2026) are configured with `RTLS_CAMBUS_CHATWOOT_WEBHOOK_TOKEN` instead, and the
webhook URL carries it as `?token=`; it is compared in constant time and never logged. With a secret set the
token is not accepted, so configuring the stronger check cannot be undone by a request.

Unverified requests keep only the start of their body in the log and are counted per address (429 past
`RTLS_CAMBUS_CHATWOOT_WEBHOOK_REJECTED_RATE_LIMIT`, not logged), the suite's limits for every webhook log
(`mirante.webhooks.audit`). Accepted requests are de-duplicated on `X-Chatwoot-Delivery`, which Chatwoot keeps
across retries: a repeat is logged `duplicate` and answered 200. An accepted `message_created` is logged `queued`
and handed to the sync through the outbox (`rtls.chatwoot.delivery_received`, committed with the log row), so
the answer goes back at once (Chatwoot waits 5 s and, on many servers, never retries); other events are logged
`ignored`. The log row is answered, not raised, so it commits with the request whatever the outcome.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
from limits import RateLimitItem
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus import Event, emit
from mirante.web.ratelimit import RateLimiter
from mirante.webhooks import (
    CHATWOOT_DELIVERY_HEADER,
    CHATWOOT_SIGNATURE_HEADER,
    CHATWOOT_TIMESTAMP_HEADER,
    SignatureError,
    audit,
    verify_chatwoot,
)
from mirante.webhooks.audit import Throttle, db_text, kept_headers, media_type, stored_body
from rtls_cambus.chatwoot import repository
from rtls_cambus.chatwoot.models import DUPLICATE, IGNORED, QUEUED, REJECTED
from rtls_cambus.config import Settings
from rtls_cambus.identifiers import SCHEMA, SOURCE

DELIVERY_EVENT: Final = "rtls.chatwoot.delivery_received"
"""Internal: an accepted delivery waits in the log for the sync (`data.log_id`)."""
MIRRORED_EVENTS: Final = frozenset({"message_created"})
TOLERANCE_SECONDS: Final = 300.0
THROTTLE_SCOPE: Final = "chatwoot-webhook-rejected"
RATE_SCOPE: Final = "chatwoot-webhook"
JSON_MEDIA_TYPE: Final = "application/json"
KEPT_HEADERS: Final = (
    "content-type",
    "content-length",
    "user-agent",
    CHATWOOT_SIGNATURE_HEADER.lower(),
    CHATWOOT_TIMESTAMP_HEADER.lower(),
    CHATWOOT_DELIVERY_HEADER.lower(),
    "x-forwarded-for",
)
MAX_EVENT_CHARS: Final = 100
MAX_SOURCE_IP_CHARS: Final = 64
_DELIVERY_ID = re.compile(r"[\x21-\x7e]{1,200}")

SIGNATURE = "signature"
TOKEN = "token"


@dataclass(frozen=True)
class WebhookRequest:
    """A request as received: raw body, headers (case-insensitive), the `token` query value, the socket peer."""

    body: bytes
    headers: Mapping[str, str]
    token: str | None
    source_ip: str | None
    received_at: datetime


@dataclass(frozen=True)
class Receipt:
    log_id: int
    status: str
    http_status: int
    message: str
    code: str = "ok"


def rejection_throttle(limiter: RateLimiter | None, rate: RateLimitItem) -> Throttle | None:
    return audit.rejection_throttle(limiter, rate, THROTTLE_SCOPE)


def _parse(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return None, f"the body is not valid JSON: {error}"
    if not isinstance(payload, dict):
        return None, f"the body must be a JSON object, not {type(payload).__name__}"
    return payload, None


class ChatwootWebhookReceiver:
    """Checks, logs and queues webhook requests in the caller's transaction (flush only)."""

    def __init__(self, session: AsyncSession, settings: Settings, *, throttle: Throttle | None = None) -> None:
        self.session = session
        self.settings = settings
        self.throttle = throttle

    async def receive(self, request: WebhookRequest) -> Receipt:
        """Log `request` and queue it when accepted; `RateLimitedError` (429, nothing logged) when an
        unverified request exceeds its address's limit."""
        authenticated_by, auth_error = self._authenticate(request)
        if authenticated_by is None and self.throttle is not None:
            await self.throttle(request.source_ip)
        payload, parse_error = _parse(request.body)
        raw_event = payload.get("event") if payload is not None else None
        event = raw_event if isinstance(raw_event, str) and raw_event else None
        kept = stored_body(request.body, authenticated_by is not None)
        values: dict[str, Any] = {
            "delivery_id": None,
            "event": db_text(event, MAX_EVENT_CHARS) if event is not None else None,
            "authenticated_by": authenticated_by,
            "body": kept.body,
            "body_size": kept.body_size,
            "body_truncated": kept.body_truncated,
            "body_sha256": kept.body_sha256,
            "headers": kept_headers(request.headers, KEPT_HEADERS),
            "source_ip": db_text(request.source_ip, MAX_SOURCE_IP_CHARS) if request.source_ip else None,
            "received_at": request.received_at,
        }
        refusal = self._refusal(request, auth_error, parse_error, event)
        if refusal is not None:
            http_status, code, message = refusal
            values.update(status=REJECTED, http_status=http_status, note=message, processed_at=request.received_at)
            log_id = await repository.insert_delivery(self.session, values)
            return Receipt(log_id, REJECTED, http_status, message, code)
        assert event is not None
        return await self._accept(request, event, values)

    def _authenticate(self, request: WebhookRequest) -> tuple[str | None, str | None]:
        """(how the sender proved itself, None) or (None, why it did not)."""
        secret = self.settings.chatwoot_webhook_secret
        token = self.settings.chatwoot_webhook_token
        if secret is not None:
            try:
                verify_chatwoot(secret.get_secret_value(), request.headers, request.body, tolerance=TOLERANCE_SECONDS)
            except SignatureError as error:
                return None, str(error)
            return SIGNATURE, None
        if token is not None:
            given = request.token
            if given is None:
                return None, "the token query parameter is missing"
            if not hmac.compare_digest(given.encode("utf-8", "replace"), token.get_secret_value().encode("utf-8")):
                return None, "the token query parameter is wrong"
            return TOKEN, None
        return None, "no webhook secret or token is configured"

    def _refusal(
        self, request: WebhookRequest, auth_error: str | None, parse_error: str | None, event: str | None
    ) -> tuple[int, str, str] | None:
        content_type = media_type(request.headers.get("content-type"))
        if content_type != JSON_MEDIA_TYPE:
            shown = content_type[:MAX_EVENT_CHARS] or "none"
            return 415, "unsupported_media_type", f"content type {shown!r}: send {JSON_MEDIA_TYPE}"
        settings = self.settings
        if not settings.chatwoot_enabled or (
            settings.chatwoot_webhook_secret is None and settings.chatwoot_webhook_token is None
        ):
            return (
                503,
                "chatwoot_not_configured",
                "Chatwoot webhooks are refused until RTLS_CAMBUS_CHATWOOT_ENABLED is true and "
                "RTLS_CAMBUS_CHATWOOT_WEBHOOK_SECRET (or, for servers that do not sign, _WEBHOOK_TOKEN) is set",
            )
        if auth_error is not None:
            return 401, "invalid_signature", auth_error
        if parse_error is not None:
            return 400, "malformed_json", parse_error
        if event is None:
            return 400, "bad_request", 'the body has no "event" string'
        return None

    async def _accept(self, request: WebhookRequest, event: str, values: dict[str, Any]) -> Receipt:
        raw_id = request.headers.get(CHATWOOT_DELIVERY_HEADER.lower())
        delivery_id = raw_id.strip() if raw_id else None
        if delivery_id is not None and _DELIVERY_ID.fullmatch(delivery_id) is None:
            # The header stays in the audit, but a value that is no printable token is no key to de-duplicate on.
            delivery_id = None
        values["delivery_id"] = delivery_id
        mirrored = event in MIRRORED_EVENTS
        status = QUEUED if mirrored else IGNORED
        note = None if mirrored else f"event {event!r} is not mirrored"
        values.update(status=status, http_status=200, note=note, processed_at=None if mirrored else request.received_at)
        log_id = await repository.insert_accepted(self.session, values)
        if log_id is None:
            assert delivery_id is not None
            first = await repository.accepted_delivery(self.session, delivery_id)
            message = f"{CHATWOOT_DELIVERY_HEADER} {delivery_id} was received before (log {first})"
            values.update(status=DUPLICATE, note=message, processed_at=request.received_at)
            log_id = await repository.insert_delivery(self.session, values)
            return Receipt(log_id, DUPLICATE, 200, message)
        if mirrored:
            await emit(
                self.session,
                SCHEMA,
                Event(
                    source=SOURCE, type=DELIVERY_EVENT, subject=f"chatwoot-delivery/{log_id}", data={"log_id": log_id}
                ),
            )
            return Receipt(log_id, QUEUED, 200, "queued for the incident thread")
        return Receipt(log_id, IGNORED, 200, note or "ignored")

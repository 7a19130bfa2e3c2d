"""Deliveries: made from the suite's event streams, sent by a poller that survives restarts.

The stream consumer (the library's: consumer group, inbox, dead letters) only writes one pending delivery per
matching subscription, in the transaction that records the event in the inbox. Sending is separate: every
replica's poller leases due deliveries with `FOR UPDATE SKIP LOCKED`, sends each in its own task (at most
`webhook_max_concurrency` at once and `webhook_max_per_subscription` to one subscription, so a slow receiver
holds only its own slots), and records the attempt. A replica that dies mid-send leaves a lease that expires
after `webhook_lease_seconds`; the delivery is then sent again with the same `webhook-id`, as Standard Webhooks
allows.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.aio import cancel_and_wait, wait_event
from mirante.backoff import scheduled_delay
from mirante.bus import Event, StreamConsumer
from mirante.service import discover_services
from mirante.webhooks.signatures import sign_standard
from rtls_cambus.config import Settings
from rtls_cambus.outgoing import repository
from rtls_cambus.outgoing.models import DELIVERED, FAILED, WebhookAttempt
from rtls_cambus.outgoing.sender import AttemptResult, Verdict, send
from rtls_cambus.outgoing.ssrf import TargetPolicy

logger = logging.getLogger(__name__)

CONSUMER_GROUP = "rtls-cambus-webhooks"
SCHEMA = "rtls_cambus"


def payload_for(event: Event) -> bytes:
    """The body of every delivery of `event`: the Standard Webhooks shape, with the envelope's attributes."""
    body: dict[str, Any] = {
        "type": event.type,
        "timestamp": event.time.isoformat().replace("+00:00", "Z"),
        "data": event.data,
        "id": event.id,
        "source": event.source,
        "subject": event.subject,
        "tenant": event.tenant,
    }
    return orjson.dumps(body)


def stream_names(settings: Settings) -> list[str]:
    if settings.webhook_streams:
        return list(settings.webhook_streams)
    return [spec.stream for spec in discover_services() if spec.publishes_events]


class Dispatcher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        client: httpx.AsyncClient,
        policy: TargetPolicy | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.client = client
        self.policy = policy or TargetPolicy(settings.webhook_allowed_targets)
        self.in_flight: dict[int, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def handle_event(self, session: AsyncSession, event: Event) -> None:
        """The stream consumer's handler: pending deliveries for the subscriptions to this type."""
        made = await repository.enqueue(session, event.event_uuid, event.type, payload_for(event))
        if made:
            self.wake()

    async def poll_once(self) -> int:
        """Lease what is due and start a task for each; how many were started."""
        free = self.settings.webhook_max_concurrency - len(self.tasks)
        if free <= 0:
            return 0
        now = datetime.now(UTC)
        async with self.sessionmaker() as session, session.begin():
            claimed = await repository.claim_due(
                session,
                now,
                now + timedelta(seconds=self.settings.webhook_lease_seconds),
                free=free,
                per_subscription=self.settings.webhook_max_per_subscription,
                in_flight=self.in_flight,
            )
        for item in claimed:
            self.in_flight[item.subscription_id] = self.in_flight.get(item.subscription_id, 0) + 1
            task = asyncio.create_task(self._deliver(item), name=f"webhook-delivery:{item.id}")
            self.tasks.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("a webhook delivery task failed", exc_info=task.exception())

    async def run(self) -> None:
        try:
            while True:
                try:
                    started = await self.poll_once()
                except Exception:
                    logger.exception("looking for due webhook deliveries failed")
                    started = 0
                if started == 0:
                    self._wake.clear()
                    await wait_event(self._wake, self.settings.webhook_poll_interval_seconds)
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Cancel the attempts in flight; their leases are released so another replica sends them at once."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, item: repository.Claimed) -> None:
        recorded = False
        try:
            headers = sign_standard(item.secrets, item.payload, msg_id=item.msg_id)
            attempted_at = datetime.now(UTC)
            result = await send(
                self.client,
                self.policy,
                item.url,
                item.payload,
                headers,
                timeout_seconds=self.settings.webhook_timeout_seconds,
            )
            await self._record(item, attempted_at, result)
            recorded = True
        finally:
            count = self.in_flight.get(item.subscription_id, 1) - 1
            if count > 0:
                self.in_flight[item.subscription_id] = count
            else:
                self.in_flight.pop(item.subscription_id, None)
            if not recorded:
                await asyncio.shield(self._release(item.id))

    async def _release(self, delivery_id: int) -> None:
        try:
            async with self.sessionmaker() as session, session.begin():
                await repository.release(session, [delivery_id])
        except Exception:
            logger.exception("releasing webhook delivery %s failed; its lease will expire", delivery_id)

    async def _record(self, item: repository.Claimed, attempted_at: datetime, result: AttemptResult) -> None:
        attempts = item.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": result.status_code,
            "last_error": result.error,
        }
        disable_reason: str | None = None
        if result.verdict is Verdict.DELIVERED:
            values.update(status=DELIVERED, delivered_at=datetime.now(UTC))
        elif result.verdict is Verdict.RETRY:
            delay = scheduled_delay(attempts, self.settings.webhook_retry_schedule_seconds, result.retry_after)
            if delay is None:
                values["status"] = FAILED
            else:
                values["next_attempt_at"] = datetime.now(UTC) + timedelta(seconds=delay)
        else:
            values["status"] = FAILED
            if result.verdict is Verdict.GONE:
                disable_reason = "the receiver answered 410 Gone"
        async with self.sessionmaker() as session, session.begin():
            await repository.add_attempt(
                session,
                WebhookAttempt(
                    delivery_id=item.id,
                    attempted_at=attempted_at,
                    duration_ms=result.duration_ms,
                    status_code=result.status_code,
                    error=result.error,
                    response_excerpt=result.excerpt,
                ),
            )
            await repository.finish(session, item.id, **values)
            if disable_reason is not None:
                await repository.disable_subscription(session, item.subscription_id, disable_reason)
        logger.info(
            "webhook delivery %s (%s) attempt %d: %s %s",
            item.id,
            item.msg_id,
            attempts,
            result.status_code or "-",
            result.verdict,
        )


def build_client() -> httpx.AsyncClient:
    # No proxies from the environment: a proxy would connect to the name, not to the checked address.
    return httpx.AsyncClient(trust_env=False, follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=20))


async def webhook_worker(app: FastAPI) -> None:
    """Consume every service's stream into deliveries and send them, for the app's lifetime."""
    settings: Settings = app.state.settings
    if not settings.webhook_dispatch_enabled:
        logger.info("webhook dispatch is disabled (RTLS_CAMBUS_WEBHOOK_DISPATCH_ENABLED=false)")
        return
    async with build_client() as client:
        dispatcher = Dispatcher(app.state.sessionmaker, settings, client)
        app.state.webhook_dispatcher = dispatcher
        consumer = StreamConsumer(
            app.state.redis,
            app.state.sessionmaker,
            stream_names(settings),
            CONSUMER_GROUP,
            f"{CONSUMER_GROUP}-{socket.gethostname()}",
            dispatcher.handle_event,
            SCHEMA,
            wanted_types=app.state.webhook_interest.types,
        )
        consuming = asyncio.create_task(consumer.run(), name="webhook-consumer")
        try:
            await dispatcher.run()
        finally:
            consumer.stop()
            await cancel_and_wait(consuming)
            if getattr(app.state, "webhook_dispatcher", None) is dispatcher:
                app.state.webhook_dispatcher = None

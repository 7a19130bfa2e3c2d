"""Deliveries: made from the suite's event streams, sent by a poller that survives restarts.

The stream consumer (the library's: consumer group, inbox, dead letters) only writes the pending deliveries of a
batch of events (one per matching subscription, one statement for the batch), in the transaction that records
the events in the inbox, and wakes the poller once that transaction has committed.

Sending is separate. Every replica's poller leases due deliveries in one statement (each subscription's oldest,
`FOR UPDATE SKIP LOCKED`, so replicas never take the same one) into a lane per subscription. A lane sends at most
`webhook_max_per_subscription` at once and the replica at most `webhook_max_concurrency`, so a slow receiver
holds only its own slots; what else a lane holds waits there and starts the moment one of its slots frees, so a
fast receiver never waits for the poller. How much a lane may hold follows its receiver's pace: as many rounds as
finish within a lease (at most `MAX_ROUNDS`), so a slow receiver holds one or two rounds and a delivery is never
sent on a lease that cannot cover its attempt. A lane asks the poller for more when half of what it held is gone.

A sender task lives as long as there is something to send: when an attempt has its answer, it takes the next
delivery the bounds let start (a task per delivery cost about a tenth of the CPU of a delivery). Attempts are
logged together, in the background: a log waits a few milliseconds for the attempts still in flight, and those
that finish while it is being written go in the next one, a single statement each. The claim and the log go
through asyncpg itself (`mirante.db_driver`), at about a third of a session's cost per statement. A replica that
dies mid-send leaves leases that expire after `webhook_lease_seconds`; the deliveries are then sent again with the
same `webhook-id`, as Standard Webhooks allows.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from mirante.aio import cancel_and_wait, wait_event
from mirante.backoff import scheduled_delay
from mirante.bus import BatchHandler, Event, StreamConsumer, WantedTypes
from mirante.db import engine_of
from mirante.db_driver import pooled_driver
from mirante.service import configured_or_installed_streams
from mirante.webhooks.signatures import sign_standard
from rtls_cambus.config import Settings
from rtls_cambus.outgoing import repository
from rtls_cambus.outgoing.models import DELIVERED, FAILED, PENDING, WebhookAttempt
from rtls_cambus.outgoing.sender import AttemptResult, Verdict, send
from rtls_cambus.outgoing.ssrf import TargetPolicy

logger = logging.getLogger(__name__)

CONSUMER_GROUP = "rtls-cambus-webhooks"
SCHEMA = "rtls_cambus"
INTERRUPTED = "interrupted: the service stopped before the answer came; sent again with the same webhook-id"
_WAKE_REGISTERED = "rtls_cambus.webhooks.wake_after_commit"
MAX_ROUNDS = 16
"""A lane holds at most this many rounds of its subscription's bound (claimed deliveries waiting for a slot):
the next attempt starts the moment a slot frees, while the poller claims more in the background (against a fast
receiver, a claim of about half the lane: some twenty-five deliveries per statement)."""
PACE_WEIGHT = 0.2
"""Weight of the latest attempt in a subscription's pace (a moving average of its attempts' durations)."""
RECORD_GATHER_SECONDS = 0.02
"""How long the attempt log waits for attempts still in flight before writing (when fewer than a replica's bound
are waiting): against a fast receiver it writes some twenty attempts per statement instead of one or two. The
deliveries stay leased meanwhile; only the log is later."""
CONSUMER_BATCH = 200
"""Events the webhook consumer takes per transaction: its handler writes the whole batch in one statement, with no
savepoint per event (see `mirante.bus.StreamConsumer`), so a bigger batch only means fewer transactions."""
DEFAULT_MAX_CONCURRENCY = int(Settings.model_fields["webhook_max_concurrency"].default)


def payload_for(event: Event) -> bytes:
    """The body of every delivery of `event`: the Standard Webhooks shape, with the envelope's attributes."""
    body: dict[str, Any] = {
        "type": event.type,
        "timestamp": event.time,
        "data": event.data,
        "id": event.id,
        "source": event.source,
        "subject": event.subject,
        "tenant": event.tenant,
    }
    # The envelope's time is in UTC: written as RFC 3339 with a "Z".
    return orjson.dumps(body, option=orjson.OPT_UTC_Z)


def stream_names(settings: Settings) -> list[str]:
    return configured_or_installed_streams(settings.webhook_streams)


@dataclass
class Lane:
    """One subscription's deliveries held by this replica: claimed and waiting for a slot, or being sent."""

    waiting: deque[repository.Claimed] = field(default_factory=deque)
    sending: int = 0

    @property
    def held(self) -> int:
        return self.sending + len(self.waiting)


class Dispatcher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        client: httpx.AsyncClient,
        policy: TargetPolicy | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.engine = engine_of(sessionmaker)
        self.settings = settings
        self.client = client
        self.policy = policy or TargetPolicy(
            settings.webhook_allowed_targets, cache_seconds=settings.webhook_dns_cache_seconds
        )
        self.lanes: dict[int, Lane] = {}
        """Subscription id → its lane; a lane leaves when it holds nothing."""
        self.pace: dict[int, float] = {}
        """Subscription id → seconds its attempts have been taking lately."""
        self.held_ids: set[int] = set()
        self._ready: dict[int, None] = {}
        """Lanes with deliveries waiting, in the order they will be offered a slot (an ordered set)."""
        self.sending = 0
        self.tasks: set[asyncio.Task[None]] = set()
        """The sender tasks."""
        self._wake = asyncio.Event()
        self._to_record: list[repository.Outcome] = []
        self._recorder: asyncio.Task[None] | None = None

    @property
    def per_subscription(self) -> int:
        return self.settings.webhook_max_per_subscription

    def capacity(self, subscription_id: int) -> int:
        """How many deliveries of a subscription this replica may hold: as many rounds of its bound as its pace
        lets finish within a lease (one round until it has a pace), so a slow receiver holds one or two rounds
        and a fast one is never kept waiting for the poller."""
        pace = self.pace.get(subscription_id)
        if pace is None:
            return self.per_subscription
        settings = self.settings
        budget = settings.webhook_lease_seconds - settings.webhook_timeout_seconds
        rounds = int(budget / max(pace, 0.001))
        return self.per_subscription * max(1, min(MAX_ROUNDS, rounds))

    def wake(self) -> None:
        self._wake.set()

    @property
    def wake_requested(self) -> bool:
        """Whether the poller has been asked to look for due deliveries (and has not looked since)."""
        return self._wake.is_set()

    async def handle_events(self, session: AsyncSession, events: Sequence[Event]) -> None:
        """The stream consumer's batch handler: pending deliveries for the subscriptions to each event's type."""
        made = await repository.enqueue_many(
            session, [repository.Deliverable(event.event_uuid, event.type, payload_for(event)) for event in events]
        )
        if made and not session.info.get(_WAKE_REGISTERED):
            # Woken before the commit, the poller would find nothing yet and sleep a whole poll interval.
            session.info[_WAKE_REGISTERED] = True
            sqlalchemy_event.listen(session.sync_session, "after_commit", self._wake_after_commit, once=True)

    def _wake_after_commit(self, session: Session) -> None:
        session.info.pop(_WAKE_REGISTERED, None)
        self._wake.set()

    async def poll_once(self) -> int:
        """Lease what is due (one statement), start what the bounds let start and keep the rest waiting in its
        subscription's lane; how many were claimed."""
        free = MAX_ROUNDS * self.settings.webhook_max_concurrency - len(self.held_ids)
        if free <= 0:
            return 0
        known = set(self.lanes) | set(self.pace)
        room = {
            subscription: self.capacity(subscription) - (lane.held if (lane := self.lanes.get(subscription)) else 0)
            for subscription in known
        }
        now = datetime.now(UTC)
        async with pooled_driver(self.engine) as connection:
            claimed = await repository.claim_due(
                connection,
                now,
                now + timedelta(seconds=self.settings.webhook_lease_seconds),
                free=free,
                room=room,
                default_room=self.per_subscription,
                held_ids=self.held_ids,
            )
        for item in claimed:
            self.held_ids.add(item.id)
            self.lanes.setdefault(item.subscription_id, Lane()).waiting.append(item)
            self._ready[item.subscription_id] = None
        self._start_ready()
        return len(claimed)

    def _next_ready(self) -> repository.Claimed | None:
        """The next waiting delivery the replica's bound lets start, one per lane in turn (the lane that waited
        longest first), each lane within its subscription's bound; counted as sending."""
        while self._ready and self.sending < self.settings.webhook_max_concurrency:
            subscription_id = next(iter(self._ready))
            del self._ready[subscription_id]
            lane = self.lanes.get(subscription_id)
            if lane is None or not lane.waiting or lane.sending >= self.per_subscription:
                continue  # back in line when one of its attempts has its answer
            item = lane.waiting.popleft()
            lane.sending += 1
            self.sending += 1
            if len(lane.waiting) == self.capacity(subscription_id) // 2:
                # Half its deliveries are gone: time to claim more, in one go.
                self._wake.set()
            if lane.waiting:
                self._ready[subscription_id] = None
            return item
        return None

    def _start_ready(self) -> None:
        """A sender for each delivery the bounds let start."""
        while (item := self._next_ready()) is not None:
            task = asyncio.create_task(self._send_from(item), name="webhook-sender")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _send_from(self, item: repository.Claimed) -> None:
        """Send `item`, then each next delivery the bounds let start, until none waits."""
        next_item: repository.Claimed | None = item
        while next_item is not None:
            try:
                await self._deliver(next_item)
            except Exception:
                logger.exception("sending webhook delivery %s failed", next_item.id)
            next_item = self._next_ready()

    async def settled(self) -> None:
        """Return once nothing is being sent and every attempt that has its answer is logged."""
        while self.tasks or (self._recorder is not None and not self._recorder.done()):
            pending = [*self.tasks, *([self._recorder] if self._recorder is not None else [])]
            await asyncio.gather(*pending, return_exceptions=True)

    async def run(self) -> None:
        try:
            while True:
                # Cleared before the look, so a wake-up that arrives during it is not lost. After a look the poller
                # waits for one (new deliveries committed, a lane half empty) or for the interval (retries due).
                self._wake.clear()
                try:
                    await self.poll_once()
                except Exception:
                    logger.exception("looking for due webhook deliveries failed")
                    await asyncio.sleep(self.settings.webhook_poll_interval_seconds)
                    continue
                await wait_event(self._wake, self.settings.webhook_poll_interval_seconds)
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Cancel the attempts in flight and give back what waits (leases released, so another replica sends
        them at once), and log the attempts that have their answer."""
        waiting = [item.id for lane in self.lanes.values() for item in lane.waiting]
        for lane in self.lanes.values():
            lane.waiting.clear()
        self._ready.clear()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if waiting:
            await asyncio.shield(self._release(waiting))
        if self._recorder is not None:
            await asyncio.gather(asyncio.shield(self._recorder), return_exceptions=True)

    def _leave(self, item: repository.Claimed) -> None:
        lane = self.lanes[item.subscription_id]
        lane.sending -= 1
        self.sending -= 1
        self.held_ids.discard(item.id)
        if lane.held == 0:
            del self.lanes[item.subscription_id]
        if lane.waiting:
            self._ready[item.subscription_id] = None
        else:
            self._wake.set()

    def _note_pace(self, subscription_id: int, seconds: float) -> None:
        previous = self.pace.get(subscription_id)
        self.pace[subscription_id] = (
            seconds if previous is None else (1 - PACE_WEIGHT) * previous + PACE_WEIGHT * seconds
        )

    def _lease_left(self, item: repository.Claimed) -> bool:
        """Whether the lease still covers a whole attempt: past it, another replica may take the delivery."""
        return item.lease_until - datetime.now(UTC) >= timedelta(seconds=self.settings.webhook_timeout_seconds)

    async def _deliver(self, item: repository.Claimed) -> None:
        answered = False
        cut: WebhookAttempt | None = None
        try:
            if not self._lease_left(item):
                # It waited too long for a slot: back to the table, to be claimed again with a fresh lease.
                return
            headers = sign_standard(item.secrets, item.payload, msg_id=item.msg_id)
            attempted_at = datetime.now(UTC)
            started = time.monotonic()
            try:
                result = await send(
                    self.client,
                    self.policy,
                    item.url,
                    item.payload,
                    headers,
                    timeout_seconds=self.settings.webhook_timeout_seconds,
                )
            except asyncio.CancelledError:
                # The request may have reached the receiver, which will see the same webhook-id again: the log
                # says so rather than leave a request nobody can account for.
                cut = WebhookAttempt(
                    delivery_id=item.id,
                    attempted_at=attempted_at,
                    duration_ms=int((time.monotonic() - started) * 1000),
                    error=INTERRUPTED,
                )
                raise
            answered = True
            self._note_pace(item.subscription_id, result.duration_ms / 1000)
        finally:
            # The subscription's slot is free once the answer is in (the sender takes the next delivery): the
            # delivery stays leased until its attempt is logged, so nothing sends it meanwhile.
            self._leave(item)
            if not answered:
                await asyncio.shield(self._release([item.id], cut))
        self._record(self._outcome(item, attempted_at, result))

    async def _release(self, delivery_ids: list[int], cut: WebhookAttempt | None = None) -> None:
        """Give the deliveries back for an attempt now; an attempt cut off is logged, not counted: the retry
        schedule is for the receiver's failures, not for this service stopping."""
        try:
            async with self.sessionmaker() as session, session.begin():
                if cut is not None:
                    await repository.add_attempt(session, cut)
                await repository.release(session, delivery_ids, last_error=cut.error if cut is not None else None)
        except Exception:
            logger.exception("releasing webhook deliveries %s failed; their leases will expire", delivery_ids)

    def _outcome(self, item: repository.Claimed, attempted_at: datetime, result: AttemptResult) -> repository.Outcome:
        attempts = item.attempts + 1
        status, retry_at, delivered_at = PENDING, None, None
        if result.verdict is Verdict.DELIVERED:
            status, delivered_at = DELIVERED, datetime.now(UTC)
        elif result.verdict is Verdict.RETRY:
            delay = scheduled_delay(attempts, self.settings.webhook_retry_schedule_seconds, result.retry_after)
            if delay is None:
                status = FAILED
            else:
                retry_at = datetime.now(UTC) + timedelta(seconds=delay)
        else:
            status = FAILED
        # A line for each delivered attempt would be noise at INFO: the delivery log has every attempt.
        logger.log(
            logging.DEBUG if status == DELIVERED else logging.INFO,
            "webhook delivery %s (%s) attempt %d: %s %s",
            item.id,
            item.msg_id,
            attempts,
            result.status_code or "-",
            result.verdict,
        )
        return repository.Outcome(
            delivery_id=item.id,
            subscription_id=item.subscription_id,
            attempted_at=attempted_at,
            duration_ms=result.duration_ms,
            status_code=result.status_code,
            error=result.error,
            excerpt=result.excerpt,
            attempts=attempts,
            status=status,
            next_attempt_at=retry_at,
            delivered_at=delivered_at,
            gone=result.verdict is Verdict.GONE,
        )

    def _record(self, outcome: repository.Outcome) -> None:
        """Log the attempt with the others that are waiting (one statement for all), in the background: its sender
        moves on, and a sender cancelled meanwhile does not take the attempt out of the log."""
        self._to_record.append(outcome)
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_waiting(), name="webhook-attempt-log")

    async def _record_waiting(self) -> None:
        while self._to_record:
            if self.sending and len(self._to_record) < self.settings.webhook_max_concurrency:
                await asyncio.sleep(RECORD_GATHER_SECONDS)
            batch, self._to_record = self._to_record, []
            try:
                await self._write(batch)
            except Exception:
                logger.exception("logging %d webhook attempts together failed; logging them one by one", len(batch))
                for outcome in batch:
                    try:
                        await self._write([outcome])
                    except Exception:
                        logger.exception(
                            "logging the attempt of webhook delivery %s failed; it is sent again when its lease "
                            "expires",
                            outcome.delivery_id,
                        )

    async def _write(self, outcomes: list[repository.Outcome]) -> None:
        async with pooled_driver(self.engine) as connection:
            await repository.record_outcomes(connection, outcomes)


def build_client(max_connections: int = DEFAULT_MAX_CONCURRENCY) -> httpx.AsyncClient:
    """The client of every attempt: as many kept-alive connections as attempts may be in flight, so each receiver
    keeps its connections from one delivery to the next."""
    # No proxies from the environment: a proxy would connect to the name, not to the checked address. No cookies
    # kept: a jar would send one receiver's cookies to every subscription on the same address.
    return httpx.AsyncClient(
        trust_env=False,
        follow_redirects=False,
        cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )


def delivery_consumer(
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    dispatcher: Dispatcher,
    streams: list[str],
    *,
    group: str = CONSUMER_GROUP,
    block_ms: int = 2_000,
    wanted_types: WantedTypes | None = None,
) -> StreamConsumer:
    """The stream consumer that makes the deliveries of `dispatcher`, a batch of events at a time; with
    `wanted_types`, events of types no subscription names are skipped."""
    return StreamConsumer(
        redis,
        sessionmaker,
        streams,
        group,
        f"{group}-{socket.gethostname()}",
        BatchHandler(dispatcher.handle_events),
        SCHEMA,
        batch_size=CONSUMER_BATCH,
        block_ms=block_ms,
        wanted_types=wanted_types,
    )


async def webhook_worker(app: FastAPI) -> None:
    """Consume every service's stream into deliveries and send them, for the app's lifetime."""
    settings: Settings = app.state.settings
    if not settings.webhook_dispatch_enabled:
        logger.info("webhook dispatch is disabled (RTLS_CAMBUS_WEBHOOK_DISPATCH_ENABLED=false)")
        return
    async with build_client(settings.webhook_max_concurrency) as client:
        dispatcher = Dispatcher(app.state.sessionmaker, settings, client)
        app.state.webhook_dispatcher = dispatcher
        consumer = delivery_consumer(
            app.state.redis,
            app.state.sessionmaker,
            dispatcher,
            stream_names(settings),
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

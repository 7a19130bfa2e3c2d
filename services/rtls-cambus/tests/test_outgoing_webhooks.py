"""Outgoing webhooks against the real database and small real HTTP receivers on 127.0.0.1; the dispatcher's
consumer skipping types no subscription names, and a new subscription getting the next event at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mirante.auth.commands import create_user
from mirante.auth.models import User
from mirante.auth.service import issue_token
from mirante.auth.tokens import TokenCodec
from mirante.bus import Event
from mirante.settings import InfraSettings
from mirante.testing.plans import rolled_back, scans_of
from mirante.testing.plugin import ClientFactory, HeadersFactory
from mirante.testing.streams import wait_until
from mirante.testing.webhooks import WebhookReceiverStarter
from mirante.webhooks.signatures import generate_standard_secret, verify_standard
from rtls_cambus.config import Settings
from rtls_cambus.main import create_app
from rtls_cambus.outgoing import repository
from rtls_cambus.outgoing.dispatcher import CONSUMER_GROUP, MAX_ROUNDS, Dispatcher, build_client, delivery_consumer
from rtls_cambus.outgoing.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from rtls_cambus.outgoing.ssrf import TargetPolicy, TargetRefusedError
from rtls_cambus.retention import forget_old_logs

LOCAL = ["127.0.0.0/8"]


@pytest_asyncio.fixture(loop_scope="session")
async def sessions(db_engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    maker = async_sessionmaker(db_engine, expire_on_commit=False)
    made: list[int] = []
    maker.made = made  # type: ignore[attr-defined]
    yield maker
    async with maker() as session, session.begin():
        await session.execute(delete(WebhookSubscription).where(WebhookSubscription.id.in_(made)))


def webhook_settings(infra: InfraSettings, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "webhook_allowed_targets": LOCAL,
        "webhook_retry_schedule_seconds": [0.0, 0.0, 0.0],
        "webhook_timeout_seconds": 5,
        "webhook_lease_seconds": 30,
        "mqtt_ingest_enabled": False,
    }
    values.update(overrides)
    return Settings(infra=infra, **values)  # type: ignore[arg-type]


async def subscribe(sessions: async_sessionmaker[AsyncSession], url: str, secret: str) -> int:
    async with sessions() as session, session.begin():
        subscription = WebhookSubscription(url=url, event_types=["rtls.gateway.offline"], secret=secret)
        session.add(subscription)
        await session.flush()
        sessions.made.append(subscription.id)  # type: ignore[attr-defined]
        return subscription.id


async def enqueue_to(sessions: async_sessionmaker[AsyncSession], subscription_id: int) -> int:
    async with sessions() as session, session.begin():
        [delivery_id] = await repository.enqueue(
            session, uuid.uuid4(), "rtls.gateway.offline", b'{"type":"rtls.gateway.offline"}', subscription_id
        )
        return delivery_id


async def drain(
    dispatcher: Dispatcher, delivery_id: int, sessions: async_sessionmaker[AsyncSession]
) -> WebhookDelivery:
    """Poll and finish attempts until the delivery is no longer pending."""
    for _ in range(50):
        await dispatcher.poll_once()
        await dispatcher.settled()
        async with sessions() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            assert delivery is not None
            if delivery.status != "pending":
                return delivery
    raise AssertionError("the delivery stayed pending")


async def attempts(sessions: async_sessionmaker[AsyncSession], delivery_id: int) -> list[WebhookAttempt]:
    async with sessions() as session:
        rows = await session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.id)
        )
        return list(rows.all())


async def test_retries_until_the_receiver_is_back_then_delivers_once_signed(
    infra_settings: InfraSettings,
    sessions: async_sessionmaker[AsyncSession],
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    receiver = await start_webhook_receiver(statuses=[503, 429, 200])
    secret = generate_standard_secret()
    delivery_id = await enqueue_to(sessions, await subscribe(sessions, receiver.url, secret))
    async with build_client() as client:
        delivered = await drain(Dispatcher(sessions, webhook_settings(infra_settings), client), delivery_id, sessions)
    assert delivered.status == "delivered" and delivered.attempts == 3
    assert len(receiver.received) == 3
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivered.msg_id}
    for request in receiver.received:
        verify_standard(secret, request.headers, request.body)
    assert [a.status_code for a in await attempts(sessions, delivery_id)] == [503, 429, 200]


async def test_a_cookie_a_receiver_sets_is_never_sent_back(
    infra_settings: InfraSettings,
    sessions: async_sessionmaker[AsyncSession],
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    receiver = await start_webhook_receiver(extra_headers={"Set-Cookie": "session=abc123; Path=/"})
    first, second = [await subscribe(sessions, receiver.url, generate_standard_secret()) for _ in range(2)]
    async with build_client() as client:
        dispatcher = Dispatcher(sessions, webhook_settings(infra_settings), client)
        await drain(dispatcher, await enqueue_to(sessions, first), sessions)
        await drain(dispatcher, await enqueue_to(sessions, second), sessions)
        assert not client.cookies
    assert len(receiver.received) == 2
    assert [request.headers.get("cookie") for request in receiver.received] == [None, None]


async def test_gone_disables_and_other_4xx_is_final(
    infra_settings: InfraSettings,
    sessions: async_sessionmaker[AsyncSession],
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    gone = await start_webhook_receiver(statuses=[410])
    refused = await start_webhook_receiver(statuses=[400])
    gone_sub = await subscribe(sessions, gone.url, generate_standard_secret())
    refused_sub = await subscribe(sessions, refused.url, generate_standard_secret())
    async with build_client() as client:
        dispatcher = Dispatcher(sessions, webhook_settings(infra_settings), client)
        first = await drain(dispatcher, await enqueue_to(sessions, gone_sub), sessions)
        second = await drain(dispatcher, await enqueue_to(sessions, refused_sub), sessions)
    assert (first.status, first.attempts, second.status, second.attempts) == ("failed", 1, "failed", 1)
    async with sessions() as session:
        assert (await session.get(WebhookSubscription, gone_sub)).enabled is False  # type: ignore[union-attr]
        assert (await session.get(WebhookSubscription, refused_sub)).enabled is True  # type: ignore[union-attr]
    # A disabled subscription gets no new deliveries.
    async with sessions() as session, session.begin():
        assert await repository.enqueue(session, uuid.uuid4(), "rtls.gateway.offline", b"{}", gone_sub) == []


async def test_retention_forgets_finished_deliveries_and_their_attempts_but_never_pending_ones(
    infra_settings: InfraSettings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    settings = webhook_settings(infra_settings, webhook_delivery_retention_days=7)
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=8), now - timedelta(days=6)
    subscription_id = await subscribe(sessions, "http://127.0.0.1:9/hook", generate_standard_secret())
    # (status, created, next attempt due, delivered): old creation alone never decides, the finish does.
    shapes = {
        "delivered long ago": ("delivered", old, old, old),
        "failed long ago": ("failed", old, old, None),
        "pending for long": ("pending", old, old, None),
        "redelivered, pending again": ("pending", old, now, old),
        "delivered lately after long retries": ("delivered", old, recent, recent),
        "failed lately after long retries": ("failed", old, recent, None),
    }
    ids: dict[str, int] = {}
    async with sessions() as session, session.begin():
        for name, (status, created, due, delivered) in shapes.items():
            delivery = WebhookDelivery(
                subscription_id=subscription_id,
                msg_id=repository.new_msg_id(),
                event_id=uuid.uuid4(),
                event_type="rtls.gateway.offline",
                payload=b"{}",
                status=status,
                attempts=1,
                next_attempt_at=due,
                created_at=created,
                delivered_at=delivered,
            )
            session.add(delivery)
            await session.flush()
            session.add(WebhookAttempt(delivery_id=delivery.id, attempted_at=due, duration_ms=3, status_code=503))
            ids[name] = delivery.id

    forgotten = await forget_old_logs(sessions, settings, now=now)

    async with sessions() as session:
        kept = set(await session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.id.in_(ids.values()))))
        with_attempts = set(
            await session.scalars(
                select(WebhookAttempt.delivery_id).where(WebhookAttempt.delivery_id.in_(ids.values()))
            )
        )
    assert {name for name, delivery_id in ids.items() if delivery_id in kept} == {
        "pending for long",
        "redelivered, pending again",
        "delivered lately after long retries",
        "failed lately after long retries",
    }
    assert with_attempts == kept
    assert forgotten.webhook_deliveries >= 2
    assert (await forget_old_logs(sessions, settings, now=now)).webhook_deliveries == 0


async def test_a_restart_mid_delivery_sends_it_again_with_the_same_id(
    infra_settings: InfraSettings,
    sessions: async_sessionmaker[AsyncSession],
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    hold = asyncio.Event()
    receiver = await start_webhook_receiver(hold=hold)
    delivery_id = await enqueue_to(sessions, await subscribe(sessions, receiver.url, generate_standard_secret()))
    settings = webhook_settings(infra_settings)
    async with build_client() as client:
        first = Dispatcher(sessions, settings, client)
        assert await first.poll_once() == 1
        await receiver.arrived.wait()
        await first.stop()  # the old instance stops mid-request
        hold.set()
        delivered = await drain(Dispatcher(sessions, settings, client), delivery_id, sessions)
    assert (delivered.status, delivered.attempts) == ("delivered", 1)
    assert len(receiver.received) == 2
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivered.msg_id}
    # The cut attempt is in the log, though not counted against the receiver.
    logged = [(a.status_code, (a.error or "").split(":")[0]) for a in await attempts(sessions, delivery_id)]
    assert logged == [(None, "interrupted"), (200, "")]


async def test_a_slow_receiver_does_not_delay_another(
    infra_settings: InfraSettings,
    sessions: async_sessionmaker[AsyncSession],
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    hold = asyncio.Event()
    slow = await start_webhook_receiver(hold=hold)
    fast = await start_webhook_receiver()
    settings = webhook_settings(infra_settings, webhook_max_per_subscription=1, webhook_max_concurrency=2)
    slow_sub = await subscribe(sessions, slow.url, generate_standard_secret())
    slow_ids = [await enqueue_to(sessions, slow_sub) for _ in range(3)]
    fast_id = await enqueue_to(sessions, await subscribe(sessions, fast.url, generate_standard_secret()))
    async with build_client() as client:
        dispatcher = Dispatcher(sessions, settings, client)
        await dispatcher.poll_once()
        await slow.arrived.wait()
        await fast.arrived.wait()
        async with sessions() as session:
            assert (await session.get(WebhookDelivery, fast_id)) is not None
        hold.set()
        for delivery_id in [fast_id, *slow_ids]:
            assert (await drain(dispatcher, delivery_id, sessions)).status == "delivered"


async def test_a_batch_of_events_makes_its_deliveries_in_one_go_and_wakes_the_poller_after_the_commit(
    infra_settings: InfraSettings,
    sessions: async_sessionmaker[AsyncSession],
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    receiver = await start_webhook_receiver()
    subscription_id = await subscribe(sessions, receiver.url, generate_standard_secret())
    events = [
        Event(source="mirante/test", type=type_, data={"n": n})
        for n, type_ in enumerate(["rtls.gateway.offline", "rtls.gateway.online", "rtls.gateway.offline"])
    ]
    async with build_client() as client:
        dispatcher = Dispatcher(sessions, webhook_settings(infra_settings), client)
        async with sessions() as session, session.begin():
            await dispatcher.handle_events(session, events)
            await dispatcher.handle_events(session, events[:1])  # seen again: no second delivery
            assert not dispatcher.wake_requested, "woken before the commit, the poller would find nothing"
        assert dispatcher.wake_requested
    async with sessions() as session:
        made = (
            await session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.subscription_id == subscription_id)
                .order_by(WebhookDelivery.id)
            )
        ).all()
    assert [delivery.event_id for delivery in made] == [events[0].event_uuid, events[2].event_uuid]
    assert [orjson.loads(delivery.payload)["id"] for delivery in made] == [events[0].id, events[2].id]
    assert len({delivery.msg_id for delivery in made}) == 2
    assert all(delivery.msg_id.startswith("msg_") for delivery in made)


async def test_an_event_on_a_stream_reaches_its_subscriber_signed_without_waiting_for_the_poll_interval(
    infra_settings: InfraSettings,
    sessions: async_sessionmaker[AsyncSession],
    start_webhook_receiver: WebhookReceiverStarter,
    redis_client: Redis,
) -> None:
    receiver = await start_webhook_receiver()
    secret = generate_standard_secret()
    await subscribe(sessions, receiver.url, secret)
    stream = f"events:webhooks-test-{uuid.uuid4().hex[:8]}"
    # Woken only by the consumer's commit: the poller's own look comes a minute later.
    settings = webhook_settings(infra_settings, webhook_poll_interval_seconds=60)
    async with build_client() as client:
        dispatcher = Dispatcher(sessions, settings, client)
        consumer = delivery_consumer(
            redis_client, sessions, dispatcher, [stream], group=f"webhooks-{uuid.uuid4().hex[:8]}", block_ms=100
        )
        await consumer.ensure_groups()
        consuming = asyncio.create_task(consumer.run())
        polling = asyncio.create_task(dispatcher.run())
        try:
            await asyncio.sleep(0.2)  # the poller has looked once and waits
            events = [
                Event(source="mirante/test", type=kind, subject="gateway/7", data={"gateway_id": 7})
                for kind in ("rtls.gateway.offline", "rtls.gateway.online", "rtls.gateway.offline")
            ]
            for event in events:
                await redis_client.xadd(stream, event.to_fields())  # type: ignore[arg-type]
            async with asyncio.timeout(10):
                while len(receiver.received) < 2:
                    receiver.arrived.clear()
                    await receiver.arrived.wait()
        finally:
            consumer.stop()
            polling.cancel()
            await asyncio.gather(consuming, polling, return_exceptions=True)
            await redis_client.delete(stream)
    assert sorted(orjson.loads(request.body)["id"] for request in receiver.received) == sorted(
        [events[0].id, events[2].id]
    )
    for request in receiver.received:
        verify_standard(secret, request.headers, request.body)


async def test_a_fast_receiver_gets_its_deliveries_without_waiting_for_the_poller_within_its_bound(
    infra_settings: InfraSettings,
    sessions: async_sessionmaker[AsyncSession],
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    receiver = await start_webhook_receiver(delay=0.01)
    subscription_id = await subscribe(sessions, receiver.url, generate_standard_secret())
    delivery_ids = [await enqueue_to(sessions, subscription_id) for _ in range(30)]
    settings = webhook_settings(infra_settings, webhook_max_per_subscription=2)
    looks = 0
    async with build_client() as client:
        dispatcher = Dispatcher(sessions, settings, client)
        while True:
            looks += await dispatcher.poll_once() > 0
            await dispatcher.settled()  # what the lane held, sent as its slots freed
            async with sessions() as session:
                pending = await session.scalar(
                    select(func.count())
                    .select_from(WebhookDelivery)
                    .where(WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.status == "pending")
                )
            if pending == 0:
                break
            assert looks < 30, "every delivery waited for a look of its own"
    assert receiver.most_in_flight == 2, "never more than the subscription's bound at once"
    assert len(receiver.received) == 30
    # The first look takes one round (the receiver's pace is unknown: 2), then the lane holds 16 rounds: the rest.
    assert MAX_ROUNDS == 16 and looks == 2
    assert dispatcher.capacity(subscription_id) == 2 * MAX_ROUNDS


async def test_a_delivery_that_waited_past_what_its_lease_covers_is_given_back_unsent(
    infra_settings: InfraSettings,
    sessions: async_sessionmaker[AsyncSession],
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    hold = asyncio.Event()
    receiver = await start_webhook_receiver(hold=hold)
    subscription_id = await subscribe(sessions, receiver.url, generate_standard_secret())
    first, *others = [await enqueue_to(sessions, subscription_id) for _ in range(3)]
    settings = webhook_settings(
        infra_settings, webhook_max_per_subscription=1, webhook_timeout_seconds=0.5, webhook_lease_seconds=0.8
    )
    async with build_client() as client:
        dispatcher = Dispatcher(sessions, settings, client)
        dispatcher.pace[subscription_id] = 0.01  # known to be fast: its lane holds several rounds
        assert await dispatcher.poll_once() == 3
        await dispatcher.settled()  # the first times out; then the others' leases are too short
    hold.set()
    assert len(receiver.received) == 1
    async with sessions() as session:
        sent = await session.get(WebhookDelivery, first)
        assert sent is not None and sent.attempts == 1 and sent.last_error is not None
        for delivery_id in others:
            given_back = await session.get(WebhookDelivery, delivery_id)
            assert given_back is not None
            assert (given_back.status, given_back.attempts, given_back.locked_until) == ("pending", 0, None)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00:ec2::254]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://224.0.0.1/x",
        "ftp://example.com/x",
    ],
)
async def test_the_default_policy_refuses_internal_targets(url: str) -> None:
    with pytest.raises(TargetRefusedError):
        await TargetPolicy().resolve(url)


async def test_the_dispatchers_policy_reuses_a_hosts_addresses_for_a_while_and_never_keeps_a_refusal() -> None:
    loopback = ["127.0.0.0/8", "::1/128"]
    caching = TargetPolicy(loopback, cache_seconds=0.3)
    first = await caching.resolve("http://localhost:8123/a")
    again = await caching.resolve("http://localhost:8123/b")
    assert (first.address, again.address, caching.lookups) == (again.address, first.address, 1)
    assert await caching.resolve("http://localhost:8123/a") is first
    assert first.host_header == "localhost:8123"
    v6 = await caching.resolve("http://[::1]/hook?x=1")
    assert (v6.pinned_url, v6.host_header) == ("http://[::1]:80/hook?x=1", "[::1]")
    await asyncio.sleep(0.4)
    await caching.resolve("http://localhost:8123/c")
    assert caching.lookups == 2  # expired: looked up again

    every_time = TargetPolicy(loopback)
    for _ in range(2):
        await every_time.resolve("http://localhost:8123/a")
    assert every_time.lookups == 2

    # A refused target is refused again, not kept: without the exception, loopback is refused.
    strict = TargetPolicy(cache_seconds=30)
    for _ in range(2):
        with pytest.raises(TargetRefusedError):
            await strict.resolve("http://localhost:8123/a")
    assert strict.lookups == 1


async def test_a_redirect_to_a_private_address_is_not_followed(
    infra_settings: InfraSettings,
    sessions: async_sessionmaker[AsyncSession],
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    private = await start_webhook_receiver()
    redirecting = await start_webhook_receiver(statuses=[307], extra_headers={"Location": private.url})
    delivery_id = await enqueue_to(sessions, await subscribe(sessions, redirecting.url, generate_standard_secret()))
    async with build_client() as client:
        delivered = await drain(Dispatcher(sessions, webhook_settings(infra_settings), client), delivery_id, sessions)
    assert (delivered.status, delivered.last_status_code) == ("failed", 307)
    assert private.received == []


async def test_subscriptions_api(
    make_client: ClientFactory,
    auth_headers: HeadersFactory,
    infra_settings: InfraSettings,
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    receiver = await start_webhook_receiver()
    admin = await auth_headers("admin")
    body = {"url": receiver.url, "event_types": ["rtls.gateway.offline"]}
    # The API alone: the stream readers cannot see this test's rolled-back rows (the dispatcher has tests of its
    # own above), and they would only slow the app's start and stop.
    quiet = {
        "webhook_dispatch_enabled": False,
        "incident_rules_enabled": False,
        "alert_engine_enabled": False,
        "mqtt_ingest_enabled": False,
    }
    closed: httpx.AsyncClient = await make_client(create_app(Settings(infra=infra_settings, **quiet)))  # type: ignore[arg-type]
    refused = await closed.post("/api/v1/webhooks", json=body, headers=admin)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "webhook_target_refused"
    client: httpx.AsyncClient = await make_client(create_app(webhook_settings(infra_settings, **quiet)))
    assert (await client.post("/api/v1/webhooks", json=body, headers=await auth_headers("operator"))).status_code == 403
    types = (await client.get("/api/v1/webhooks/event-types", headers=admin)).json()
    assert "vision.inspection.failed" in {t["type"] for t in types}
    unknown = await client.post("/api/v1/webhooks", json={**body, "event_types": ["no.such.type"]}, headers=admin)
    assert unknown.status_code == 422 and "event-types" in unknown.json()["error"]["message"]
    for url in ("000000000", "ftp://example.com/hook", "http://user:secret@example.com/hook"):
        not_http = await client.post("/api/v1/webhooks", json={**body, "url": url}, headers=admin)
        assert not_http.status_code == 422, (url, not_http.text)
        assert not_http.json()["error"]["details"][0]["field"] == "body.url"
    created = await client.post("/api/v1/webhooks", json=body, headers=admin)
    assert created.status_code == 201, created.text
    subscription = created.json()
    assert subscription["secret"].startswith("whsec_")
    shown = (await client.get(f"/api/v1/webhooks/{subscription['id']}", headers=admin)).json()
    assert "secret" not in shown
    rotated = await client.post(f"/api/v1/webhooks/{subscription['id']}/rotate-secret", json={}, headers=admin)
    assert rotated.json()["secret"] != subscription["secret"] and rotated.json()["previous_secret_expires_at"]
    test = await client.post(f"/api/v1/webhooks/{subscription['id']}/test", headers=admin)
    assert test.status_code == 202 and test.json()["event_type"] == "rtls.webhook.test"
    listed = (await client.get(f"/api/v1/webhooks/{subscription['id']}/deliveries", headers=admin)).json()
    assert listed["count"] == 1
    again = await client.post(
        f"/api/v1/webhooks/{subscription['id']}/deliveries/{test.json()['id']}/redeliver", headers=admin
    )
    assert again.status_code == 202 and again.json()["msg_id"] == test.json()["msg_id"]
    assert (await client.delete(f"/api/v1/webhooks/{subscription['id']}", headers=admin)).status_code == 204


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_a_method_the_event_types_do_not_serve_is_a_405(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, method: str
) -> None:
    # `/event-types` sits next to `/{subscription_id}`, whose PATCH once took it and refused the id with a 422.
    answer = await client.request(method, "/api/v1/webhooks/event-types", headers=await auth_headers("admin"))

    assert answer.status_code == 405, answer.text
    assert answer.headers["allow"] == "GET"


def test_rotation_overlap_signs_with_both_secrets() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    assert repository.signing_secrets("a", "b", now + timedelta(seconds=5), now) == ["a", "b"]
    assert repository.signing_secrets("a", "b", now - timedelta(seconds=5), now) == ["a"]


async def consumed(redis: Redis, stream: str, group: str, entry_id: str) -> bool:
    """Whether `group` has read `stream` up to `entry_id` and acknowledged everything it read."""
    for info in await redis.xinfo_groups(stream):
        if info["name"].decode() == group:
            read_to = tuple(int(part) for part in info["last-delivered-id"].decode().split("-"))
            return read_to >= tuple(int(part) for part in entry_id.split("-")) and info["pending"] == 0
    return False


async def test_a_subscription_saved_through_the_api_gets_the_next_event_of_its_type(
    db_engine: AsyncEngine,
    redis_client: Redis,
    infra_settings: InfraSettings,
    sessions: async_sessionmaker[AsyncSession],
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    """The app's dispatcher skips events no subscription names; the commit of a subscription made through the app
    bumps what it knows, so the next event goes out although the types are otherwise read only every 300 s."""
    receiver = await start_webhook_receiver()
    stream = f"events:webhooks-test-{uuid.uuid4().hex}"
    settings = webhook_settings(
        infra_settings,
        webhook_streams=[stream],
        event_interest_refresh_seconds=300,
        incident_rules_enabled=False,
        alert_engine_enabled=False,
    )
    async with sessions() as session, session.begin():
        admin = await create_user(session, username=f"hooks-{uuid.uuid4().hex[:8]}", password="x" * 16, role="admin")
    headers = {"Authorization": f"Bearer {issue_token(TokenCodec.from_settings(infra_settings.jwt), admin).token}"}
    event_type = "rtls.camera.registered"
    before, after = (Event(source="mirante/rtls-cambus", type=event_type, data={"n": n}) for n in (1, 2))
    app = create_app(settings)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
        ):
            await wait_until(lambda: redis_client.exists(stream), what="the dispatcher's consumer group")
            entry_id = (await redis_client.xadd(stream, before.to_fields())).decode()  # type: ignore[arg-type]
            await wait_until(lambda: consumed(redis_client, stream, CONSUMER_GROUP, entry_id), what="the skip")
            created = await client.post(
                "/api/v1/webhooks", json={"url": receiver.url, "event_types": [event_type]}, headers=headers
            )
            assert created.status_code == 201, created.text
            sessions.made.append(created.json()["id"])  # type: ignore[attr-defined]
            await redis_client.xadd(stream, after.to_fields())  # type: ignore[arg-type]
            await asyncio.wait_for(receiver.arrived.wait(), 20)
        assert [orjson.loads(item.body)["id"] for item in receiver.received] == [after.id]
        async with sessions() as session:
            made = await session.scalars(
                select(WebhookDelivery.event_id).where(WebhookDelivery.event_type == event_type)
            )
            assert list(made.all()) == [after.event_uuid], "the event published before the subscription was skipped"
    finally:
        await redis_client.delete(stream)
        async with sessions() as session, session.begin():
            await session.execute(delete(User).where(User.id == admin.id))


async def test_claims_and_attempt_logs_find_their_deliveries_by_id_whatever_the_statistics_say(
    db_engine: AsyncEngine,
) -> None:
    """Statistics taken before a burst of deliveries (autovacuum has not come by yet) must not turn the claim's
    re-check and the attempt log into a read of every pending delivery: each finds its rows by the primary key."""
    now = datetime.now(UTC)
    async with rolled_back(db_engine) as connection:
        subscription_id = await connection.scalar(
            text(
                "INSERT INTO rtls_cambus.webhook_subscriptions (url, event_types, secret) "
                "VALUES ('http://127.0.0.1:9/hook', '{rtls.gateway.offline}', 'whsec_x') RETURNING id"
            )
        )
        await connection.execute(text("ANALYZE rtls_cambus.webhook_deliveries"))
        burst = await connection.scalars(
            text(
                "INSERT INTO rtls_cambus.webhook_deliveries "
                "(subscription_id, msg_id, event_id, event_type, payload) "
                "SELECT :subscription_id, 'msg_' || n, gen_random_uuid(), 'rtls.gateway.offline', '\\x7b7d' "
                "FROM generate_series(1, 5000) AS n RETURNING id"
            ),
            {"subscription_id": subscription_id},
        )
        some = list(burst.all())[:4]
        claim = {
            "room_ids": [subscription_id],
            "room_counts": [16],
            "held_ids": [],
            "now": now,
            "lease_until": now + timedelta(seconds=60),
            "default_room": 4,
            "free": 16,
        }
        record = {
            "delivery_ids": some,
            "attempted_at": [now] * 4,
            "durations_ms": [3] * 4,
            "status_codes": [200] * 4,
            "errors": [None] * 4,
            "excerpts": ["ok"] * 4,
            "attempts": [1] * 4,
            "statuses": ["delivered"] * 4,
            "retry_at": [None] * 4,
            "delivered_at": [now] * 4,
            "gone_subscriptions": [],
            "gone_reason": repository.GONE_REASON,
        }
        plans = {}
        for name, statement, parameters in [
            ("claim", repository._CLAIM.statement, claim),
            ("record", repository._RECORD.statement, record),
        ]:
            explain = text(f"EXPLAIN (FORMAT JSON) {statement.text}").bindparams(*statement._bindparams.values())
            [[output]] = (await connection.execute(explain, parameters)).all()
            plans[name] = scans_of(output[0]["Plan"], "webhook_deliveries")
    # The claim reads each subscription's oldest pending deliveries through the partial index, once; every other
    # read of the table, in both statements, is a lookup by id.
    assert sorted(scan.index or "" for scan in plans["claim"]) == [
        "ix_webhook_deliveries_due",
        "pk_webhook_deliveries",
        "pk_webhook_deliveries",
    ]
    assert [scan.index for scan in plans["record"]] == ["pk_webhook_deliveries"]
    assert all(scan.condition for scan in plans["claim"] + plans["record"]), plans

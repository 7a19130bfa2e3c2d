"""Outgoing webhooks against the real database and small real HTTP receivers on 127.0.0.1; the dispatcher's
consumer skipping types no subscription names, and a new subscription getting the next event at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mirante.auth.commands import create_user
from mirante.auth.models import User
from mirante.auth.service import issue_token
from mirante.auth.tokens import TokenCodec
from mirante.bus import Event
from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory, HeadersFactory
from mirante.testing.streams import wait_until
from mirante.webhooks.signatures import generate_standard_secret, verify_standard
from rtls_cambus.config import Settings
from rtls_cambus.main import create_app
from rtls_cambus.outgoing import repository
from rtls_cambus.outgoing.dispatcher import CONSUMER_GROUP, Dispatcher, build_client
from rtls_cambus.outgoing.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from rtls_cambus.outgoing.ssrf import TargetPolicy, TargetRefusedError

LOCAL = ["127.0.0.0/8"]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP/1.1 server answering each POST with the next scripted status (the last one repeats)."""

    statuses: list[int] = field(default_factory=lambda: [200])
    extra_headers: dict[str, str] = field(default_factory=dict)
    hold: asyncio.Event | None = None
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")[1:]
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(headers, body))
            self.arrived.set()
            if self.hold is not None:
                await self.hold.wait()
            code = self.statuses[min(len(self.received) - 1, len(self.statuses) - 1)]
            extra = "".join(f"{k}: {v}\r\n" for k, v in self.extra_headers.items())
            writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: 2\r\n{extra}Connection: close\r\n\r\nok".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest_asyncio.fixture(loop_scope="session")
async def start_receiver() -> AsyncIterator[object]:
    servers: list[asyncio.Server] = []

    async def start(**kwargs: object) -> Receiver:
        receiver = Receiver(**kwargs)  # type: ignore[arg-type]
        receiver.server = await asyncio.start_server(receiver._serve, "127.0.0.1", 0)
        servers.append(receiver.server)
        return receiver

    yield start
    for server in servers:
        server.close()


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
        await asyncio.gather(*list(dispatcher.tasks))
        async with sessions() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            assert delivery is not None
            if delivery.status != "pending":
                return delivery
    raise AssertionError("the delivery stayed pending")


async def attempts(sessions: async_sessionmaker[AsyncSession], delivery_id: int) -> list[WebhookAttempt]:
    async with sessions() as session:
        rows = await session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id))
        return list(rows.all())


async def test_retries_until_the_receiver_is_back_then_delivers_once_signed(
    infra_settings: InfraSettings, sessions: async_sessionmaker[AsyncSession], start_receiver: object
) -> None:
    receiver: Receiver = await start_receiver(statuses=[503, 429, 200])  # type: ignore[operator]
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


async def test_gone_disables_and_other_4xx_is_final(
    infra_settings: InfraSettings, sessions: async_sessionmaker[AsyncSession], start_receiver: object
) -> None:
    gone: Receiver = await start_receiver(statuses=[410])  # type: ignore[operator]
    refused: Receiver = await start_receiver(statuses=[400])  # type: ignore[operator]
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


async def test_a_restart_mid_delivery_sends_it_again_with_the_same_id(
    infra_settings: InfraSettings, sessions: async_sessionmaker[AsyncSession], start_receiver: object
) -> None:
    hold = asyncio.Event()
    receiver: Receiver = await start_receiver(hold=hold)  # type: ignore[operator]
    delivery_id = await enqueue_to(sessions, await subscribe(sessions, receiver.url, generate_standard_secret()))
    settings = webhook_settings(infra_settings)
    async with build_client() as client:
        first = Dispatcher(sessions, settings, client)
        assert await first.poll_once() == 1
        await receiver.arrived.wait()
        await first.stop()  # the old instance stops mid-request
        hold.set()
        delivered = await drain(Dispatcher(sessions, settings, client), delivery_id, sessions)
    assert delivered.status == "delivered"
    assert len(receiver.received) == 2
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivered.msg_id}


async def test_a_slow_receiver_does_not_delay_another(
    infra_settings: InfraSettings, sessions: async_sessionmaker[AsyncSession], start_receiver: object
) -> None:
    hold = asyncio.Event()
    slow: Receiver = await start_receiver(hold=hold)  # type: ignore[operator]
    fast: Receiver = await start_receiver()  # type: ignore[operator]
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


async def test_a_redirect_to_a_private_address_is_not_followed(
    infra_settings: InfraSettings, sessions: async_sessionmaker[AsyncSession], start_receiver: object
) -> None:
    private: Receiver = await start_receiver()  # type: ignore[operator]
    redirecting: Receiver = await start_receiver(  # type: ignore[operator]
        statuses=[307], extra_headers={"Location": private.url}
    )
    delivery_id = await enqueue_to(sessions, await subscribe(sessions, redirecting.url, generate_standard_secret()))
    async with build_client() as client:
        delivered = await drain(Dispatcher(sessions, webhook_settings(infra_settings), client), delivery_id, sessions)
    assert (delivered.status, delivered.last_status_code) == ("failed", 307)
    assert private.received == []


async def test_subscriptions_api(
    make_client: ClientFactory, auth_headers: HeadersFactory, infra_settings: InfraSettings, start_receiver: object
) -> None:
    receiver: Receiver = await start_receiver()  # type: ignore[operator]
    admin = await auth_headers("admin")
    body = {"url": receiver.url, "event_types": ["rtls.gateway.offline"]}
    # The API alone: the stream readers cannot see this test's rolled-back rows (the dispatcher has tests of its
    # own above), and they would only slow the app's start and stop.
    quiet = {"webhook_dispatch_enabled": False, "incident_rules_enabled": False, "alert_engine_enabled": False}
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
    start_receiver: object,
) -> None:
    """The app's dispatcher skips events no subscription names; the commit of a subscription made through the app
    bumps what it knows, so the next event goes out although the types are otherwise read only every 300 s."""
    receiver: Receiver = await start_receiver()  # type: ignore[operator]
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

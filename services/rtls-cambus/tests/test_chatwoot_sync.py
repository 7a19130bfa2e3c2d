"""The Chatwoot sync end to end against the Chatwoot simulator (a real HTTP server on 127.0.0.1 speaking the
application API and sending signed webhooks), the service on a real port receiving them, and the sync as a
consumer group on the real rtls-cambus stream: conversation per incident, both directions, no echo, retries, and
one conversation per incident when a transaction fails after Chatwoot accepted it."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mirante.bus.tables import inbox_table, outbox_table
from mirante.db import create_sessionmaker
from mirante.settings import InfraSettings, RedisSettings
from mirante.testing.browser import AppServer
from rtls_cambus.chatwoot.client import ChatwootClient, ChatwootConfig, build_http_client
from rtls_cambus.chatwoot.models import ChatwootConversation, ChatwootDelivery, ChatwootMessage
from rtls_cambus.chatwoot.sync import ChatwootSync, chatwoot_consumer
from rtls_cambus.config import Settings
from rtls_cambus.fields import Severity
from rtls_cambus.identifiers import SCHEMA
from rtls_cambus.incidents import service as incidents
from rtls_cambus.incidents.models import Incident, IncidentMessage
from rtls_cambus.incidents.schemas import IncidentCreate
from rtls_cambus.incidents.service import Actor
from rtls_cambus.main import create_app

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.chatwoot import ChatwootSimulator  # noqa: E402

STREAM = "events:rtls-cambus"
ACCOUNT = 31
"""Not the end-to-end test's account: conversation ids are unique per account, and both fakes count from 1."""
SECRET = "chatwoot-sync-secret"
ANA = Actor("user", 1, "Ana")


async def wait_for(condition: Callable[[], Awaitable[Any]], what: str, attempts: int = 400) -> Any:
    for _ in range(attempts):
        found = await condition()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


class World:
    """The simulator, the service on a port, the sync consuming the stream, and committed sessions."""

    def __init__(self, simulator: ChatwootSimulator, settings: Settings, sessions: async_sessionmaker[AsyncSession]):
        self.simulator = simulator
        self.settings = settings
        self.sessions = sessions
        self.incident_ids: list[int] = []

    async def open_incident(self, title: str) -> int:
        async with self.sessions() as session, session.begin():
            body = IncidentCreate(title=title, severity=Severity.high, description="Door forced at gate 3")
            incident = await incidents.create_incident(session, body, ANA)
        self.incident_ids.append(incident.id)
        return incident.id

    async def post(self, incident_id: int, text: str, actor: Actor = ANA) -> int:
        async with self.sessions() as session, session.begin():
            return (await incidents.post_message(session, incident_id, text, actor)).id

    async def conversation_of(self, incident_id: int) -> dict[str, Any] | None:
        for conversation in self.simulator.conversations():
            if conversation["custom_attributes"].get("mirante_incident_id") == incident_id:
                return conversation
        return None

    async def thread(self, incident_id: int) -> list[IncidentMessage]:
        async with self.sessions() as session:
            query = (
                select(IncidentMessage).where(IncidentMessage.incident_id == incident_id).order_by(IncidentMessage.id)
            )
            return list((await session.scalars(query)).all())

    async def delivery(self, delivery_id: str) -> ChatwootDelivery | None:
        async with self.sessions() as session:
            query = select(ChatwootDelivery).where(ChatwootDelivery.delivery_id == delivery_id)
            return (await session.scalars(query)).first()

    async def handled(self, delivery_id: str) -> ChatwootDelivery | None:
        row = await self.delivery(delivery_id)
        return row if row is not None and row.status not in ("queued",) else None


@pytest_asyncio.fixture(loop_scope="session")
async def world(
    infra_settings: InfraSettings, db_engine: AsyncEngine, own_redis: str, serve_app: AppServer
) -> AsyncIterator[World]:
    """A Redis of the world's own: on a shared one, the incidents other test runs publish to the same stream would
    reach this sync too, and open conversations on this simulator."""
    sessions = create_sessionmaker(db_engine)
    redis_client = Redis.from_url(own_redis)
    infra = infra_settings.model_copy(update={"redis": RedisSettings(url=own_redis)})
    # Events earlier tests of this run left unpublished in the database would reach this sync through the app's
    # relay, and open conversations on this simulator: they are marked published first.
    outbox = outbox_table(SCHEMA)
    async with sessions() as session, session.begin():
        await session.execute(update(outbox).where(outbox.c.published_at.is_(None)).values(published_at=func.now()))
    with ChatwootSimulator(account_id=ACCOUNT, inbox_id=5, secret=SECRET) as simulator:
        settings = Settings(
            infra=infra,
            chatwoot_enabled=True,
            chatwoot_url=simulator.url,
            chatwoot_api_token=simulator.api_token,
            chatwoot_account_id=ACCOUNT,
            chatwoot_inbox_id=5,
            chatwoot_webhook_secret=SECRET,
            chatwoot_sync_enabled=False,
            notifications_enabled=False,
            incident_rules_enabled=False,
            webhook_dispatch_enabled=False,
            mqtt_ingest_enabled=False,
            incident_url_template="https://rtls.example.com/incidents/{id}",
        )
        base = await serve_app(create_app(settings))
        simulator.webhook_url = f"{base}/api/v1/integrations/chatwoot/webhook"
        group = f"chatwoot-sync-test-{uuid.uuid4().hex}"
        async with build_http_client() as http:
            sync = ChatwootSync(ChatwootClient(http, ChatwootConfig.from_settings(settings)), settings)
            consumer = chatwoot_consumer(
                redis_client, sessions, sync, [STREAM], group=group, consumer_name="test", block_ms=100, min_idle_ms=300
            )
            await consumer.ensure_groups()
            task = asyncio.create_task(consumer.run())
            made = World(simulator, settings, sessions)
            made.consumer = consumer  # type: ignore[attr-defined]
            made.sync = sync  # type: ignore[attr-defined]
            made.group = group  # type: ignore[attr-defined]
            try:
                yield made
            finally:
                consumer.stop()
                await asyncio.wait_for(task, 30)
                await redis_client.aclose()
                async with sessions() as session, session.begin():
                    await session.execute(delete(Incident).where(Incident.id.in_(made.incident_ids)))


async def test_an_incident_and_its_thread_mirror_both_ways_without_echo(world: World) -> None:
    simulator = world.simulator
    incident_id = await world.open_incident("Intrusion in the lab")

    conversation = await wait_for(lambda: world.conversation_of(incident_id), "a conversation for the incident")
    # The incident speaks as a contact of its own, and its conversation names the contact inbox's source_id.
    [contact] = [c for c in simulator.contacts() if c["id"] == conversation["contact_id"]]
    assert contact["identifier"] == f"incident-{incident_id}@{world.settings.chatwoot_contact_identifier}"
    assert conversation["inbox_id"] == 5
    [contact_inbox] = contact["contact_inboxes"]
    assert contact_inbox["inbox"]["id"] == 5
    assert conversation["contact_inbox"]["source_id"] == contact_inbox["source_id"]
    [opening] = simulator.messages(conversation["id"])
    assert opening["message_type"] == "incoming"
    assert f"Incident #{incident_id} (high): Intrusion in the lab" in opening["content"]
    assert f"https://rtls.example.com/incidents/{incident_id}" in opening["content"]

    # Chatwoot sends a webhook for the message the service wrote: it comes back and is ignored.
    first_webhook = await wait_for(lambda: _webhook_for(simulator, opening["id"]), "the opening message's webhook")
    assert first_webhook.status == 200
    echoed = await wait_for(lambda: world.handled(first_webhook.delivery_id), "the opening message's webhook handled")
    assert echoed.status == "ignored" and "incoming" in (echoed.note or "")

    # An operator writes in the thread: it goes to the conversation, and its webhook is ignored too.
    await world.post(incident_id, "Gate 3 is open")
    sent = await wait_for(
        lambda: _messages_with(simulator, conversation["id"], "Ana: Gate 3 is open"), "Ana's message in Chatwoot"
    )
    assert sent[0]["message_type"] == "incoming"
    own = await wait_for(lambda: _webhook_for(simulator, sent[0]["id"]), "the webhook of Ana's message")
    assert (await wait_for(lambda: world.handled(own.delivery_id), "Ana's webhook handled")).status == "ignored"

    # An agent answers in Chatwoot: the reply joins the thread, once.
    reply = await simulator.agent_reply(conversation["id"], "On my way")
    assert reply is not None and reply.status == 200
    mirrored = await wait_for(lambda: world.handled(reply.delivery_id), "the agent's reply handled")
    assert mirrored.status == "processed" and mirrored.incident_id == incident_id
    thread = await world.thread(incident_id)
    assert [(m.author_kind, m.author_name, m.body) for m in thread] == [
        ("user", "Ana", "Gate 3 is open"),
        ("chatwoot", "Bruno Lima (Chatwoot)", "On my way"),
    ]

    # The reply's own `rtls.incident.updated` reaches the sync, which must not send it back.
    echo_event = await _message_event(world, thread[1].id)
    await wait_for(lambda: _handled_by(world, echo_event), "the reply's event handled by the sync")
    assert len(simulator.messages(conversation["id"])) == 3
    async with world.sessions() as session:
        crossings = (
            await session.execute(
                select(ChatwootMessage.direction, ChatwootMessage.incident_message_id).where(
                    ChatwootMessage.incident_id == incident_id
                )
            )
        ).all()
    assert sorted(crossings, key=str) == sorted([("outbound", thread[0].id), ("inbound", thread[1].id)], key=str)

    # Chatwoot retries the reply's delivery: a duplicate, nothing new in the thread.
    again = await simulator.resend(reply)
    assert again.status == 200
    async with world.sessions() as session:
        rows = (
            await session.scalars(
                select(ChatwootDelivery.status).where(ChatwootDelivery.delivery_id == reply.delivery_id)
            )
        ).all()
    assert sorted(rows) == ["duplicate", "processed"]

    # A private note stays in Chatwoot.
    note = await simulator.agent_reply(conversation["id"], "internal: check the camera", private=True)
    assert note is not None
    private = await wait_for(lambda: world.handled(note.delivery_id), "the private note handled")
    assert private.status == "ignored" and "private" in (private.note or "")
    assert len(await world.thread(incident_id)) == 2


async def test_chatwoot_down_then_up_opens_one_conversation(world: World) -> None:
    simulator = world.simulator
    simulator.fail_next = 3
    incident_id = await world.open_incident("Gateway offline in hall B")
    conversation = await wait_for(lambda: world.conversation_of(incident_id), "the conversation, after retries")
    assert simulator.fail_next == 0
    assert world.consumer.stats.failures >= 1  # type: ignore[attr-defined]
    assert [c["custom_attributes"]["mirante_incident_id"] for c in simulator.conversations()].count(incident_id) == 1

    async def stored_link() -> ChatwootConversation | None:
        # Chatwoot has the conversation before the sync's transaction that records it commits.
        async with world.sessions() as session:
            return await session.get(ChatwootConversation, incident_id)

    stored = await wait_for(stored_link, "the conversation recorded")
    assert stored.conversation_id == conversation["id"]

    # A message written while the conversation exists goes to it; none is lost to the outage.
    await world.post(incident_id, "Power is back")
    await wait_for(lambda: _messages_with(simulator, conversation["id"], "Ana: Power is back"), "the message")


async def test_a_contact_outside_the_inbox_gets_a_contact_inbox_first(world: World) -> None:
    simulator = world.simulator
    # Chatwoot refuses everything until the contact exists, so no attempt gets ahead of it.
    simulator.fail_next = 1_000_000
    incident_id = await world.open_incident("Tailgating at the loading dock")
    identifier = f"incident-{incident_id}@{world.settings.chatwoot_contact_identifier}"
    made_by_hand = simulator.add_contact(identifier, "Loading dock")
    assert made_by_hand["contact_inboxes"] == []
    simulator.fail_next = 0

    conversation = await wait_for(lambda: world.conversation_of(incident_id), "a conversation for the incident")
    [contact] = [c for c in simulator.contacts() if c["identifier"] == identifier]
    assert contact["id"] == made_by_hand["id"] and conversation["contact_id"] == contact["id"]
    [contact_inbox] = contact["contact_inboxes"]
    assert contact_inbox["inbox"]["id"] == 5
    assert conversation["contact_inbox"]["source_id"] == contact_inbox["source_id"]
    assert ("POST", f"/api/v1/accounts/{ACCOUNT}/contacts/{contact['id']}/contact_inboxes") in simulator.requests


async def test_a_commit_that_fails_after_chatwoot_opened_the_conversation_reuses_it(world: World) -> None:
    """Chatwoot accepts the conversation, then the transaction recording it fails at its commit (a deferred
    trigger raises once, as a lost connection or a failing disk would): the redelivered event links the same
    conversation instead of opening a second one."""
    simulator = world.simulator
    tag = uuid.uuid4().hex[:12]
    title = f"Smoke in server room {tag}"
    failures, function, trigger = f"{SCHEMA}.cw_commit_failures_{tag}", f"{SCHEMA}.cw_fail_commit_{tag}", f"cw_{tag}"
    statements = [
        f"CREATE SEQUENCE {failures}",
        f"""CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM {SCHEMA}.incidents WHERE id = NEW.incident_id AND title = '{title}') THEN
                IF nextval('{failures}') = 1 THEN
                    RAISE EXCEPTION 'the first commit linking incident % fails', NEW.incident_id;
                END IF;
            END IF;
            RETURN NULL;
        END $$""",
        f"""CREATE CONSTRAINT TRIGGER {trigger} AFTER INSERT ON {SCHEMA}.chatwoot_conversations
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {function}()""",
    ]
    async with world.sessions() as session, session.begin():
        for statement in statements:
            await session.execute(text(statement))
    try:
        incident_id = await world.open_incident(title)

        async def stored_link() -> ChatwootConversation | None:
            async with world.sessions() as session:
                return await session.get(ChatwootConversation, incident_id)

        stored = await wait_for(stored_link, "the conversation recorded by the redelivered event")
        async with world.sessions() as session:
            attempts = (await session.execute(text(f"SELECT last_value FROM {failures}"))).scalar_one()
        assert attempts == 2  # the first commit failed, the second went through
        mine = _conversations_of(simulator, incident_id)
        assert [c["id"] for c in mine] == [stored.conversation_id]
        assert len(simulator.messages(stored.conversation_id)) == 1  # its opening message, once
        contact_id = mine[0]["contact_id"]
        assert ("GET", f"/api/v1/accounts/{ACCOUNT}/contacts/{contact_id}/conversations") in simulator.requests
    finally:
        async with world.sessions() as session, session.begin():
            await session.execute(text(f"DROP TRIGGER {trigger} ON {SCHEMA}.chatwoot_conversations"))
            await session.execute(text(f"DROP FUNCTION {function}()"))
            await session.execute(text(f"DROP SEQUENCE {failures}"))


async def test_members_opening_one_incident_at_once_open_one_conversation(world: World) -> None:
    """Three members reach the same incident at the same moment (its creation on one, messages on others), with
    the sync's consumer a fourth: they take turns, and the later ones find the first one's link."""
    simulator = world.simulator
    sync: ChatwootSync = world.sync  # type: ignore[attr-defined]
    incident_id = await world.open_incident("Door held open in wing C")

    async def one_member() -> int | None:
        async with world.sessions() as session, session.begin():
            return await sync.conversation_for(session, incident_id)

    results = await asyncio.gather(*(one_member() for _ in range(3)), return_exceptions=True)
    created = await _incident_event(world, "rtls.incident.created", incident_id)
    await wait_for(lambda: _handled_by(world, created), "the creation handled by the consumer too")
    mine = _conversations_of(simulator, incident_id)
    assert len(mine) == 1
    assert results == [mine[0]["id"]] * 3


def _conversations_of(simulator: ChatwootSimulator, incident_id: int) -> list[dict[str, Any]]:
    return [c for c in simulator.conversations() if c["custom_attributes"].get("mirante_incident_id") == incident_id]


async def _messages_with(simulator: ChatwootSimulator, conversation_id: int, content: str) -> list[dict[str, Any]]:
    return [message for message in simulator.messages(conversation_id) if message["content"] == content]


async def _webhook_for(simulator: ChatwootSimulator, message_id: int) -> Any:
    import orjson

    for webhook in list(simulator.webhooks):
        if orjson.loads(webhook.body)["id"] == message_id:
            return webhook
    return None


async def _message_event(world: World, message_id: int) -> uuid.UUID:
    table = outbox_table(SCHEMA)
    async with world.sessions() as session:
        rows = (
            await session.execute(select(table.c.id, table.c.envelope).where(table.c.type == "rtls.incident.updated"))
        ).all()
    for event_id, envelope in rows:
        message = envelope["data"].get("message") or {}
        if message.get("id") == message_id:
            return event_id  # type: ignore[no-any-return]
    raise AssertionError(f"no event for incident message {message_id}")


async def _incident_event(world: World, event_type: str, incident_id: int) -> uuid.UUID:
    table = outbox_table(SCHEMA)
    async with world.sessions() as session:
        rows = (await session.execute(select(table.c.id, table.c.envelope).where(table.c.type == event_type))).all()
    for event_id, envelope in rows:
        if (envelope["data"].get("incident") or {}).get("id") == incident_id:
            return event_id  # type: ignore[no-any-return]
    raise AssertionError(f"no {event_type} event for incident {incident_id}")


async def _handled_by(world: World, event_id: uuid.UUID) -> bool:
    table = inbox_table(SCHEMA)
    async with world.sessions() as session:
        query = select(table.c.event_id).where(table.c.consumer == world.group, table.c.event_id == event_id)  # type: ignore[attr-defined]
        return (await session.execute(query)).first() is not None

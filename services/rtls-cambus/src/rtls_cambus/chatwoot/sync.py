"""The Chatwoot sync: a member of a consumer group on the rtls-cambus stream that keeps each incident's thread and
its Chatwoot conversation the same, both ways, without echo.

- `rtls.incident.created` opens a conversation in the configured inbox, as the incident's own contact, with a
  first message naming the incident and linking to it.
- `rtls.incident.updated` with `change: message` posts the message to the conversation (opening it first if
  the incident has none yet) and records the Chatwoot message id against the incident message.
- `rtls.chatwoot.delivery_received` (a webhook the receiver accepted) adds an agent's reply to the thread.

No echo: a message that came from Chatwoot is written with `author_kind` `chatwoot`, and the sync never sends
those back; what the sync sends goes as `incoming` (the contact speaking) and its id is recorded, and a webhook
for an incoming message or a known message id is logged `ignored`. Chatwoot calls happen here, in the consumer,
never in a request: a failure leaves the event pending, and the library's consumer retries it (reclaimed after
`MIN_IDLE_MS`, dead-lettered after `MAX_DELIVERIES`), so an outage of Chatwoot delays the mirror without losing
it. One event per transaction (`batch_size=1`), so a batch that fails as a whole never replays calls that
already reached Chatwoot.

Opening is idempotent. When Chatwoot accepted a conversation but the transaction recording it failed (a crash,
a database error, a lost answer), the event comes again: the incident's contact then exists already, and the
conversation it holds for the incident is linked instead of a second one being opened. Replicas opening the
same incident's conversation at once (its creation and a message handled by two members) take turns on a
transaction-level advisory lock, so the second finds the first one's link.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Final

import orjson
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.bus import Event, StreamConsumer, fixed_types
from rtls_cambus.chatwoot import repository
from rtls_cambus.chatwoot.client import ChatwootClient, ChatwootConfig, build_http_client
from rtls_cambus.chatwoot.models import (
    IGNORED,
    INBOUND,
    OUTBOUND,
    PROCESSED,
    QUEUED,
    ChatwootConversation,
    ChatwootMessage,
)
from rtls_cambus.chatwoot.receiver import DELIVERY_EVENT
from rtls_cambus.config import Settings
from rtls_cambus.identifiers import SCHEMA, SOURCE
from rtls_cambus.incidents import service as incidents
from rtls_cambus.incidents.service import Actor

logger = logging.getLogger(__name__)

GROUP: Final = "rtls-cambus-chatwoot"
CHATWOOT_AUTHOR: Final = "chatwoot"
MIN_IDLE_MS: Final = 30_000
MAX_DELIVERIES: Final = 20
MAX_MESSAGE_CHARS: Final = 10_000
MAX_AUTHOR_CHARS: Final = 200
_INCOMING = ("incoming", 0)
_OUTGOING = ("outgoing", 1)


HANDLED_TYPES: Final = frozenset({"rtls.incident.created", "rtls.incident.updated", DELIVERY_EVENT})
"""The only types `ChatwootSync.handle` acts on: the consumer skips the others unparsed."""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63 else None


def _text(value: Any, limit: int) -> str:
    text = value.replace("\x00", "").strip() if isinstance(value, str) else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def opening_message(incident: dict[str, Any], link: str) -> str:
    lines = [f"Incident #{incident['id']} ({incident.get('severity')}): {incident.get('title')}", link]
    if incident.get("description"):
        lines += ["", str(incident["description"])]
    return _text("\n".join(lines), MAX_MESSAGE_CHARS)


class ChatwootSync:
    def __init__(self, client: ChatwootClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    @property
    def account_id(self) -> int:
        return self.client.config.account_id

    async def handle(self, session: AsyncSession, event: Event) -> None:
        """The consumer's handler; events of other sources and types pass by."""
        if event.source != SOURCE:
            return
        if event.type == "rtls.incident.created":
            incident = event.data.get("incident")
            incident_id = _int(incident.get("id")) if isinstance(incident, dict) else None
            if incident_id is not None:
                await self.conversation_for(session, incident_id)
        elif event.type == "rtls.incident.updated" and event.data.get("change") == "message":
            await self.mirror_out(session, event.data)
        elif event.type == DELIVERY_EVENT:
            log_id = _int(event.data.get("log_id"))
            if log_id is not None:
                await self.mirror_in(session, log_id)

    async def conversation_for(self, session: AsyncSession, incident_id: int) -> int | None:
        """The incident's conversation id, opened now if it has none; None when the incident is gone."""
        known = await repository.conversation_of(session, incident_id)
        if known is not None:
            return known.conversation_id
        await repository.lock_conversation_opening(session, incident_id)
        # Read again under the lock (a miss is never cached by the session): another member may have linked it.
        known = await repository.conversation_of(session, incident_id)
        if known is not None:
            return known.conversation_id
        incident = await repository.incident(session, incident_id)
        if incident is None:
            return None
        contact = await self.client.incident_contact(incident_id)
        conversation_id = None if contact.made_now else await self.client.find_conversation(contact.id, incident_id)
        if conversation_id is not None:
            logger.info(
                "incident %s: Chatwoot conversation %s was opened by an attempt that did not commit; linked now",
                incident_id,
                conversation_id,
            )
        else:
            read = (await incidents.read_model(session, incident)).model_dump(mode="json")
            conversation_id = await self.client.open_conversation(
                contact, incident_id, opening_message(read, self.settings.incident_link(incident_id))
            )
            logger.info("incident %s opened Chatwoot conversation %s", incident_id, conversation_id)
        session.add(
            ChatwootConversation(
                incident_id=incident_id,
                account_id=self.account_id,
                inbox_id=self.client.config.inbox_id,
                conversation_id=conversation_id,
                contact_id=contact.id,
            )
        )
        await session.flush()
        return conversation_id

    async def mirror_out(self, session: AsyncSession, data: dict[str, Any]) -> None:
        message = data.get("message")
        if not isinstance(message, dict):
            return
        if message.get("author_kind") == CHATWOOT_AUTHOR:
            return  # it came from Chatwoot: sending it back would be an echo
        message_id, incident_id = _int(message.get("id")), _int(message.get("incident_id"))
        if message_id is None or incident_id is None:
            return
        if await repository.incident_message_sent(session, message_id):
            return
        if not await repository.incident_message_exists(session, message_id):
            return  # deleted with its incident meanwhile
        conversation_id = await self.conversation_for(session, incident_id)
        if conversation_id is None:
            return
        content = _text(f"{message.get('author_name')}: {message.get('body')}", MAX_MESSAGE_CHARS)
        chatwoot_id = await self.client.post_message(conversation_id, content)
        session.add(
            ChatwootMessage(
                incident_id=incident_id,
                incident_message_id=message_id,
                account_id=self.account_id,
                chatwoot_message_id=chatwoot_id,
                direction=OUTBOUND,
            )
        )
        await session.flush()

    async def mirror_in(self, session: AsyncSession, log_id: int) -> None:
        delivery = await repository.get_delivery(session, log_id, for_update=True)
        if delivery is None or delivery.status != QUEUED:
            return
        try:
            payload = orjson.loads(delivery.body)
        except orjson.JSONDecodeError:
            payload = None
        incident_id, note = await self._reply_target(session, payload)
        if note is not None:
            await repository.finish_delivery(session, log_id, status=IGNORED, note=note, incident_id=incident_id)
            return
        assert incident_id is not None and isinstance(payload, dict)
        raw_sender = payload.get("sender")
        sender: dict[str, Any] = raw_sender if isinstance(raw_sender, dict) else {}
        name = _text(sender.get("name"), MAX_AUTHOR_CHARS - 12) or "an agent"
        actor = Actor(CHATWOOT_AUTHOR, _int(sender.get("id")) or 0, f"{name} (Chatwoot)")
        posted = await incidents.post_message(
            session, incident_id, _text(payload.get("content"), MAX_MESSAGE_CHARS), actor
        )
        session.add(
            ChatwootMessage(
                incident_id=incident_id,
                incident_message_id=posted.id,
                account_id=self.account_id,
                chatwoot_message_id=int(payload["id"]),
                direction=INBOUND,
            )
        )
        await session.flush()
        await repository.finish_delivery(
            session, log_id, status=PROCESSED, note=f"incident message {posted.id}", incident_id=incident_id
        )

    async def _reply_target(self, session: AsyncSession, payload: Any) -> tuple[int | None, str | None]:
        """(the incident the message goes to, None), or (incident if known, why it is not mirrored)."""
        if not isinstance(payload, dict) or payload.get("event") not in ("message_created",):
            return None, "not a message_created event"
        account = payload.get("account")
        if isinstance(account, dict) and _int(account.get("id")) not in (None, self.account_id):
            return None, f"account {account.get('id')} is not the configured one ({self.account_id})"
        conversation = payload.get("conversation")
        conversation_id = _int(conversation.get("id")) if isinstance(conversation, dict) else None
        if conversation_id is None:
            return None, "no conversation id"
        incident_id = await repository.incident_of_conversation(session, self.account_id, conversation_id)
        if incident_id is None:
            return None, f"conversation {conversation_id} belongs to no incident"
        message_type = payload.get("message_type")
        if message_type in _INCOMING:
            return incident_id, "an incoming message: written as the incident's contact, i.e. sent from here"
        if message_type not in _OUTGOING:
            return incident_id, f"message type {message_type!r} is not mirrored"
        if payload.get("private") is True:
            return incident_id, "a private note stays in Chatwoot"
        message_id = _int(payload.get("id"))
        if message_id is None:
            return incident_id, "no message id"
        if await repository.chatwoot_message_known(session, self.account_id, message_id):
            return incident_id, f"message {message_id} is in the thread already"
        if not _text(payload.get("content"), MAX_MESSAGE_CHARS):
            return incident_id, "no text (attachments are not mirrored)"
        if await repository.incident(session, incident_id) is None:
            return None, f"incident {incident_id} no longer exists"
        return incident_id, None


def chatwoot_consumer(
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    sync: ChatwootSync,
    streams: list[str],
    *,
    group: str = GROUP,
    consumer_name: str | None = None,
    block_ms: int = 2_000,
    min_idle_ms: int = MIN_IDLE_MS,
) -> StreamConsumer:
    return StreamConsumer(
        redis,
        sessionmaker,
        streams,
        group,
        consumer_name or f"{GROUP}-{socket.gethostname()}",
        sync.handle,
        SCHEMA,
        batch_size=1,
        block_ms=block_ms,
        min_idle_ms=min_idle_ms,
        max_deliveries=MAX_DELIVERIES,
        wanted_types=fixed_types(HANDLED_TYPES),
    )


async def chatwoot_worker(app: FastAPI) -> None:
    """Run the sync for the app's lifetime, when Chatwoot is enabled."""
    settings: Settings = app.state.settings
    if not (settings.chatwoot_enabled and settings.chatwoot_sync_enabled):
        return
    async with build_http_client() as http:
        sync = ChatwootSync(ChatwootClient(http, ChatwootConfig.from_settings(settings)), settings)
        consumer = chatwoot_consumer(app.state.redis, app.state.sessionmaker, sync, [app.state.spec.stream])
        try:
            await consumer.run()
        finally:
            consumer.stop()

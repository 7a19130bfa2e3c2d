"""Chatwoot's application API, the calls the sync makes: make (or find) the contact an incident speaks as, find
the conversation an earlier attempt opened for it, open one with its first message in the configured inbox, post
a message to a conversation.

Base `{url}/api/v1/accounts/{account_id}`, header `api_access_token` (a user's token: Chatwoot refuses agent-bot
tokens on its contact endpoints). Messages are posted as `incoming` (said by the contact, i.e. by the incident),
which Chatwoot allows in API-channel inboxes only: agents answer them as they answer any customer, and their
replies (`outgoing`) are what comes back through the webhook. Any failure raises `ChatwootError`; the sync's
consumer leaves the event pending and tries again later.

Each incident is a contact of its own, identifier `incident-<id>@<RTLS_CAMBUS_CHATWOOT_CONTACT_IDENTIFIER>`, so
the conversation an attempt opened before its transaction failed is found again among that contact's
conversations. One contact for every incident would not do: Chatwoot lists a contact's conversations without
pages (its 20 newest in current releases, all of them in older ones), so over the years the answer would either
miss the conversation or grow without bound. The identifier's `-` and `@` around the number also keep the
search (which matches any part of an identifier) from finding another incident's contact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import httpx

from rtls_cambus.config import Settings

USER_AGENT: Final = "mirante-rtls-cambus/1"
_EXCERPT_CHARS: Final = 300


class ChatwootError(Exception):
    """A call to Chatwoot failed or answered something unusable."""


@dataclass(frozen=True)
class IncidentContact:
    """The contact an incident speaks as, and the `source_id` of its contact inbox in the configured inbox."""

    id: int
    source_id: str
    made_now: bool
    """Made by this call: it cannot have a conversation yet, so none is looked for."""


@dataclass(frozen=True)
class ChatwootConfig:
    url: str
    api_token: str
    account_id: int
    inbox_id: int
    contact_identifier: str
    contact_name: str
    timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ChatwootConfig:
        if (
            settings.chatwoot_url is None
            or settings.chatwoot_api_token is None
            or settings.chatwoot_account_id is None
            or settings.chatwoot_inbox_id is None
        ):
            raise ValueError("Chatwoot needs RTLS_CAMBUS_CHATWOOT_URL, _API_TOKEN, _ACCOUNT_ID and _INBOX_ID")
        return cls(
            url=settings.chatwoot_url.rstrip("/"),
            api_token=settings.chatwoot_api_token.get_secret_value(),
            account_id=settings.chatwoot_account_id,
            inbox_id=settings.chatwoot_inbox_id,
            contact_identifier=settings.chatwoot_contact_identifier,
            contact_name=settings.chatwoot_contact_name,
            timeout_seconds=settings.chatwoot_timeout_seconds,
        )


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63 else None


def _source_id(contact_inboxes: Any, inbox_id: int) -> str | None:
    """The `source_id` of the contact inbox (as Chatwoot lists them on a contact) that is in `inbox_id`."""
    for contact_inbox in contact_inboxes if isinstance(contact_inboxes, list) else []:
        if not isinstance(contact_inbox, dict):
            continue
        inbox, source_id = contact_inbox.get("inbox"), contact_inbox.get("source_id")
        in_inbox = isinstance(inbox, dict) and _positive_int(inbox.get("id")) == inbox_id
        if in_inbox and isinstance(source_id, str) and source_id:
            return source_id
    return None


class ChatwootClient:
    def __init__(self, http: httpx.AsyncClient, config: ChatwootConfig) -> None:
        self.http = http
        self.config = config

    @property
    def base(self) -> str:
        return f"{self.config.url}/api/v1/accounts/{self.config.account_id}"

    def contact_identifier(self, incident_id: int) -> str:
        return f"incident-{incident_id}@{self.config.contact_identifier}"

    async def incident_contact(self, incident_id: int) -> IncidentContact:
        """The incident's contact with its contact inbox in the configured inbox: made, with the inbox, in one
        call; when the identifier is taken (an earlier attempt made it), found by it and given a contact inbox
        in the inbox if it has none (a contact made by hand in Chatwoot)."""
        identifier = self.contact_identifier(incident_id)
        try:
            return await self._create_contact(incident_id, identifier)
        except ChatwootError:
            found = await self._find_contact(identifier)
            if found is None:
                raise
        contact_id, contact_inboxes = found
        source_id = _source_id(contact_inboxes, self.config.inbox_id) or await self._create_contact_inbox(contact_id)
        return IncidentContact(contact_id, source_id, made_now=False)

    async def find_conversation(self, contact_id: int, incident_id: int) -> int | None:
        """The (display) id of the contact's conversation in the inbox that carries the incident, if there is
        one (the oldest, should there be more). An incident's contact has that one conversation and no other,
        so Chatwoot's unpaged list (at most 20 in current releases) holds it."""
        answer = await self._request("GET", f"/contacts/{contact_id}/conversations")
        conversations = answer.get("payload") if isinstance(answer, dict) else None
        found = [
            conversation_id
            for conversation in (conversations if isinstance(conversations, list) else [])
            if isinstance(conversation, dict)
            and _positive_int(conversation.get("inbox_id")) == self.config.inbox_id
            and isinstance(attributes := conversation.get("custom_attributes"), dict)
            and attributes.get("mirante_incident_id") == incident_id
            and (conversation_id := _positive_int(conversation.get("id"))) is not None
        ]
        return min(found, default=None)

    async def open_conversation(self, contact: IncidentContact, incident_id: int, first_message: str) -> int:
        """A new open conversation of the contact in the inbox, holding `first_message`; its (display) id.

        The message goes with the conversation in one call, so Chatwoot never keeps a conversation without it."""
        answer = await self._request(
            "POST",
            "/conversations",
            json={
                "source_id": contact.source_id,
                "inbox_id": self.config.inbox_id,
                "contact_id": contact.id,
                "status": "open",
                "custom_attributes": {"mirante_incident_id": incident_id},
                "additional_attributes": {"mirante_incident_id": incident_id},
                "message": {"content": first_message, "message_type": "incoming"},
            },
        )
        conversation_id = _positive_int(answer.get("id")) if isinstance(answer, dict) else None
        if conversation_id is None:
            raise ChatwootError("Chatwoot answered the new conversation without an id")
        return conversation_id

    async def post_message(self, conversation_id: int, content: str) -> int:
        """Post `content` to the conversation as said by the contact; the message's id."""
        answer = await self._request(
            "POST",
            f"/conversations/{conversation_id}/messages",
            json={"content": content, "message_type": "incoming", "private": False, "content_type": "text"},
        )
        message_id = _positive_int(answer.get("id")) if isinstance(answer, dict) else None
        if message_id is None:
            raise ChatwootError(f"Chatwoot answered the message to conversation {conversation_id} without an id")
        return message_id

    async def _find_contact(self, identifier: str) -> tuple[int, Any] | None:
        """(id, contact inboxes) of the contact with exactly this identifier, if the search finds it."""
        answer = await self._request("GET", "/contacts/search", params={"q": identifier})
        contacts = answer.get("payload") if isinstance(answer, dict) else None
        for contact in contacts if isinstance(contacts, list) else []:
            if isinstance(contact, dict) and contact.get("identifier") == identifier:
                contact_id = _positive_int(contact.get("id"))
                if contact_id is not None:
                    return contact_id, contact.get("contact_inboxes")
        return None

    async def _create_contact(self, incident_id: int, identifier: str) -> IncidentContact:
        answer = await self._request(
            "POST",
            "/contacts",
            json={
                "inbox_id": self.config.inbox_id,
                "name": f"Incident #{incident_id} ({self.config.contact_name})",
                "identifier": identifier,
                "custom_attributes": {"mirante_incident_id": incident_id},
            },
        )
        payload = answer.get("payload") if isinstance(answer, dict) else None
        contact = payload.get("contact") if isinstance(payload, dict) else None
        contact_id = _positive_int(contact.get("id")) if isinstance(contact, dict) else None
        if contact_id is None or not isinstance(contact, dict):
            raise ChatwootError("Chatwoot answered the new contact without an id")
        made = payload.get("contact_inbox") if isinstance(payload, dict) else None
        source_id = _source_id([made], self.config.inbox_id) or _source_id(
            contact.get("contact_inboxes"), self.config.inbox_id
        )
        if source_id is None:
            source_id = await self._create_contact_inbox(contact_id)
        return IncidentContact(contact_id, source_id, made_now=True)

    async def _create_contact_inbox(self, contact_id: int) -> str:
        """Link the contact to the configured inbox; the new contact inbox's `source_id` (Chatwoot makes one)."""
        answer = await self._request(
            "POST", f"/contacts/{contact_id}/contact_inboxes", json={"inbox_id": self.config.inbox_id}
        )
        source_id = answer.get("source_id") if isinstance(answer, dict) else None
        if not isinstance(source_id, str) or not source_id:
            raise ChatwootError(f"Chatwoot answered the contact inbox of contact {contact_id} without a source_id")
        return source_id

    async def _request(
        self, method: str, path: str, *, json: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> Any:
        try:
            response = await self.http.request(
                method,
                self.base + path,
                json=json,
                params=params,
                headers={"api_access_token": self.config.api_token, "User-Agent": USER_AGENT},
                timeout=self.config.timeout_seconds,
            )
        except httpx.HTTPError as error:
            raise ChatwootError(f"{method} {path}: {type(error).__name__}: {error}") from None
        if not response.is_success:
            excerpt = response.text[:_EXCERPT_CHARS].replace("\n", " ")
            raise ChatwootError(f"{method} {path}: Chatwoot answered {response.status_code}: {excerpt}")
        try:
            return response.json()
        except ValueError:
            raise ChatwootError(f"{method} {path}: Chatwoot answered something that is not JSON") from None


def build_http_client() -> httpx.AsyncClient:
    # The URL is the operator's own setting, not a user's, so no target policy applies; redirects are not followed
    # so the token never travels to another host.
    return httpx.AsyncClient(follow_redirects=False, trust_env=True)

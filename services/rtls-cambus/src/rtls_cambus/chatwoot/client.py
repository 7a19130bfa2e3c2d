"""Chatwoot's application API, the calls the sync makes: find or make the contact incidents speak as, open a
conversation with its first message in the configured inbox, post a message to a conversation.

Base `{url}/api/v1/accounts/{account_id}`, header `api_access_token`. Messages are posted as `incoming` (said by
the contact, i.e. by this service), which Chatwoot allows in API-channel inboxes only: agents answer them as
they answer any customer, and their replies (`outgoing`) are what comes back through the webhook. Any failure
raises `ChatwootError`; the sync's consumer leaves the event pending and tries again later.
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


class ChatwootClient:
    def __init__(self, http: httpx.AsyncClient, config: ChatwootConfig) -> None:
        self.http = http
        self.config = config
        self._contact_id: int | None = None

    @property
    def base(self) -> str:
        return f"{self.config.url}/api/v1/accounts/{self.config.account_id}"

    async def contact_id(self) -> int:
        """The contact incidents speak as: found by its identifier, else made (once per process)."""
        if self._contact_id is None:
            found = await self._find_contact()
            if found is None:
                try:
                    found = await self._create_contact()
                except ChatwootError:
                    # Another replica may have made it meanwhile (the identifier is unique in an account).
                    found = await self._find_contact()
                    if found is None:
                        raise
            self._contact_id = found
        return self._contact_id

    async def open_conversation(self, contact_id: int, incident_id: int, first_message: str) -> int:
        """A new open conversation of the contact in the inbox, holding `first_message`; its (display) id.

        The message goes with the conversation in one call, so Chatwoot never keeps a conversation without it.
        A failure forgets the contact, so the next try looks it up again (it may have been deleted in Chatwoot)."""
        try:
            return await self._open_conversation(contact_id, incident_id, first_message)
        except ChatwootError:
            self._contact_id = None
            raise

    async def _open_conversation(self, contact_id: int, incident_id: int, first_message: str) -> int:
        answer = await self._request(
            "POST",
            "/conversations",
            json={
                "inbox_id": self.config.inbox_id,
                "contact_id": contact_id,
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

    async def _find_contact(self) -> int | None:
        answer = await self._request("GET", "/contacts/search", params={"q": self.config.contact_identifier})
        contacts = answer.get("payload") if isinstance(answer, dict) else None
        for contact in contacts if isinstance(contacts, list) else []:
            if isinstance(contact, dict) and contact.get("identifier") == self.config.contact_identifier:
                return _positive_int(contact.get("id"))
        return None

    async def _create_contact(self) -> int:
        answer = await self._request(
            "POST",
            "/contacts",
            json={
                "inbox_id": self.config.inbox_id,
                "name": self.config.contact_name,
                "identifier": self.config.contact_identifier,
            },
        )
        payload = answer.get("payload") if isinstance(answer, dict) else None
        contact = payload.get("contact") if isinstance(payload, dict) else None
        contact_id = _positive_int(contact.get("id")) if isinstance(contact, dict) else None
        if contact_id is None:
            raise ChatwootError("Chatwoot answered the new contact without an id")
        return contact_id

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

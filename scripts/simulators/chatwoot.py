"""A small Chatwoot: the application API calls rtls-cambus makes, and the signed webhooks Chatwoot sends.

It serves, under `/api/v1/accounts/{account_id}` with the header `api_access_token`:
`GET /contacts/search?q=`, `POST /contacts`, `POST /contacts/{id}/contact_inboxes`,
`GET /contacts/{id}/conversations`, `POST /conversations` (with an optional first `message`),
`POST /conversations/{id}/messages` and `GET /conversations/{id}/messages`, in Chatwoot's documented shapes
(`{"payload": ...}` for contacts and lists, the conversation, message or contact inbox object itself for the
others; conversation ids are the display ids its API and webhooks use). Incoming messages are allowed, as in an
API-channel inbox.

As Chatwoot: a contact reaches an inbox through a contact inbox and its `source_id` (made with the contact when
`POST /contacts` names the inbox, or later with `POST /contacts/{id}/contact_inboxes`), and `POST /conversations`
requires that `source_id`; the search matches any part of the identifier (case-sensitive), name or e-mail and
answers one page of 15; a contact's conversations are its 20 newest, newest first, with no further pages.

Like Chatwoot, every message created (by the API or by an agent) is followed by a `message_created` webhook to
`webhook_url`, after the answer: signed with `X-Chatwoot-Signature: sha256=<hex HMAC(secret, "{ts}." + body)>`,
`X-Chatwoot-Timestamp` and `X-Chatwoot-Delivery` when a secret is set (as Chatwoot since 2026), unsigned
otherwise (as older servers; a `?token=` may be part of the URL). An agent replies with `agent_reply`; a
delivery is sent again, same delivery id and a fresh signature, with `resend`.

Tests use `ChatwootSimulator` as a context manager (a real HTTP server on 127.0.0.1 in a background thread). It
also runs on its own, for trying rtls-cambus without a Chatwoot:

    .venv/bin/python scripts/simulators/chatwoot.py serve --port 3000 --secret chatwoot-secret \\
        --webhook-url http://127.0.0.1:8004/api/v1/integrations/chatwoot/webhook
    .venv/bin/python scripts/simulators/chatwoot.py reply 1 "On my way" --port 3000

with rtls-cambus started with `RTLS_CAMBUS_CHATWOOT_ENABLED=true RTLS_CAMBUS_CHATWOOT_URL=http://127.0.0.1:3000
RTLS_CAMBUS_CHATWOOT_API_TOKEN=simulator-token RTLS_CAMBUS_CHATWOOT_ACCOUNT_ID=1 RTLS_CAMBUS_CHATWOOT_INBOX_ID=1
RTLS_CAMBUS_CHATWOOT_WEBHOOK_SECRET=chatwoot-secret`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mirante.testing.threaded_server import ThreadedServer

DEFAULT_TOKEN = "simulator-token"
SEARCH_PAGE_SIZE = 15
CONTACT_CONVERSATIONS_LIMIT = 20
AGENT = {"id": 7, "name": "Bruno Lima", "email": "bruno@example.com", "type": "user"}


@dataclass
class SentWebhook:
    """A webhook the simulator sent: the delivery id, the exact body, and the answer's status (None: no answer)."""

    delivery_id: str
    body: bytes
    status: int | None


@dataclass
class _State:
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    contact_inboxes: dict[str, dict[str, int]] = field(default_factory=dict)
    """source_id -> {"contact_id", "inbox_id"}."""
    conversations: dict[int, dict[str, Any]] = field(default_factory=dict)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Chatwoot's signature (lib/webhooks/trigger.rb), written out here rather than taken from the code under test."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class ChatwootSimulator:
    def __init__(
        self,
        *,
        account_id: int = 1,
        inbox_id: int = 1,
        api_token: str = DEFAULT_TOKEN,
        webhook_url: str | None = None,
        secret: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.account_id = account_id
        self.inbox_id = inbox_id
        self.api_token = api_token
        self.webhook_url = webhook_url
        self.secret = secret
        self.fail_next = 0
        """The next this many API calls are answered 503 (Chatwoot down)."""
        self.requests: list[tuple[str, str]] = []
        self.webhooks: list[SentWebhook] = []
        self._state = _State()
        self._lock = threading.Lock()
        self.app = self._build_app()
        self._http = ThreadedServer(self.app, host, port, name="Chatwoot simulator")

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._http.host

    @property
    def port(self) -> int:
        """The port asked for, or once started the one bound (a free one for 0)."""
        return self._http.port

    @property
    def url(self) -> str:
        """Base URL of the running server (no trailing slash)."""
        return self._http.url

    def start(self) -> ChatwootSimulator:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> ChatwootSimulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        sock = self._http.bind()
        print(f"Chatwoot simulator on {self.url} (account {self.account_id}, inbox {self.inbox_id})", flush=True)
        self._http.serve_forever(sock, log_requests=True)

    # -- what tests read -------------------------------------------------------------------------------------

    def conversations(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(json.dumps(conversation)) for conversation in self._state.conversations.values()]

    def messages(self, conversation_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(message)
                for message in self._state.messages.values()
                if message["conversation_id"] == conversation_id
            ]

    def contacts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._contact_view(contact) for contact in self._state.contacts.values()]

    # -- what tests do ---------------------------------------------------------------------------------------

    def add_contact(self, identifier: str, name: str) -> dict[str, Any]:
        """A contact made by hand in Chatwoot, in no inbox yet."""
        with self._lock:
            contact_id = self._state.new_id()
            self._state.contacts[contact_id] = {
                "id": contact_id,
                "name": name,
                "email": None,
                "phone_number": None,
                "identifier": identifier,
                "custom_attributes": {},
            }
            return self._contact_view(self._state.contacts[contact_id])

    async def agent_reply(
        self, conversation_id: int, content: str, *, private: bool = False, agent: dict[str, Any] | None = None
    ) -> SentWebhook | None:
        """An agent answers in the conversation (`outgoing`); the webhook is sent before this returns."""
        with self._lock:
            message = self._add_message(conversation_id, content, "outgoing", private, agent or AGENT)
        return await self._send_webhook(message)

    async def resend(self, webhook: SentWebhook) -> SentWebhook:
        """Send a delivery again as Chatwoot retries it: same delivery id and body, fresh timestamp and signature."""
        return await self._post(webhook.body, webhook.delivery_id)

    # -- the API ---------------------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        base = "/api/v1/accounts/{account_id:int}"
        return Starlette(
            routes=[
                Route(f"{base}/contacts/search", self._search_contacts, methods=["GET"]),
                Route(f"{base}/contacts", self._create_contact, methods=["POST"]),
                Route(
                    f"{base}/contacts/{{contact_id:int}}/contact_inboxes", self._create_contact_inbox, methods=["POST"]
                ),
                Route(
                    f"{base}/contacts/{{contact_id:int}}/conversations", self._contact_conversations, methods=["GET"]
                ),
                Route(f"{base}/conversations", self._create_conversation, methods=["POST"]),
                Route(
                    f"{base}/conversations/{{conversation_id:int}}/messages",
                    self._messages,
                    methods=["GET", "POST"],
                ),
                Route("/_simulator/reply", self._simulator_reply, methods=["POST"]),
            ]
        )

    def _refusal(self, request: Request) -> Response | None:
        with self._lock:
            self.requests.append((request.method, request.url.path))
            if self.fail_next > 0:
                self.fail_next -= 1
                return JSONResponse({"error": "service unavailable"}, status_code=503)
        if not hmac.compare_digest(request.headers.get("api_access_token", ""), self.api_token):
            return JSONResponse({"errors": ["Invalid Access Token"]}, status_code=401)
        if request.path_params.get("account_id") != self.account_id:
            return JSONResponse({"error": "Account not found"}, status_code=404)
        return None

    async def _search_contacts(self, request: Request) -> Response:
        if (refused := self._refusal(request)) is not None:
            return refused
        query = request.query_params.get("q", "").strip()
        if not query:
            return JSONResponse({"error": "Specify search string with parameter q"}, status_code=422)
        page = int(request.query_params.get("page") or 1)
        with self._lock:
            found = [
                self._contact_view(contact)
                for contact in self._state.contacts.values()
                if query in (contact["identifier"] or "")
                or query.lower() in (contact["name"] or "").lower()
                or query.lower() in (contact["email"] or "").lower()
            ]
        start = (page - 1) * SEARCH_PAGE_SIZE
        shown = found[start : start + SEARCH_PAGE_SIZE]
        has_more = len(found) > start + SEARCH_PAGE_SIZE
        meta = {"count": len(shown), "current_page": page, "has_more": has_more}
        return JSONResponse({"meta": meta, "payload": shown})

    async def _create_contact(self, request: Request) -> Response:
        if (refused := self._refusal(request)) is not None:
            return refused
        body = await request.json()
        inbox_id = body.get("inbox_id")
        if inbox_id is not None and inbox_id != self.inbox_id:
            return JSONResponse({"message": "Inbox not found"}, status_code=404)
        with self._lock:
            identifier = body.get("identifier")
            if identifier and any(c["identifier"] == identifier for c in self._state.contacts.values()):
                return JSONResponse({"message": "Identifier has already been taken"}, status_code=422)
            contact_id = self._state.new_id()
            self._state.contacts[contact_id] = {
                "id": contact_id,
                "name": body.get("name"),
                "email": body.get("email"),
                "phone_number": body.get("phone_number"),
                "identifier": identifier,
                "custom_attributes": body.get("custom_attributes") or {},
            }
            contact_inbox = None if inbox_id is None else self._add_contact_inbox(contact_id, None)
            contact = self._contact_view(self._state.contacts[contact_id])
        return JSONResponse(
            {
                "payload": {
                    "contact": contact,
                    "contact_inbox": contact_inbox or {"inbox": None, "source_id": None},
                }
            }
        )

    async def _create_contact_inbox(self, request: Request) -> Response:
        if (refused := self._refusal(request)) is not None:
            return refused
        body = await request.json()
        with self._lock:
            if request.path_params["contact_id"] not in self._state.contacts:
                return JSONResponse({"error": "Resource could not be found"}, status_code=404)
            if body.get("inbox_id") != self.inbox_id:
                return JSONResponse({"error": "Resource could not be found"}, status_code=404)
            source_id = body.get("source_id")
            if source_id is not None and str(source_id) in self._state.contact_inboxes:
                return JSONResponse({"message": "Source has already been taken"}, status_code=422)
            made = self._add_contact_inbox(request.path_params["contact_id"], source_id)
        return JSONResponse(made)

    async def _contact_conversations(self, request: Request) -> Response:
        if (refused := self._refusal(request)) is not None:
            return refused
        contact_id = request.path_params["contact_id"]
        with self._lock:
            if contact_id not in self._state.contacts:
                return JSONResponse({"error": "Resource could not be found"}, status_code=404)
            theirs = [c for c in self._state.conversations.values() if c["contact_id"] == contact_id]
            newest = sorted(theirs, key=lambda c: c["id"], reverse=True)[:CONTACT_CONVERSATIONS_LIMIT]
            payload = [json.loads(json.dumps(conversation)) for conversation in newest]
        return JSONResponse({"payload": payload})

    async def _create_conversation(self, request: Request) -> Response:
        if (refused := self._refusal(request)) is not None:
            return refused
        body = await request.json()
        source_id = body.get("source_id")
        if not isinstance(source_id, str) or not source_id:
            return JSONResponse({"error": "source_id is required"}, status_code=422)
        with self._lock:
            contact_inbox = self._state.contact_inboxes.get(source_id)
            if contact_inbox is None:
                return JSONResponse({"error": "Resource could not be found"}, status_code=404)
            contact = self._state.contacts.get(body.get("contact_id", contact_inbox["contact_id"]))
            if body.get("inbox_id", contact_inbox["inbox_id"]) != self.inbox_id or contact is None:
                return JSONResponse({"message": "contact or inbox not found"}, status_code=404)
            if (contact["id"], self.inbox_id) != (contact_inbox["contact_id"], contact_inbox["inbox_id"]):
                return JSONResponse({"error": "source_id belongs to another contact or inbox"}, status_code=422)
            conversation_id = self._state.new_id()
            conversation = {
                "id": conversation_id,
                "account_id": self.account_id,
                "inbox_id": self.inbox_id,
                "status": body.get("status") or "open",
                "custom_attributes": body.get("custom_attributes") or {},
                "additional_attributes": body.get("additional_attributes") or {},
                "contact_id": contact["id"],
                "contact_inbox": {"source_id": source_id},
                "meta": {"sender": {"id": contact["id"], "name": contact["name"], "type": "contact"}},
            }
            self._state.conversations[conversation_id] = conversation
            first = body.get("message")
            message = None
            if isinstance(first, dict) and first.get("content"):
                message = self._add_message(
                    conversation_id, first["content"], first.get("message_type") or "outgoing", False, AGENT
                )
            answer = dict(conversation, messages=[message] if message else [])
        task = BackgroundTask(self._send_webhook, message) if message else None
        return JSONResponse(answer, background=task)

    async def _messages(self, request: Request) -> Response:
        if (refused := self._refusal(request)) is not None:
            return refused
        conversation_id = request.path_params["conversation_id"]
        if conversation_id not in self._state.conversations:
            return JSONResponse({"error": "Resource could not be found"}, status_code=404)
        if request.method == "GET":
            return JSONResponse({"payload": self.messages(conversation_id)})
        body = await request.json()
        if not body.get("content"):
            return JSONResponse({"error": "content is required"}, status_code=422)
        with self._lock:
            kind = body.get("message_type") or "outgoing"
            message = self._add_message(conversation_id, body["content"], kind, bool(body.get("private")), AGENT)
        return JSONResponse(message, background=BackgroundTask(self._send_webhook, message))

    async def _simulator_reply(self, request: Request) -> Response:
        body = await request.json()
        sent = await self.agent_reply(int(body["conversation_id"]), str(body["content"]))
        if sent is None:
            return JSONResponse({"delivery_id": None, "status": None})
        return JSONResponse({"delivery_id": sent.delivery_id, "status": sent.status})

    def _add_contact_inbox(self, contact_id: int, source_id: str | None) -> dict[str, Any]:
        """Link the contact to the inbox (the lock held); the contact inbox as Chatwoot answers it."""
        made = str(source_id) if source_id is not None else str(uuid.uuid4())
        self._state.contact_inboxes[made] = {"contact_id": contact_id, "inbox_id": self.inbox_id}
        return {"source_id": made, "inbox": {"id": self.inbox_id, "name": "Mirante"}}

    def _contact_view(self, contact: dict[str, Any]) -> dict[str, Any]:
        """The contact as Chatwoot's contact endpoints answer it, with its contact inboxes (the lock held)."""
        inboxes = [
            {"source_id": source_id, "inbox": {"id": link["inbox_id"], "name": "Mirante"}}
            for source_id, link in self._state.contact_inboxes.items()
            if link["contact_id"] == contact["id"]
        ]
        return json.loads(json.dumps(dict(contact, contact_inboxes=inboxes)))  # type: ignore[no-any-return]

    def _add_message(
        self, conversation_id: int, content: str, message_type: str, private: bool, agent: dict[str, Any]
    ) -> dict[str, Any]:
        """Store a message (the lock held); incoming ones are the contact's, outgoing ones the agent's."""
        conversation = self._state.conversations[conversation_id]
        if message_type == "incoming":
            contact = self._state.contacts[conversation["contact_id"]]
            sender = {"id": contact["id"], "name": contact["name"], "type": "contact"}
        else:
            sender = dict(agent)
        message = {
            "id": self._state.new_id(),
            "content": content,
            "message_type": message_type,
            "content_type": "text",
            "content_attributes": {},
            "private": private,
            "source_id": None,
            "created_at": datetime.now(UTC).isoformat(),
            "conversation_id": conversation_id,
            "sender": sender,
        }
        self._state.messages[message["id"]] = message
        return message

    # -- webhooks --------------------------------------------------------------------------------------------

    async def _send_webhook(self, message: dict[str, Any]) -> SentWebhook | None:
        if self.webhook_url is None:
            return None
        with self._lock:
            conversation = self._state.conversations[message["conversation_id"]]
            payload = {
                "event": "message_created",
                **{key: value for key, value in message.items() if key != "conversation_id"},
                "conversation": {
                    "id": conversation["id"],
                    "inbox_id": conversation["inbox_id"],
                    "status": conversation["status"],
                    "custom_attributes": conversation["custom_attributes"],
                    "additional_attributes": conversation["additional_attributes"],
                },
                "account": {"id": self.account_id, "name": "Mirante"},
                "inbox": {"id": self.inbox_id, "name": "Mirante"},
            }
        return await self._post(json.dumps(payload).encode(), str(uuid.uuid4()))

    async def _post(self, body: bytes, delivery_id: str) -> SentWebhook:
        assert self.webhook_url is not None
        headers = {"Content-Type": "application/json", "User-Agent": "rest-client/2.1.0"}
        if self.secret is not None:
            timestamp = str(int(time.time()))
            headers.update(
                {
                    "X-Chatwoot-Signature": sign(self.secret, timestamp, body),
                    "X-Chatwoot-Timestamp": timestamp,
                    "X-Chatwoot-Delivery": delivery_id,
                }
            )
        status: int | None
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                status = (await client.post(self.webhook_url, content=body, headers=headers)).status_code
        except httpx.HTTPError:
            status = None  # Chatwoot logs the failure; many servers never retry
        sent = SentWebhook(delivery_id, body, status)
        with self._lock:
            self.webhooks.append(sent)
        return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the simulator in the foreground")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--account-id", type=int, default=1)
    serve.add_argument("--inbox-id", type=int, default=1)
    serve.add_argument("--api-token", default=DEFAULT_TOKEN)
    serve.add_argument("--webhook-url", help="where message_created webhooks go")
    serve.add_argument("--secret", help="sign webhooks with this secret (unsigned without it)")
    reply = commands.add_parser("reply", help="an agent answers in a conversation of the running simulator")
    reply.add_argument("conversation_id", type=int)
    reply.add_argument("content")
    reply.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)
    if args.command == "serve":
        ChatwootSimulator(
            account_id=args.account_id,
            inbox_id=args.inbox_id,
            api_token=args.api_token,
            webhook_url=args.webhook_url,
            secret=args.secret,
            port=args.port,
        ).serve_forever()
        return 0
    answer = httpx.post(
        f"http://127.0.0.1:{args.port}/_simulator/reply",
        json={"conversation_id": args.conversation_id, "content": args.content},
        timeout=10,
    )
    print(answer.text)
    return 0 if answer.is_success else 1


if __name__ == "__main__":
    sys.exit(main())

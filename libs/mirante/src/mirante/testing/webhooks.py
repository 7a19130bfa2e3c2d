"""A receiver of outgoing webhooks for tests: a small HTTP/1.1 server on 127.0.0.1.

It answers each POST with the next scripted status (the last one repeats), optionally after the test releases
it (`hold`), and, given the subscription's secret, first checks the Standard Webhooks signature as a receiver
must: `webhook-id`, a `webhook-timestamp` within the tolerance, and a `v1,` signature of
`"{id}.{timestamp}." + body` with the key of the `whsec_` secret. A request that fails the check is answered 401.
The check is written out from the specification here rather than taken from `mirante.webhooks`, so that a
mistake there cannot hide in both the sender and the receiver.

The fixture `start_webhook_receiver` (registered by the `mirante` pytest plugin) starts one:
`receiver = await start_webhook_receiver(statuses=[503, 200], secret=secret)`; `port=` starts it on a port
chosen beforehand (`mirante.testing.network.free_port()`: until then, connecting there is refused). Every
receiver is closed after the test.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pytest_asyncio

from mirante.testing.streams import DEFAULT_TIMEOUT_SECONDS, wait_until

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300
UNAUTHORIZED = 401


@dataclass
class ReceivedWebhook:
    """One request as it arrived (header names in lower case) and what it was answered (None: not yet, or the
    sender went away first)."""

    headers: dict[str, str]
    body: bytes
    verified: bool | None
    """Whether the signature held; None when the receiver has no secret to check it with."""
    status: int | None = None
    finished: bool = False
    """The receiver is through with it: answered, or given up because the sender went away."""

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")


@dataclass
class WebhookReceiver:
    """The server (`await receiver.start()`, `await receiver.close()`); `received` is every request, in order."""

    statuses: Sequence[int] = (200,)
    secret: str | None = None
    """The subscription's `whsec_` secret; when set, every request's signature is checked."""
    extra_headers: dict[str, str] = field(default_factory=dict)
    hold: asyncio.Event | None = None
    """When given, each request waits for it before it is answered."""
    delay: float = 0.0
    """Seconds each request takes to answer (after `hold`), as a slow receiver would."""
    port: int = 0
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS
    received: list[ReceivedWebhook] = field(default_factory=list, init=False)
    arrived: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _server: asyncio.Server | None = field(default=None, init=False)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, init=False)
    _accepted: int = field(default=0, init=False)
    in_flight: int = field(default=0, init=False)
    most_in_flight: int = field(default=0, init=False)
    """The most requests the receiver held unanswered at once."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._server = None

    def delivered_ids(self) -> list[str | None]:
        """The `webhook-id` of each request answered with a 2xx, in order (an id twice: delivered twice)."""
        return [item.webhook_id for item in self.received if item.status is not None and 200 <= item.status < 300]

    async def wait_for_requests(self, count: int, *, within: float = DEFAULT_TIMEOUT_SECONDS) -> list[ReceivedWebhook]:
        """Wait until at least `count` requests arrived; all of them so far."""
        await wait_until(lambda: len(self.received) >= count, within=within, what=f"{count} webhook requests")
        return list(self.received)

    def signature_holds(self, headers: dict[str, str], body: bytes) -> bool:
        if self.secret is None:
            raise ValueError("the receiver has no secret to check signatures with")
        msg_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature", "")
        if not (msg_id and timestamp.isdigit() and signatures):
            return False
        if abs(time.time() - int(timestamp)) > self.tolerance_seconds:
            return False
        try:
            key = base64.b64decode(self.secret.removeprefix(SECRET_PREFIX), validate=True)
        except binascii.Error:
            return False
        digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        expected = base64.b64encode(digest).decode()
        return any(
            version == "v1" and hmac.compare_digest(signature, expected)
            for version, _, signature in (entry.partition(",") for entry in signatures.split())
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        item: ReceivedWebhook | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")[1:]
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            verified = None if self.secret is None else self.signature_holds(headers, body)
            item = ReceivedWebhook(headers, body, verified)
            self.received.append(item)
            self.arrived.set()
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                if self.hold is not None:
                    await self.hold.wait()
                    if reader.at_eof():
                        return
                await asyncio.sleep(self.delay)
            finally:
                self.in_flight -= 1
            if verified is False:
                code = UNAUTHORIZED
            else:
                code = self.statuses[min(self._accepted, len(self.statuses) - 1)]
                self._accepted += 1
            extra = "".join(f"{name}: {value}\r\n" for name, value in self.extra_headers.items())
            writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: 2\r\n{extra}Connection: close\r\n\r\nok".encode())
            await writer.drain()
            item.status = code
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            if item is not None:
                item.finished = True


class WebhookReceiverStarter(Protocol):
    async def __call__(
        self,
        *,
        statuses: Sequence[int] = (200,),
        secret: str | None = None,
        extra_headers: dict[str, str] | None = None,
        hold: asyncio.Event | None = None,
        delay: float = 0.0,
        port: int = 0,
    ) -> WebhookReceiver: ...


@pytest_asyncio.fixture(loop_scope="session")
async def start_webhook_receiver() -> AsyncIterator[WebhookReceiverStarter]:
    """`await start_webhook_receiver(statuses=..., secret=..., hold=..., delay=..., port=...)`: a started
    `WebhookReceiver`, closed after the test."""
    started: list[WebhookReceiver] = []

    async def start(
        *,
        statuses: Sequence[int] = (200,),
        secret: str | None = None,
        extra_headers: dict[str, str] | None = None,
        hold: asyncio.Event | None = None,
        delay: float = 0.0,
        port: int = 0,
    ) -> WebhookReceiver:
        receiver = WebhookReceiver(
            statuses=list(statuses),
            secret=secret,
            extra_headers=dict(extra_headers or {}),
            hold=hold,
            delay=delay,
            port=port,
        )
        started.append(receiver)
        return await receiver.start()

    try:
        yield start
    finally:
        for receiver in started:
            await receiver.close()

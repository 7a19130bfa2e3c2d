"""The live feed: Server-Sent Events read from the service's own event stream in Redis.

Each connection reads `events:rtls-cambus` with XREAD from where it stands (`$` at first, then the id of the
last entry it sent, or the browser's `Last-Event-ID` after a reconnect), so a change committed through any
replica reaches a feed served by any other, and nothing depends on the memory of the process.

Authentication: `EventSource` cannot send headers, so the page first asks `POST /positions/feed-tickets` with its
bearer token for a ticket and opens the feed with `?ticket=`. A ticket is random, kept in Redis (so any replica
can redeem it) only as a hash, lives `RTLS_CAMBUS_FEED_TICKET_SECONDS`, and is spent when the feed opens: a URL
that ends up in a log or a proxy is worthless by then. A connection is closed after `RTLS_CAMBUS_FEED_MAX_SECONDS`;
the page asks for a new ticket, which checks the account again.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Final

import orjson
from redis.asyncio import Redis
from starlette.requests import Request

from mirante.auth.principal import Principal
from mirante.bus.stream_entries import entries_by_stream, text
from rtls_cambus.positions.errors import FeedTicketError

TICKET_PREFIX: Final = "rtls-cambus:feed-ticket:"
FORWARDED: Final = ("rtls.position.", "rtls.person.", "rtls.gateway.", "rtls.device.", "rtls.camera.")
"""Event types the feed passes on: position and presence changes, and device (gateway, camera) changes."""
BLOCK_MS: Final = 10_000
"""How long one XREAD waits; a keep-alive comment goes out after each empty wait (below the client's timeout)."""
_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")


def _key(ticket: str) -> str:
    return TICKET_PREFIX + hashlib.sha256(ticket.encode()).hexdigest()


async def issue_ticket(redis: Redis, principal: Principal, ttl_seconds: int) -> str:
    ticket = secrets.token_urlsafe(32)
    owner = orjson.dumps({"kind": principal.kind, "id": principal.id, "role": principal.role.value})
    await redis.set(_key(ticket), owner, ex=ttl_seconds)
    return ticket


async def redeem_ticket(redis: Redis, ticket: str) -> dict[str, Any]:
    """Whom the ticket was issued to; `FeedTicketError` when it is unknown, used or expired. Spends it."""
    stored = await redis.getdel(_key(ticket))
    if stored is None:
        raise FeedTicketError()
    owner: dict[str, Any] = orjson.loads(stored)
    return owner


def start_id(last_event_id: str | None) -> str:
    """Where a connection starts reading: after the entry the browser last got, else only new entries."""
    if last_event_id and _STREAM_ID.fullmatch(last_event_id.strip()):
        return last_event_id.strip()
    return "$"


def _frame(entry_id: str, fields: Any) -> bytes | None:
    values = {text(key): value for key, value in fields.items()}
    kind = text(values.get("type", b""))
    if not kind.startswith(FORWARDED) or "event" not in values:
        return None
    envelope = orjson.loads(values["event"])
    body = orjson.dumps({"type": kind, "time": envelope.get("time"), "data": envelope.get("data")})
    # No `event:` field: every frame is a plain message, so one `onmessage` sees every type (EventSource has
    # no wildcard listener); the type is in the data.
    return b"id: " + entry_id.encode() + b"\ndata: " + body + b"\n\n"


async def stream_events(
    request: Request, redis: Redis, stream: str, last_id: str, max_seconds: float
) -> AsyncIterator[bytes]:
    if last_id == "$":
        # Pin "now" to a concrete id before saying hello: whatever is published once the client has read the
        # hello comes after it, even if the first XREAD starts later.
        newest = await redis.xrevrange(stream, count=1)
        last_id = text(newest[0][0]) if newest and newest[0][0] else "0-0"
    yield b"retry: 2000\n: connected\n\n"
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        response = await redis.xread({stream: last_id}, block=BLOCK_MS, count=200)
        sent = False
        for entries in entries_by_stream(response):
            for entry in entries:
                last_id = entry.entry_id
                frame = _frame(entry.entry_id, entry.fields)
                if frame is not None:
                    sent = True
                    yield frame
        if not sent:
            yield b": keep-alive\n\n"

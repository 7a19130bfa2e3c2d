"""What a webhook receiver keeps of each request in its audit log, and how often unverified senders may try.

A request whose signature (or token) did not verify proves nothing about its sender, so its log row keeps the
headers worth auditing, the size and SHA-256 of the whole body, and only the first `REJECTED_BODY_KEPT_BYTES` of
the body: enough to see what it claimed, not enough to let anyone fill the database. Such requests are also
counted per source address (`rejection_throttle`): past the limit they get 429 with `Retry-After` and the
receiver logs nothing more. A request that proved its sender keeps its whole body.

Every receiver of the suite (CVAT's in cvat-sync, Chatwoot's in rtls-cambus) stores bodies through here, so the
limits are the same everywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from limits import RateLimitItem

from mirante.web.ratelimit import RateLimiter

REJECTED_BODY_KEPT_BYTES = 4096
"""Bytes kept of a body whose sender did not prove who it is."""
MAX_HEADER_CHARS = 512
"""Characters kept of each audited header value."""

Throttle = Callable[[str | None], Awaitable[None]]
"""Counts one unauthenticated rejection from a source address; raises `RateLimitedError` (429) past the limit."""


@dataclass(frozen=True)
class StoredBody:
    """The body columns of an audit row: the text kept, whether it was cut short, the size and hash of all of it."""

    body: str
    body_truncated: bool
    body_size: int
    body_sha256: str


def db_text(text: str, limit: int | None = None) -> str:
    """`text` as PostgreSQL text can hold it (NUL replaced), cut to `limit` characters when given.

    An audit row must never fail on what a sender put in a request.
    """
    cleaned = text.replace("\x00", "\ufffd")
    return cleaned if limit is None else cleaned[:limit]


def stored_body(body: bytes, authenticated: bool, *, kept_bytes: int = REJECTED_BODY_KEPT_BYTES) -> StoredBody:
    """What the log keeps of `body`: all of it once the sender proved who it is, else its first `kept_bytes`
    (decoded as UTF-8; a multi-byte character cut in two becomes one replacement character)."""
    kept = body if authenticated else body[:kept_bytes]
    return StoredBody(
        body=db_text(kept.decode("utf-8", errors="replace")),
        body_truncated=len(kept) < len(body),
        body_size=len(body),
        body_sha256=hashlib.sha256(body).hexdigest(),
    )


def kept_headers(
    headers: Mapping[str, str], names: Iterable[str], *, max_chars: int = MAX_HEADER_CHARS
) -> dict[str, str]:
    """The headers of `names` (lower case) that `headers` holds, each value cut to `max_chars`.

    Name only headers worth auditing, never credentials: a signature proves nothing without the secret and may
    be kept, a token may not.
    """
    kept = {}
    for name in names:
        value = headers.get(name)
        if value is not None:
            kept[name] = db_text(value, max_chars)
    return kept


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` → `application/json` (parameters dropped, lower case)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def rejection_throttle(limiter: RateLimiter | None, rate: RateLimitItem, scope: str) -> Throttle | None:
    """The per-address limit of unauthenticated rejections of one receiver (`scope`) on the suite's Redis
    limiter; None in an app without a limiter."""
    if limiter is None:
        return None

    async def throttle(source_ip: str | None) -> None:
        await limiter.hit(rate, scope, source_ip or "unknown")

    return throttle

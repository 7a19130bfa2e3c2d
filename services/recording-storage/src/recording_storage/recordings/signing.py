"""Signed content URLs: a short-lived link to one recording's file that a `<video src>` can follow.

A page keeps its bearer token in script storage and sends it as a header; a media element sends no header, so
the player asks `POST /recordings/{id}/content-url` (authenticated, authorized as any read) for a URL that
carries its own proof: `?file=video&expires=<unix seconds>&signature=<base64url HMAC-SHA-256>`. The MAC covers
the recording id, the file and the expiry, so the URL opens that one file until then and nothing else; it is
checked in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from recording_storage.recordings.errors import ContentUrlExpiredError, ContentUrlInvalidError

SIGNATURE_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")
_CONTEXT: Final = b"recording-storage content url v1"


def _encode(mac: bytes) -> str:
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class ContentUrlSigner:
    """Signs and checks content URLs with one key; `ttl_seconds` is how long an issued URL lasts."""

    key: bytes
    ttl_seconds: int

    @classmethod
    def from_secret(cls, secret: str | None, ttl_seconds: int) -> ContentUrlSigner:
        """A signer keyed by `secret` (every replica given the same one accepts the others' URLs); without one, a
        random key of this process."""
        material = secret.encode("utf-8") if secret else secrets.token_bytes(32)
        return cls(key=hmac.new(material, _CONTEXT, hashlib.sha256).digest(), ttl_seconds=ttl_seconds)

    def _mac(self, recording_id: uuid.UUID, kind: str, expires: int) -> str:
        message = f"{recording_id}\n{kind}\n{expires}".encode("ascii")
        return _encode(hmac.new(self.key, message, hashlib.sha256).digest())

    def issue(self, recording_id: uuid.UUID, kind: str, now: datetime | None = None) -> tuple[int, str]:
        """`(expires, signature)` for a URL to `kind` of the recording, valid for `ttl_seconds` from `now`."""
        moment = now or datetime.now(UTC)
        expires = int(moment.timestamp()) + self.ttl_seconds
        return expires, self._mac(recording_id, kind, expires)

    def check(
        self, recording_id: uuid.UUID, kind: str, expires: int, signature: str, now: datetime | None = None
    ) -> None:
        """Raise ContentUrlInvalidError unless the signature is this key's for these values, and
        ContentUrlExpiredError once `expires` has passed (a tampered expiry fails the signature first)."""
        expected = self._mac(recording_id, kind, expires)
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
            raise ContentUrlInvalidError()
        if (now or datetime.now(UTC)).timestamp() >= expires:
            raise ContentUrlExpiredError()

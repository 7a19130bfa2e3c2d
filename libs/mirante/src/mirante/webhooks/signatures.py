"""HMAC-SHA256 signing and verification of webhook requests, always over the raw body bytes.

Three wire forms are supported:

- GitHub/CVAT: `X-Signature-256: sha256=<hex HMAC(secret, body)>`. It carries no timestamp, so it cannot stop
  replays; receivers deduplicate on the payload instead.
- Chatwoot: `X-Chatwoot-Signature: sha256=<hex HMAC(secret, "{X-Chatwoot-Timestamp}." + body)>` with the
  timestamp in unix seconds, accepted within a window around now (default 5 minutes both ways).
- Standard Webhooks, which the suite itself sends: `webhook-id`, `webhook-timestamp` (unix seconds) and
  `webhook-signature: v1,<base64 HMAC(key, "{id}.{timestamp}." + body)>`, several space-separated signatures
  allowed so secrets can rotate; secrets are written `whsec_<base64 of the key>`.

Verification raises only `SignatureError` subclasses for anything a sender controls (headers and body). An
unusable secret, tolerance or clock given by our own code raises `WebhookConfigurationError` instead, so a
misconfiguration surfaces as a server error rather than as a stream of rejected deliveries. No message ever
contains a secret, and header values are not echoed back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from functools import lru_cache
from secrets import token_bytes
from typing import TypeAlias

SHA256_SIGNATURE_HEADER = "X-Signature-256"
CHATWOOT_SIGNATURE_HEADER = "X-Chatwoot-Signature"
CHATWOOT_TIMESTAMP_HEADER = "X-Chatwoot-Timestamp"
CHATWOOT_DELIVERY_HEADER = "X-Chatwoot-Delivery"
WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"

STANDARD_SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300.0
# Room for dozens of rotated signatures; anything longer is an attack or a bug, not a webhook.
MAX_HEADER_LENGTH = 4096
MAX_WEBHOOK_ID_LENGTH = 256
MAX_TIMESTAMP_DIGITS = 15

_HEX_PREFIX = "sha256="
_SHA256_SIZE = hashlib.sha256().digest_size
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")
_UNIX_SECONDS = re.compile(rf"[0-9]{{1,{MAX_TIMESTAMP_DIGITS}}}")
# Printable ASCII without space and without "." (the separator of the signed content, forbidden by the spec).
_WEBHOOK_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]+")
_STANDARD_SECRET_SIZES = range(24, 65)

Secret: TypeAlias = str | bytes
StandardSecrets: TypeAlias = str | bytes | Sequence[str | bytes]


class SignatureError(ValueError):
    """A webhook request failed verification; answer 401 and do not process it."""


class MissingSignatureError(SignatureError):
    """A header the signature scheme needs is absent or empty."""


class MalformedSignatureError(SignatureError):
    """A signature, timestamp or id header is present but not in the scheme's format."""


class InvalidSignatureError(SignatureError):
    """The signature is well formed but does not match the body with any configured secret."""


class StaleTimestampError(SignatureError):
    """The signed timestamp lies outside the accepted window around now."""


class WebhookConfigurationError(ValueError):
    """Our own code passed an unusable secret, tolerance, clock, outgoing id or outgoing timestamp."""


def sign_sha256_hex(secret: Secret, body: bytes) -> str:
    """Return the GitHub/CVAT `X-Signature-256` value for `body`: `sha256=<lowercase hex HMAC-SHA256>`."""
    key = _text_secret_key(secret)
    _check_body(body)
    return _HEX_PREFIX + _hmac_sha256(key, b"", body).hex()


def verify_sha256_hex(secret: Secret, body: bytes, header_value: str | None) -> None:
    """Check an `X-Signature-256` value against the raw `body`; raise a `SignatureError` subclass if it fails.

    `header_value` is the header as received (None when absent). Hex digits are accepted in either case.
    """
    key = _text_secret_key(secret)
    _check_body(body)
    value = _clean_header_value(SHA256_SIGNATURE_HEADER, header_value, MAX_HEADER_LENGTH)
    if value is None:
        raise MissingSignatureError(f"the {SHA256_SIGNATURE_HEADER} header is missing")
    provided = _parse_hex_signature(SHA256_SIGNATURE_HEADER, value)
    if not hmac.compare_digest(_hmac_sha256(key, b"", body), provided):
        raise InvalidSignatureError(f"{SHA256_SIGNATURE_HEADER} does not match the body (wrong secret or altered body)")


def sign_chatwoot(
    secret: Secret, body: bytes, *, timestamp: int | None = None, delivery_id: str | None = None
) -> dict[str, str]:
    """Return the headers Chatwoot sends with a signed delivery of `body`.

    The signature covers `"{timestamp}." + body` (Chatwoot's `lib/webhooks/trigger.rb`). `timestamp` defaults
    to now and `delivery_id` to a fresh UUID; the delivery id is not signed, it only serves deduplication.
    """
    key = _text_secret_key(secret)
    _check_body(body)
    timestamp_text = _outgoing_timestamp(timestamp)
    signature = _hmac_sha256(key, f"{timestamp_text}.".encode("ascii"), body).hex()
    return {
        CHATWOOT_SIGNATURE_HEADER: _HEX_PREFIX + signature,
        CHATWOOT_TIMESTAMP_HEADER: timestamp_text,
        CHATWOOT_DELIVERY_HEADER: delivery_id if delivery_id is not None else str(uuid.uuid4()),
    }


def verify_chatwoot(
    secret: Secret,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a Chatwoot delivery: `X-Chatwoot-Signature` over `X-Chatwoot-Timestamp` + "." + the raw `body`.

    The timestamp must lie within `tolerance` seconds of `now` (unix seconds, default the current time) in
    either direction. Header names are matched case-insensitively. Raises a `SignatureError` subclass on
    failure. Deduplicate accepted deliveries on `X-Chatwoot-Delivery`, which Chatwoot keeps across retries.
    """
    key = _text_secret_key(secret)
    _check_body(body)
    current = _check_clock(tolerance, now)
    signature_value = _require_header(headers, CHATWOOT_SIGNATURE_HEADER, MAX_HEADER_LENGTH)
    timestamp_text = _require_header(headers, CHATWOOT_TIMESTAMP_HEADER, MAX_HEADER_LENGTH)
    provided = _parse_hex_signature(CHATWOOT_SIGNATURE_HEADER, signature_value)
    timestamp = _parse_unix_seconds(CHATWOOT_TIMESTAMP_HEADER, timestamp_text)
    _check_freshness(CHATWOOT_TIMESTAMP_HEADER, timestamp, tolerance, current)
    expected = _hmac_sha256(key, f"{timestamp_text}.".encode("ascii"), body)
    if not hmac.compare_digest(expected, provided):
        raise InvalidSignatureError(
            f"{CHATWOOT_SIGNATURE_HEADER} does not match the timestamp and body (wrong secret or altered request)"
        )


def generate_standard_secret(num_bytes: int = 32) -> str:
    """Return a new random Standard Webhooks secret, `whsec_<base64>`, of 24 to 64 key bytes (default 32)."""
    if isinstance(num_bytes, bool) or not isinstance(num_bytes, int) or num_bytes not in _STANDARD_SECRET_SIZES:
        raise WebhookConfigurationError("a Standard Webhooks secret has 24 to 64 random bytes")
    return STANDARD_SECRET_PREFIX + base64.b64encode(token_bytes(num_bytes)).decode("ascii")


def sign_standard(
    secrets: StandardSecrets, body: bytes, *, msg_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """Return the Standard Webhooks headers `webhook-id`, `webhook-timestamp`, `webhook-signature` for `body`.

    `secrets` is one secret or several (one `v1,` signature each, space-separated, for rotation); a secret is
    `whsec_<base64>` text or the raw key bytes. `msg_id` defaults to a fresh `msg_<hex>`; reuse the same id on
    every retry of one message. `timestamp` defaults to now (unix seconds); re-sign on each attempt.
    """
    keys = _standard_keys(secrets)
    _check_body(body)
    if msg_id is None:
        msg_id = f"msg_{uuid.uuid4().hex}"
    if not isinstance(msg_id, str) or len(msg_id) > MAX_WEBHOOK_ID_LENGTH or _WEBHOOK_ID.fullmatch(msg_id) is None:
        raise WebhookConfigurationError(
            f"msg_id must be 1 to {MAX_WEBHOOK_ID_LENGTH} printable ASCII characters without spaces or '.'"
        )
    timestamp_text = _outgoing_timestamp(timestamp)
    prefix = f"{msg_id}.{timestamp_text}.".encode("ascii")
    signatures = " ".join("v1," + base64.b64encode(_hmac_sha256(key, prefix, body)).decode("ascii") for key in keys)
    return {
        WEBHOOK_ID_HEADER: msg_id,
        WEBHOOK_TIMESTAMP_HEADER: timestamp_text,
        WEBHOOK_SIGNATURE_HEADER: signatures,
    }


def verify_standard(
    secrets: StandardSecrets,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a Standard Webhooks request over the raw `body`; raise a `SignatureError` subclass if it fails.

    Passes when any `v1` signature in `webhook-signature` matches any of `secrets` (one or several, for
    rotation). Entries of other versions (such as asymmetric `v1a`) are ignored. `webhook-timestamp` must lie
    within `tolerance` seconds of `now` (unix seconds, default the current time) in either direction. Header
    names are matched case-insensitively, so a starlette `Headers` or a plain dict both work. Deduplicate
    accepted requests on `webhook-id` for at least the tolerance window.
    """
    keys = _standard_keys(secrets)
    _check_body(body)
    current = _check_clock(tolerance, now)
    msg_id = _require_header(headers, WEBHOOK_ID_HEADER, MAX_WEBHOOK_ID_LENGTH)
    timestamp_text = _require_header(headers, WEBHOOK_TIMESTAMP_HEADER, MAX_HEADER_LENGTH)
    signature_value = _require_header(headers, WEBHOOK_SIGNATURE_HEADER, MAX_HEADER_LENGTH)
    if _WEBHOOK_ID.fullmatch(msg_id) is None:
        raise MalformedSignatureError(f"{WEBHOOK_ID_HEADER} must be printable ASCII without spaces or '.'")
    timestamp = _parse_unix_seconds(WEBHOOK_TIMESTAMP_HEADER, timestamp_text)
    candidates = _parse_standard_signatures(signature_value)
    _check_freshness(WEBHOOK_TIMESTAMP_HEADER, timestamp, tolerance, current)
    prefix = f"{msg_id}.{timestamp_text}.".encode("ascii")
    for key in keys:
        expected = _hmac_sha256(key, prefix, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            return
    raise InvalidSignatureError(
        f"no signature in {WEBHOOK_SIGNATURE_HEADER} matches the id, timestamp and body "
        "with any configured secret (wrong secret or altered request)"
    )


def _hmac_sha256(key: bytes, prefix: bytes, body: bytes) -> bytes:
    # Fed in two parts so a large body is never copied just to prepend a few bytes.
    mac = hmac.new(key, prefix, hashlib.sha256)
    mac.update(body)
    return mac.digest()


def _check_body(body: object) -> None:
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(
            f"body must be the raw request bytes, got {type(body).__name__}; never sign or verify parsed JSON"
        )


def _text_secret_key(secret: object) -> bytes:
    if isinstance(secret, bytes | bytearray):
        key = bytes(secret)
    elif isinstance(secret, str):
        try:
            key = secret.encode("utf-8")
        except UnicodeEncodeError:
            raise WebhookConfigurationError("the webhook secret is not encodable as UTF-8") from None
    else:
        raise WebhookConfigurationError(f"a webhook secret must be str or bytes, got {type(secret).__name__}")
    if not key:
        raise WebhookConfigurationError("the webhook secret is empty")
    return key


def _standard_keys(secrets: object) -> list[bytes]:
    given: Sequence[object]
    if isinstance(secrets, str | bytes | bytearray):
        given = [secrets]
    elif isinstance(secrets, Sequence):
        given = secrets
    else:
        raise WebhookConfigurationError(
            f"secrets must be a secret or a sequence of secrets, got {type(secrets).__name__}"
        )
    if not given:
        raise WebhookConfigurationError("no Standard Webhooks secret was given")
    return [_standard_key(secret) for secret in given]


def _standard_key(secret: object) -> bytes:
    if isinstance(secret, bytes | bytearray):
        key = bytes(secret)
    elif isinstance(secret, str):
        key = _text_standard_key(secret)
    else:
        raise WebhookConfigurationError(f"a Standard Webhooks secret must be str or bytes, got {type(secret).__name__}")
    if not key:
        raise WebhookConfigurationError("a Standard Webhooks secret is empty")
    return key


@lru_cache(maxsize=1024)
def _text_standard_key(secret: str) -> bytes:
    # Kept decoded: a sender signs every delivery of a subscription with the same few secrets.
    if not secret.startswith(STANDARD_SECRET_PREFIX):
        raise WebhookConfigurationError(
            f"a Standard Webhooks secret given as text must start with {STANDARD_SECRET_PREFIX!r}"
        )
    try:
        return base64.b64decode(secret[len(STANDARD_SECRET_PREFIX) :], validate=True)
    except ValueError:
        raise WebhookConfigurationError(
            f"the part of a Standard Webhooks secret after {STANDARD_SECRET_PREFIX!r} is not valid base64"
        ) from None


def _check_clock(tolerance: object, now: object) -> float:
    # A NaN would make every freshness comparison false, silently accepting any timestamp.
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not math.isfinite(tolerance):
        raise WebhookConfigurationError("tolerance must be a finite number of seconds")
    if tolerance < 0:
        raise WebhookConfigurationError("tolerance must not be negative")
    if now is None:
        return time.time()
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise WebhookConfigurationError("now must be a finite unix time in seconds")
    return float(now)


def _outgoing_timestamp(timestamp: object) -> str:
    if timestamp is None:
        return str(int(time.time()))
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise WebhookConfigurationError("timestamp must be a non-negative integer of unix seconds")
    text = str(timestamp)
    if len(text) > MAX_TIMESTAMP_DIGITS:
        raise WebhookConfigurationError(f"timestamp must have at most {MAX_TIMESTAMP_DIGITS} digits")
    return text


def _clean_header_value(name: str, value: object, max_length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedSignatureError(f"the {name} header is not text")
    if len(value) > max_length:
        raise MalformedSignatureError(
            f"the {name} header is {len(value)} characters long; at most {max_length} are accepted"
        )
    value = value.strip()
    return value or None


def _find_header(headers: Mapping[str, str], name: str) -> object:
    if not isinstance(headers, Mapping):
        raise MissingSignatureError(f"the {name} header is missing: no headers were given")
    wanted = name.lower()
    for key in (name, wanted):
        value = headers.get(key)
        if value is not None:
            return value
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value
    return None


def _require_header(headers: Mapping[str, str], name: str, max_length: int) -> str:
    value = _clean_header_value(name, _find_header(headers, name), max_length)
    if value is None:
        raise MissingSignatureError(f"the {name} header is missing")
    return value


def _parse_hex_signature(name: str, value: str) -> bytes:
    if value[: len(_HEX_PREFIX)].lower() != _HEX_PREFIX:
        raise MalformedSignatureError(f"{name} must start with {_HEX_PREFIX!r}")
    digits = value[len(_HEX_PREFIX) :]
    if _HEX_DIGITS.fullmatch(digits) is None:
        raise MalformedSignatureError(f"{name} has non-hexadecimal characters after {_HEX_PREFIX!r}")
    if len(digits) != 2 * _SHA256_SIZE:
        raise MalformedSignatureError(
            f"{name} has {len(digits)} hexadecimal digits; an HMAC-SHA256 has {2 * _SHA256_SIZE}"
        )
    return bytes.fromhex(digits)


def _parse_unix_seconds(name: str, value: str) -> int:
    if _UNIX_SECONDS.fullmatch(value) is None:
        raise MalformedSignatureError(
            f"{name} must be unix seconds: 1 to {MAX_TIMESTAMP_DIGITS} ASCII digits, no sign or fraction"
        )
    return int(value)


def _parse_standard_signatures(value: str) -> list[bytes]:
    candidates: list[bytes] = []
    for entry in value.split():
        version, comma, encoded = entry.partition(",")
        if version != "v1" or not comma:
            continue
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError:
            continue
        if len(raw) == _SHA256_SIZE:
            candidates.append(raw)
    if not candidates:
        raise MalformedSignatureError(
            f"{WEBHOOK_SIGNATURE_HEADER} holds no well-formed signature 'v1,<base64 of a 32-byte HMAC-SHA256>'"
        )
    return candidates


def _check_freshness(name: str, timestamp: int, tolerance: float, now: float) -> None:
    age = now - timestamp
    if age > tolerance:
        raise StaleTimestampError(
            f"{name} is {age:.0f} s in the past; at most {tolerance:.0f} s is accepted (replayed or delayed)"
        )
    if -age > tolerance:
        raise StaleTimestampError(
            f"{name} is {-age:.0f} s in the future; at most {tolerance:.0f} s is accepted (check clock sync)"
        )

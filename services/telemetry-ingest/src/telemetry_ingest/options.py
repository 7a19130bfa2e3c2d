"""Types of the broker-authentication settings: the shared secret, the superuser accounts, the failure limit.

Superusers (the ingest service's own MQTT account and other trusted clients) are configured by the SHA-256 hex of
their MQTT password, in any of these forms (environment variable `TELEMETRY_INGEST_BROKER_SUPERUSERS`):

- `telemetry-ingest:<sha256hex>,rtls-cambus:<sha256hex>` (comma- or space-separated `name:hash` pairs),
- `["telemetry-ingest:<sha256hex>"]` (a JSON list of pairs),
- `{"telemetry-ingest": "<sha256hex>"}` (a JSON object).

Generate a hash with `printf %s "$PASSWORD" | sha256sum`. Names never contain `:`, so a superuser name can
never be mistaken for a device's `<tenant>:<device_id>`.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Final

from limits import parse
from pydantic import AfterValidator, BeforeValidator, SecretStr
from pydantic_settings import NoDecode

MIN_SECRET_LENGTH: Final = 16
SUPERUSER_NAME_PATTERN: Final = r"[A-Za-z0-9_.@-]{1,64}"

_SUPERUSER_NAME = re.compile(SUPERUSER_NAME_PATTERN)
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_SEPARATORS = re.compile(r"[\s,]+")


def _blank_is_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _long_enough(secret: SecretStr | None) -> SecretStr | None:
    if secret is not None and len(secret.get_secret_value()) < MIN_SECRET_LENGTH:
        raise ValueError(f"the broker secret must have at least {MIN_SECRET_LENGTH} characters")
    return secret


BrokerSecret = Annotated[SecretStr | None, BeforeValidator(_blank_is_none), AfterValidator(_long_enough)]
"""An optional shared secret of at least 16 characters; an empty value means unset."""


def _pair(item: Any) -> tuple[Any, Any]:
    if not isinstance(item, str) or item.count(":") != 1:
        raise ValueError(f"superuser entry {item!r} is not 'name:sha256hex'")
    name, digest = item.split(":")
    return name, digest


def parse_superusers(value: Any) -> dict[str, str]:
    """Superusers as `{name: sha256 hex (lower case)}` from any of the accepted forms; `ValueError` when invalid."""
    if value is None:
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("{", "[")):
            value = json.loads(text)
        else:
            value = [item for item in _SEPARATORS.split(text) if item]
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list | tuple):
        pairs = [_pair(item) for item in value]
    else:
        raise ValueError("superusers must be 'name:sha256hex' pairs or a JSON object {name: sha256hex}")
    superusers: dict[str, str] = {}
    for name, digest in pairs:
        if not isinstance(name, str) or not _SUPERUSER_NAME.fullmatch(name):
            raise ValueError(f"invalid superuser name {name!r}: use 1 to 64 of A-Z a-z 0-9 _ . @ - (no ':')")
        if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
            raise ValueError(f"superuser {name!r}: the password hash must be 64 hex digits (SHA-256)")
        if name in superusers:
            raise ValueError(f"superuser {name!r} is listed twice")
        superusers[name] = digest.lower()
    return superusers


Superusers = Annotated[dict[str, str], NoDecode, BeforeValidator(parse_superusers)]
"""Superuser MQTT accounts: name → SHA-256 hex of the password."""


def _valid_rate(rate: str) -> str:
    parse(rate)
    return rate


RateText = Annotated[str, AfterValidator(_valid_rate)]
"""A rate such as `10/minute` (the `limits` notation)."""

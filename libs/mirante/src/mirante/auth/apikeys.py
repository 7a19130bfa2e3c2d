"""API keys: `mk_<prefix>_<secret>`, found by prefix, stored as SHA-256 of the whole key.

The secret carries 256 bits of entropy, so a fast hash is right (a slow password hash would only cost
every request time without adding safety). The prefix is not secret: it names the key in lists and logs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass

from mirante.web.errors import UnauthorizedError

KEY_MARKER = "mk"
PREFIX_LENGTH = 8
SECRET_BYTES = 32
WILDCARD_SCOPE = "*"
SCOPE_PATTERN = r"^(\*|[a-z][a-z0-9_.-]{0,31}(:[a-z0-9_.-]{1,63})?)$"
MAX_SCOPES = 32

_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_KEY_SHAPE = re.compile(rf"^{KEY_MARKER}_([a-z0-9]{{{PREFIX_LENGTH}}})_([A-Za-z0-9_-]{{43,128}})$")
_SCOPE = re.compile(SCOPE_PATTERN)


class InvalidApiKeyError(UnauthorizedError):
    """The API key is malformed, unknown, revoked or expired."""

    code = "invalid_api_key"

    def __init__(self, message: str = "invalid API key") -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Api-Key realm="mirante"'})


class InvalidScopeError(ValueError):
    """A scope does not have the `name` or `name:action` shape (or `*`)."""


@dataclass(frozen=True)
class NewApiKey:
    """A freshly generated key: `plaintext` is shown once; only `prefix` and `key_hash` are stored."""

    plaintext: str
    prefix: str
    key_hash: str


def hash_api_key(key: str) -> str:
    """Hex SHA-256 of the whole key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_api_key() -> NewApiKey:
    """A new random key with its prefix and hash."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    plaintext = f"{KEY_MARKER}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    return NewApiKey(plaintext=plaintext, prefix=prefix, key_hash=hash_api_key(plaintext))


def looks_like_api_key(value: str) -> bool:
    """True when `value` starts like one of the suite's keys (`mk_`): a JWT never does (it starts `eyJ`)."""
    return value.startswith(f"{KEY_MARKER}_")


def api_key_prefix(key: str) -> str:
    """The lookup prefix of `key`; `InvalidApiKeyError` when the key does not have the `mk_…_…` shape."""
    match = _KEY_SHAPE.fullmatch(key) if isinstance(key, str) else None
    if match is None:
        raise InvalidApiKeyError("malformed API key")
    return match.group(1)


def api_key_matches(key: str, stored_hash: str) -> bool:
    """Constant-time comparison of `key` with a stored hash."""
    return hmac.compare_digest(hash_api_key(key), stored_hash)


def normalize_scopes(scopes: Iterable[str]) -> list[str]:
    """Validated, de-duplicated and sorted scopes; `InvalidScopeError` on a bad one."""
    result = set()
    for scope in scopes:
        if not isinstance(scope, str) or not _SCOPE.fullmatch(scope):
            raise InvalidScopeError(
                f"invalid scope {scope!r}: use '*', 'name' or 'name:action' (lower-case letters, digits, . _ -)"
            )
        result.add(scope)
    if len(result) > MAX_SCOPES:
        raise InvalidScopeError(f"at most {MAX_SCOPES} scopes per key")
    return sorted(result)


def scopes_allow(granted: Iterable[str], required: str) -> bool:
    """True when `granted` holds `required` or the wildcard `*`."""
    held = set(granted)
    return WILDCARD_SCOPE in held or required in held

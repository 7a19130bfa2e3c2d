"""The credential a machine calls the orchestrator with: `mvc_<12 hex of its id>_<secret>`. Pure functions.

The machine id inside lets the orchestrator find the one active credential of the machine without an index on
secrets; the secret carries 256 bits, so its SHA-256 (`mirante.auth.apikeys.hash_api_key`) is stored, not a slow
password hash. The machine sends it as `Authorization: Bearer <credential>`.
"""

from __future__ import annotations

import re
import secrets
from typing import Final

from mirante.auth.apikeys import SECRET_BYTES, api_key_matches, hash_api_key
from vision_orchestrator.identifiers import MACHINE_PREFIX

CREDENTIAL_PREFIX: Final = "mvc_"
_SHAPE = re.compile(r"^mvc_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


def new_credential(machine_id: str) -> tuple[str, str]:
    """A new credential for `machine_id` and the hash to store."""
    plaintext = f"{CREDENTIAL_PREFIX}{machine_id.removeprefix(MACHINE_PREFIX)}_{secrets.token_urlsafe(SECRET_BYTES)}"
    return plaintext, hash_api_key(plaintext)


def machine_of(credential: str) -> str | None:
    """The machine id a credential names, or None when it does not have the credential's shape."""
    match = _SHAPE.fullmatch(credential) if isinstance(credential, str) else None
    return f"{MACHINE_PREFIX}{match.group(1)}" if match else None


def credential_matches(credential: str, stored_hash: str) -> bool:
    """Constant-time comparison of `credential` with a stored hash."""
    return api_key_matches(credential, stored_hash)

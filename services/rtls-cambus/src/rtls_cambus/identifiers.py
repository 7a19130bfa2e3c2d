"""Rules several features apply: MAC addresses of tags and gateways, names, the schema and event source."""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

SCHEMA: Final = "rtls_cambus"
SOURCE: Final = "mirante/rtls-cambus"

MAC_PATTERN: Final = r"[0-9A-F]{2}(:[0-9A-F]{2}){5}"
"""The one form a MAC address is stored and answered in: `AA:BB:CC:DD:EE:FF`."""

# The forms gateways, tag labels and people write: `aa:bb:..`, `aa-bb-..`, Cisco's `aabb.ccdd.eeff`, bare hex.
_SEPARATED = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}")
_DOTTED = re.compile(r"[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}")
_BARE = re.compile(r"[0-9A-Fa-f]{12}")
_CANONICAL = re.compile(MAC_PATTERN)


MAC_INPUT_MAX_LENGTH: Final = 64


_NORMALISED: dict[str, str | None] = {}
_NORMALISED_MAX: Final = 16_384
"""Answers kept for inputs seen before: the ingest normalises every reading's tag MAC, and a site's tags are a few
thousand MACs heard over and over (a lookup costs a tenth of the match). Emptied when full, so input that never
repeats cannot grow it."""


def normalise_mac(value: str) -> str | None:
    """`value` as `AA:BB:CC:DD:EE:FF`, or None when it is not a MAC address in a common form."""
    if not isinstance(value, str) or len(value) > MAC_INPUT_MAX_LENGTH:
        return None
    if value in _NORMALISED:
        return _NORMALISED[value]
    if len(_NORMALISED) >= _NORMALISED_MAX:
        _NORMALISED.clear()
    answer = _NORMALISED[value] = _normalise(value)
    return answer


def _normalise(value: str) -> str | None:
    text = value.strip()
    if _CANONICAL.fullmatch(text):
        return text  # the usual case on the ingest's path: one match, no rebuilding
    if _SEPARATED.fullmatch(text) or _DOTTED.fullmatch(text) or _BARE.fullmatch(text):
        digits = re.sub(r"[^0-9A-Fa-f]", "", text).upper()
        return ":".join(digits[index : index + 2] for index in range(0, 12, 2))
    return None


def _mac(value: object) -> str:
    normalised = normalise_mac(value) if isinstance(value, str) else None
    if normalised is None:
        raise PydanticCustomError(
            "mac_address",
            "must be a MAC address such as AA:BB:CC:DD:EE:FF (also aa-bb-cc-dd-ee-ff, aabb.ccdd.eeff, aabbccddeeff)",
        )
    return normalised


MAC_INPUT_PATTERN: Final = (
    r"^\s*([0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){5}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}|[0-9A-Fa-f]{12})\s*$"
)
"""The forms `normalise_mac` takes, surrounding whitespace included, for the schema (the stored form matches it)."""

MacAddress = Annotated[
    str,
    BeforeValidator(_mac),
    Field(
        description="MAC address; `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff`, `aabb.ccdd.eeff` and `aabbccddeeff` "
        "are accepted and stored as `AA:BB:CC:DD:EE:FF`",
        examples=["AA:BB:CC:DD:EE:FF"],
        max_length=MAC_INPUT_MAX_LENGTH,
        # For clients and fuzzers only: `_mac` decides, and says what it takes.
        json_schema_extra={"pattern": MAC_INPUT_PATTERN},
    ),
]

"""Reason classes: a short, fixed label for each rejection or unrouted reason, for metrics and summaries.

Rejection reasons are sentences meant for people (they name the bad value); a metric label must come from a
small fixed set, so each reason is mapped to one of the classes below by its wording.
"""

from __future__ import annotations

import re
from typing import Final

EMPTY_PAYLOAD: Final = "empty_payload"
MALFORMED_JSON: Final = "malformed_json"
INVALID_PAYLOAD: Final = "invalid_payload"
TOO_MANY_READINGS: Final = "too_many_readings"
INVALID_VALUE: Final = "invalid_value"
INVALID_TIMESTAMP: Final = "invalid_timestamp"
FUTURE_TIMESTAMP: Final = "future_timestamp"
TOO_OLD: Final = "too_old"
INVALID_UNIT: Final = "invalid_unit"
INVALID_TOPIC: Final = "invalid_topic"
INVALID_MESSAGE: Final = "invalid_message"
UNKNOWN_TENANT: Final = "unknown_tenant"
FORBIDDEN_TENANT: Final = "forbidden_tenant"
STORAGE_REFUSED: Final = "storage_refused"
OTHER: Final = "other"

UNKNOWN_TENANT_PREFIX: Final = "unknown tenant"
FORBIDDEN_TENANT_PREFIX: Final = "forbidden tenant"
STORAGE_REFUSED_PREFIX: Final = "not stored"
READING_PREFIX: Final = re.compile(r"reading \d+: ")
"""How a reason stored for one reading of a list starts: `reading <index>: `."""

# Order matters: the first pattern that matches the start of a reason wins.
_RULES: Final = tuple(
    (re.compile(pattern), reason_class)
    for pattern, reason_class in (
        (rf"{UNKNOWN_TENANT_PREFIX}\b", UNKNOWN_TENANT),
        (rf"{FORBIDDEN_TENANT_PREFIX}\b", FORBIDDEN_TENANT),
        (rf"{STORAGE_REFUSED_PREFIX}\b", STORAGE_REFUSED),
        (r"(empty payload|empty body|the (message|body) holds an empty list)", EMPTY_PAYLOAD),
        (r"malformed JSON", MALFORMED_JSON),
        (r"the message holds \d+ readings", TOO_MANY_READINGS),
        (r"(payload must be|reading must be)", INVALID_PAYLOAD),
        (r"(value |missing value)", INVALID_VALUE),
        (r"timestamp \S+ is more than .* in the future", FUTURE_TIMESTAMP),
        (r"timestamp \S+ is older than", TOO_OLD),
        (r"(unparseable timestamp|timestamp |epoch timestamp )", INVALID_TIMESTAMP),
        (r"unit ", INVALID_UNIT),
        (r"(topic |invalid tenant |invalid device id |invalid sensor type )", INVALID_TOPIC),
        (r"(message |invalid ts|payload cannot be encoded|the body holds|body must be)", INVALID_MESSAGE),
    )
)

REASON_CLASSES: Final = frozenset(
    {
        EMPTY_PAYLOAD,
        MALFORMED_JSON,
        INVALID_PAYLOAD,
        TOO_MANY_READINGS,
        INVALID_VALUE,
        INVALID_TIMESTAMP,
        FUTURE_TIMESTAMP,
        TOO_OLD,
        INVALID_UNIT,
        INVALID_TOPIC,
        INVALID_MESSAGE,
        UNKNOWN_TENANT,
        FORBIDDEN_TENANT,
        STORAGE_REFUSED,
        OTHER,
    }
)


def reason_class(reason: str) -> str:
    """The class of a rejection or unrouted reason (one of `REASON_CLASSES`)."""
    prefix = READING_PREFIX.match(reason)
    start = prefix.end() if prefix else 0
    for pattern, label in _RULES:
        if pattern.match(reason, start):
            return label
    return OTHER


def describe(reason: str, index: int | None) -> str:
    """The reason as stored and reported: prefixed with `reading <index>: ` for one reading of a list."""
    return reason if index is None else f"reading {index}: {reason}"

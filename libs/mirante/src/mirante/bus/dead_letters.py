"""Dead letters: entries a consumer gives up on, copied with the reason to a stream of their own.

A consumer copies an entry here first and acknowledges it after, so a crash in between duplicates a dead
letter instead of losing the entry.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from enum import StrEnum

from redis.typing import EncodableT, FieldT

from mirante.bus.envelope import Event
from mirante.bus.stream_entries import Delivery

DEAD_LETTER_STREAM = "events:dead"
MAX_REMEMBERED_ERRORS = 1_000
MAX_ERROR_TEXT = 2_000


class DeadLetterReason(StrEnum):
    INVALID_ENVELOPE = "invalid_envelope"
    MAX_DELIVERIES_EXCEEDED = "max_deliveries_exceeded"


class RecentErrors:
    """The last handler error of each failing entry, so its dead letter can say why; bounded, oldest out."""

    def __init__(self, limit: int = MAX_REMEMBERED_ERRORS) -> None:
        self._limit = limit
        self._errors: OrderedDict[tuple[str, str], str] = OrderedDict()

    def remember(self, stream: str, entry_id: str, error: Exception) -> None:
        """Keep `error` as the latest of the entry, forgetting the oldest entry beyond the limit."""
        self._errors[(stream, entry_id)] = f"{type(error).__name__}: {error}"[:MAX_ERROR_TEXT]
        self._errors.move_to_end((stream, entry_id))
        while len(self._errors) > self._limit:
            self._errors.popitem(last=False)

    def pop(self, stream: str, entry_id: str) -> str | None:
        """Forget the entry's error and return it (None when there was none)."""
        return self._errors.pop((stream, entry_id), None)


def dead_letter_fields(
    delivery: Delivery,
    reason: DeadLetterReason,
    detail: str,
    *,
    group: str,
    consumer: str,
    event: Event | None,
    last_error: str | None,
) -> dict[FieldT, EncodableT]:
    """The dead letter of `delivery`: why and where it died, then the original fields under `original.`."""
    entry = delivery.entry
    letter: dict[FieldT, EncodableT] = {
        "reason": reason.value,
        "detail": detail,
        "stream": entry.stream,
        "entry_id": entry.entry_id,
        "group": group,
        "consumer": consumer,
        "deliveries": delivery.deliveries,
        "dead_at": datetime.now(UTC).isoformat(),
    }
    if event is not None:
        letter["event_id"] = event.id
        letter["event_type"] = event.type
    if last_error is not None:
        letter["last_error"] = last_error
    for name, value in entry.fields.items():
        letter[_prefixed("original.", name)] = value
    return letter


def _prefixed(prefix: str, name: bytes | str) -> bytes | str:
    return prefix.encode() + name if isinstance(name, bytes) else prefix + name

"""Stream entries as a consumer group sees them, read from redis-py's replies (RESP2 or RESP3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mirante.bus.envelope import FIELD_TYPE

EntryFields = Mapping[Any, Any]
"""The field map of a stream entry as redis-py returns it (bytes or str keys and values)."""

FIRST_DELIVERY = 1
CURSOR_DONE = "0-0"
"""The `XAUTOCLAIM` cursor that starts a scan, and the one that says the scan has wrapped."""


@dataclass(frozen=True)
class Entry:
    """One entry of one stream."""

    stream: str
    entry_id: str
    fields: EntryFields


@dataclass(frozen=True)
class Delivery:
    """An entry and how many times the group has delivered it (this delivery included)."""

    entry: Entry
    deliveries: int


def text(value: bytes | str) -> str:
    """`value` as text, whether redis-py decoded it or not."""
    return value.decode() if isinstance(value, bytes) else value


def entry_type(fields: EntryFields) -> str | None:
    """The `type` field of an entry, read without parsing its envelope; None when missing or not UTF-8 text."""
    value = fields.get(FIELD_TYPE, fields.get(_FIELD_TYPE_BYTES))
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


_FIELD_TYPE_BYTES = FIELD_TYPE.encode()


def entries_by_stream(response: Any) -> list[list[Entry]]:
    """Entries of an XREADGROUP reply, grouped per stream (RESP2 list or RESP3 map)."""
    if not response:
        return []
    pairs = response.items() if isinstance(response, Mapping) else response
    grouped = []
    for stream, entries in pairs:
        # RESP3 nests the entry list once more.
        flat = entries[0] if entries and isinstance(entries[0], list) else entries
        grouped.append([Entry(text(stream), text(entry_id), fields or {}) for entry_id, fields in flat])
    return grouped


def claimed_entries(stream: str, response: Any) -> tuple[str, list[Entry]]:
    """The next cursor and the entries of an XAUTOCLAIM reply on `stream`."""
    # Redis 6.2 answers a deleted entry with nil (no id); Redis 7 drops it from the PEL itself.
    entries = [Entry(stream, text(entry_id), fields or {}) for entry_id, fields in response[1] if entry_id is not None]
    return text(response[0]), entries


def delivery_counts(replies: list[Any]) -> dict[str, int]:
    """Times delivered per entry id, from the replies of pipelined single-entry `XPENDING` ranges."""
    counts: dict[str, int] = {}
    for reply in replies:
        for pending in reply:
            counts[text(pending["message_id"])] = int(pending["times_delivered"])
    return counts

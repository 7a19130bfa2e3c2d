"""Parsing of what gateways and cameras publish; pure functions, nothing here touches the database.

Anything unusable becomes a `Rejection` with a reason class (a fixed word, for metrics) and a reason (for the
rejected table and the logs); it never raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, NamedTuple

import orjson

from rtls_cambus.identifiers import normalise_mac

RSSI_MIN: Final = -127
"""dBm. BLE reports RSSI as a signed byte where 127 means "not available"; -127 is the weakest value."""
RSSI_MAX: Final = 0
"""dBm. A received signal is never stronger than 0 dBm (1 mW) at a gateway's antenna; above it is a bug."""

EVENT_TYPES: Final = ("new", "update", "end")
STATUS_WORDS: Final = ("online", "offline")
_TEXT_MAX: Final = 100


@dataclass(frozen=True, slots=True)
class Rejection:
    reason_class: str
    reason: str
    reading_index: int | None = None
    payload: bytes = b""


class Reading(NamedTuple):
    """One beacon reading: a tag heard by a gateway at `rssi` dBm (raw, before the gateway's offset).

    A tuple rather than a frozen dataclass: one is made per reading, and a frozen dataclass costs three times as
    much to make."""

    tag_mac: str
    rssi: int


@dataclass(frozen=True, slots=True)
class BeaconPayload:
    readings: list[Reading]
    rejections: list[Rejection]


@dataclass(frozen=True, slots=True)
class CameraEventPayload:
    event_id: str
    type: Literal["new", "update", "end"]
    label: str | None
    sub_label: str | None
    score: float | None
    top_score: float | None
    zones: list[str]
    entered_zones: list[str]
    started_at: datetime | None
    ended_at: datetime | None
    data: dict[str, Any]


def _json(payload: bytes) -> Any | Rejection:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        return Rejection("malformed_json", f"malformed JSON: {error}")


def parse_beacon(payload: bytes, max_readings: int) -> BeaconPayload | Rejection:
    """`{"readings": [{"tag_mac": "...", "rssi": -62}, ...]}`: the good readings and one rejection per bad one."""
    document = _json(payload)
    if isinstance(document, Rejection):
        return document
    if not isinstance(document, dict) or not isinstance(document.get("readings"), list):
        return Rejection("bad_payload", 'a beacon message is {"readings": [{"tag_mac": ..., "rssi": ...}, ...]}')
    items = document["readings"]
    if len(items) > max_readings:
        return Rejection("too_many_readings", f"{len(items)} readings in one message, more than {max_readings}")
    readings: list[Reading] = []
    rejections: list[Rejection] = []
    for index, item in enumerate(items):
        parsed = parse_reading(item)
        if isinstance(parsed, Rejection):
            rejections.append(
                Rejection(parsed.reason_class, f"reading {index}: {parsed.reason}", index, orjson.dumps(item))
            )
        else:
            readings.append(parsed)
    return BeaconPayload(readings, rejections)


def parse_reading(item: Any) -> Reading | Rejection:
    if not isinstance(item, dict):
        return Rejection("bad_reading", 'a reading is an object {"tag_mac": ..., "rssi": ...}')
    mac = normalise_mac(item["tag_mac"]) if isinstance(item.get("tag_mac"), str) else None
    if mac is None:
        return Rejection("bad_tag_mac", f"tag_mac {_shown(item.get('tag_mac'))} is not a MAC address")
    rssi = item.get("rssi")
    if isinstance(rssi, float) and rssi.is_integer():
        rssi = int(rssi)
    if isinstance(rssi, bool) or not isinstance(rssi, int):
        return Rejection("bad_rssi", f"rssi {_shown(rssi)} is not a whole number of dBm")
    if not RSSI_MIN <= rssi <= RSSI_MAX:
        return Rejection("rssi_range", f"rssi {rssi} dBm is outside {RSSI_MIN}..{RSSI_MAX}")
    return Reading(mac, rssi)


def parse_status(payload: bytes) -> tuple[str | None, dict[str, Any] | None] | Rejection:
    """A status message: `online`/`offline` as plain text, or a JSON object, its `status` optional.

    Returns the status word it states (None when it states none) and the object, if one.
    """
    text = payload.strip()
    word = text.decode("utf-8", "replace").strip('"').lower()
    if word in STATUS_WORDS:
        return word, None
    document = _json(text)
    if isinstance(document, Rejection):
        return Rejection("bad_status", f'a status is "online", "offline" or a JSON object ({document.reason})')
    if not isinstance(document, dict):
        return Rejection("bad_status", 'a status is "online", "offline" or a JSON object')
    status = document.get("status", document.get("state"))
    if status is None:
        return None, document
    if not isinstance(status, str) or status.lower() not in STATUS_WORDS:
        return Rejection("bad_status", f"status {_shown(status)} is neither online nor offline")
    return status.lower(), document


def parse_info(payload: bytes) -> dict[str, Any] | Rejection:
    document = _json(payload)
    if isinstance(document, Rejection):
        return document
    if not isinstance(document, dict):
        return Rejection("bad_payload", "a camera info message is a JSON object")
    return document


def parse_camera_event(payload: bytes) -> CameraEventPayload | Rejection:
    """An analytic event, Frigate's shape `{"type", "before", "after": {...}}` or the event object itself with
    its `type`. `id` is required; times are epoch seconds or RFC 3339."""
    document = _json(payload)
    if isinstance(document, Rejection):
        return document
    if not isinstance(document, dict):
        return Rejection("bad_event", "an event message is a JSON object")
    event = document.get("after", document)
    if not isinstance(event, dict):
        return Rejection("bad_event", '"after" must be the event object')
    kind = document.get("type", event.get("type"))
    if kind not in EVENT_TYPES:
        return Rejection("bad_event", f"type {_shown(kind)} is not one of new, update, end")
    event_id = event.get("id")
    if isinstance(event_id, int) and not isinstance(event_id, bool):
        event_id = str(event_id)
    if not isinstance(event_id, str) or not 1 <= len(event_id.strip()) <= 200:
        return Rejection("bad_event", "the event needs an id of 1 to 200 characters, the same in new, update and end")
    try:
        started_at = _time(event.get("start_time"))
        ended_at = _time(event.get("end_time"))
        score = _score(event.get("score"))
        top_score = _score(event.get("top_score"))
    except ValueError as error:
        return Rejection("bad_event", str(error))
    sub_label = event.get("sub_label")
    if isinstance(sub_label, list) and sub_label:
        sub_label = sub_label[0]
    return CameraEventPayload(
        event_id=event_id.strip(),
        type=kind,
        label=_text(event.get("label")),
        sub_label=_text(sub_label, 200),
        score=score,
        top_score=top_score,
        zones=_names(event.get("current_zones", event.get("zones"))),
        entered_zones=_names(event.get("entered_zones")),
        started_at=started_at,
        ended_at=ended_at,
        data=event,
    )


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        if 0 <= value < 32503680000:  # before year 3000
            return datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
    raise ValueError(f"time {_shown(value)} is neither epoch seconds nor an RFC 3339 date-time with an offset")


def _score(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    raise ValueError(f"score {_shown(value)} is not a number within 0..1")


def _text(value: Any, limit: int = _TEXT_MAX) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().replace("\x00", "")[:limit]


def _names(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [name for item in value[:100] if (name := _text(item)) is not None]


def _shown(value: Any) -> str:
    return repr(value)[:80]

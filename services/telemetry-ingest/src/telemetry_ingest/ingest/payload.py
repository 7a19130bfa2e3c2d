"""Parsing of telemetry topics, reading payloads and EMQX rule-engine bodies: pure functions, no I/O.

These rules are what devices and integrators can rely on.

Topic
    `tenants/{tenant}/devices/{device_id}/sensors/{sensor_type}`, exactly six levels. The tenant is a tenant
    slug (`TENANT_SLUG_PATTERN`: a lower-case letter, then up to 47 of `a-z 0-9 _ -`). A device id and a
    sensor type are each 1 to 128 characters of `A-Z a-z 0-9 _ . : -` (case-sensitive; no spaces, no `/`,
    no wildcards).

Payload
    One JSON object `{"value": 23.5, "unit": "celsius", "timestamp": "2025-10-17T10:30:00Z"}` or a JSON list of
    such objects. A list longer than `max_readings`, an empty list, malformed JSON and anything that is neither
    an object nor a list reject the whole message. Otherwise each reading is judged on its own: a bad one is
    rejected with a reason and its position in the list, the others are kept. Unknown fields are ignored.

    - `value`: a finite JSON number. Booleans, null, objects, lists and strings are rejected, numeric strings
      such as `"23.5"` included: a device that quotes its numbers has a bug worth seeing, and guessing would
      hide it. `NaN` and `Infinity` (not JSON, but written by some encoders) are rejected per reading.
    - `unit`: an optional string of at most 32 characters; missing, null or `""` mean no unit.
    - `timestamp`:
        * an ISO 8601 string, with `Z` or a UTC offset (`+03:00`). Without an offset the time is read as UTC;
          a date alone is midnight UTC. Digits beyond microseconds are dropped.
        * a JSON number of seconds or milliseconds since the Unix epoch, told apart by magnitude: below 1e11
          it is seconds (1e11 seconds is the year 5138), from 1e11 up to 1e14 it is milliseconds (1e11 ms is
          March 1973). Negative numbers and 1e14 or more (microseconds, nanoseconds) are rejected. Fractions
          are kept to the microsecond.
        * missing or null: `now`, the arrival time. Such a reading has no identity of its own, so a message
          delivered twice stores it twice; devices should send their own time.
      A time later than `now + max_future_skew` is rejected (a device clock gone wrong), and so is one earlier
      than `now - max_age` when `max_age` is set (it would fall outside the tenant's retention).
    Accepted times are timezone-aware UTC datetimes and values are floats.

EMQX rule-engine body
    What EMQX's HTTP action sends for `SELECT clientid as client_id, topic, payload, timestamp as ts`: a JSON
    object `{"client_id", "topic", "payload", "ts"}` or a list of them. `payload` is the MQTT payload rendered
    as a JSON string, or an object or list when the rule decoded it; `ts` is the arrival time at the broker in
    epoch milliseconds (numbers follow the epoch rule above; a digit string or an ISO 8601 string is accepted
    too). The names `clientid` and `timestamp` of `SELECT *` are accepted as well, and other keys are ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from math import isfinite
from typing import Any, Final, NamedTuple

import orjson

from mirante.auth.schemas import TENANT_SLUG_PATTERN
from telemetry_ingest.identifiers import IDENTIFIER_PATTERN, MAX_UNIT_LENGTH, TOPIC_TEMPLATE

EPOCH_MILLISECONDS_FROM: Final = 10**11
"""Epoch numbers from here on are milliseconds; below it they are seconds."""
EPOCH_MILLISECONDS_BELOW: Final = 10**14
"""Epoch numbers from here on (microseconds, nanoseconds) are rejected."""

_TENANT_RE = re.compile(TENANT_SLUG_PATTERN)
_IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN)
_MAX_TOPIC_LENGTH = len("tenants//devices//sensors/") + 48 + 2 * 128
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_MILLISECOND = timedelta(milliseconds=1)
_MISSING: Any = object()
_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}


@dataclass(frozen=True, slots=True)
class TopicRoute:
    """Where a topic points: tenant slug, device id and sensor type."""

    tenant: str
    device_id: str
    sensor: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why something was refused; `index` is the position in the list it came from, `None` for the whole."""

    reason: str
    index: int | None = None


class Reading(NamedTuple):
    """One accepted reading: UTC-aware time, value and optional unit."""

    ts: datetime
    value: float
    unit: str | None


class ParsedPayload(NamedTuple):
    """The readings accepted from one payload and the rejections, in payload order."""

    readings: list[Reading]
    rejections: list[Rejection]


@dataclass(frozen=True, slots=True)
class EmqxMessage:
    """One message of an EMQX rule-engine body.

    `payload` is the MQTT payload as bytes (an already decoded payload is encoded back to JSON), ready for
    `parse_readings`; `received_at` is the broker's arrival time, `None` when the body did not carry one.
    """

    topic: str
    payload: bytes
    client_id: str | None
    received_at: datetime | None


class _BadTimestampError(ValueError):
    """A timestamp that cannot be read; the message is the rejection reason."""


def parse_topic(topic: str) -> TopicRoute | Rejection:
    """Split `tenants/{tenant}/devices/{device_id}/sensors/{sensor_type}` into a route, or say what is wrong.

    See the module documentation for the rules. Results are cached: devices publish to few topics, often.
    """
    if not isinstance(topic, str):
        return Rejection(f"topic must be a string, got {_json_type(topic)}")
    if len(topic) > _MAX_TOPIC_LENGTH:
        return Rejection(f"topic {_show(topic)} is longer than {_MAX_TOPIC_LENGTH} characters")
    return _parse_topic(topic)


@lru_cache(maxsize=16384)
def _parse_topic(topic: str) -> TopicRoute | Rejection:
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != "tenants" or parts[2] != "devices" or parts[4] != "sensors":
        return Rejection(f"topic {_show(topic)} does not match {TOPIC_TEMPLATE}")
    tenant, device_id, sensor = parts[1], parts[3], parts[5]
    if _TENANT_RE.fullmatch(tenant) is None:
        return Rejection(f"invalid tenant {_show(tenant)} in topic: a lower-case letter, then up to 47 of a-z 0-9 _ -")
    if _IDENTIFIER_RE.fullmatch(device_id) is None:
        return Rejection(f"invalid device id {_show(device_id)} in topic: 1 to 128 of A-Z a-z 0-9 _ . : -")
    if _IDENTIFIER_RE.fullmatch(sensor) is None:
        return Rejection(f"invalid sensor type {_show(sensor)} in topic: 1 to 128 of A-Z a-z 0-9 _ . : -")
    return TopicRoute(tenant, device_id, sensor)


def parse_readings(
    payload: bytes | bytearray | memoryview | str,
    *,
    now: datetime,
    max_future_skew: timedelta,
    max_age: timedelta | None,
    max_readings: int,
) -> ParsedPayload:
    """Read the readings of one message payload; bad readings become rejections, the rest are kept.

    `now` (timezone-aware) is the arrival time: the time of readings without one, and the reference of the
    `max_future_skew` and `max_age` checks. See the module documentation for the rules.
    Raises `ValueError` only for bad arguments (naive `now`, `max_readings` below 1).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if max_readings < 1:
        raise ValueError("max_readings must be at least 1")
    if not payload:
        return ParsedPayload([], [Rejection("empty payload")])
    lenient = False
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        document = _lenient_json(payload, str(exc))
        if document is _MISSING:
            return ParsedPayload([], [Rejection(f"malformed JSON: {exc}")])
        lenient = True

    items: list[Any]
    if type(document) is dict:
        items, indexed = [document], False
    elif type(document) is list:
        if len(document) > max_readings:
            reason = f"the message holds {len(document)} readings, more than the limit of {max_readings}"
            return ParsedPayload([], [Rejection(reason)])
        if not document:
            return ParsedPayload([], [Rejection("the message holds an empty list, no readings")])
        items, indexed = document, True
    else:
        reason = f"payload must be a JSON object or a list of objects, got {_json_type(document)}"
        return ParsedPayload([], [Rejection(reason)])

    if now.tzinfo is not UTC:
        now = now.astimezone(UTC)
    latest = now + max_future_skew
    earliest = None if max_age is None else now - max_age
    readings: list[Reading] = []
    rejections: list[Rejection] = []
    append_reading = readings.append
    reject = rejections.append
    for position, item in enumerate(items):
        index = position if indexed else None
        if type(item) is not dict:
            reject(Rejection(f"reading must be a JSON object, got {_json_type(item)}", index))
            continue

        value = item.get("value", _MISSING)
        value_type = type(value)
        if value_type is float:
            if not isfinite(value):
                reject(Rejection(f"value must be a finite number, got {value}", index))
                continue
        elif value_type is int:
            try:
                value = float(value)
            except OverflowError:
                reject(Rejection("value is too large for a double-precision number", index))
                continue
        else:
            reject(Rejection(_value_reason(value), index))
            continue

        raw_ts = item.get("timestamp")
        if raw_ts is None:
            ts = now
        else:
            try:
                ts = _parse_timestamp(raw_ts)
            except _BadTimestampError as exc:
                reject(Rejection(str(exc), index))
                continue
            if ts > latest:
                reason = f"timestamp {ts.isoformat()} is more than {_describe(max_future_skew)} in the future"
                reject(Rejection(reason, index))
                continue
            if earliest is not None and ts < earliest:
                reason = f"timestamp {ts.isoformat()} is older than the retention of {_describe(now - earliest)}"
                reject(Rejection(reason, index))
                continue

        unit = item.get("unit")
        if unit is not None:
            if type(unit) is not str:
                reject(Rejection(f"unit must be a string, got {_json_type(unit)}", index))
                continue
            if len(unit) > MAX_UNIT_LENGTH:
                reject(Rejection(f"unit {_show(unit)} is longer than {MAX_UNIT_LENGTH} characters", index))
                continue
            if not unit:
                unit = None
            elif "\x00" in unit:
                # PostgreSQL text cannot hold NUL: caught here, the reading is rejected instead of the whole batch.
                reject(Rejection("unit contains a NUL character", index))
                continue
            elif lenient and not _is_text(unit):
                reject(Rejection("unit is not valid Unicode text", index))
                continue
        append_reading(Reading(ts, value, unit))
    return ParsedPayload(readings, rejections)


def parse_emqx_rule_body(
    body: bytes | bytearray | memoryview | str | dict[str, Any] | list[Any], *, max_messages: int | None = None
) -> list[EmqxMessage | Rejection]:
    """Read an EMQX rule-engine HTTP action body (raw, or already decoded) into messages, in body order.

    A message that cannot be used (not an object, no topic, a bad `ts`) becomes a `Rejection` with its
    position; a body that is not JSON, an empty list, a list longer than `max_messages` or anything that is
    neither object nor list gives a single `Rejection` with index `None`. Topic and payload are not checked
    here: pass them to `parse_topic` and `parse_readings`.
    """
    if isinstance(body, bytes | bytearray | memoryview | str):
        if not body:
            return [Rejection("empty body")]
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return [Rejection(f"malformed JSON body: {exc}")]
    else:
        document = body

    items: list[Any]
    if isinstance(document, dict):
        items, indexed = [document], False
    elif isinstance(document, list):
        if not document:
            return [Rejection("the body holds an empty list, no messages")]
        if max_messages is not None and len(document) > max_messages:
            return [Rejection(f"the body holds {len(document)} messages, more than the limit of {max_messages}")]
        items, indexed = document, True
    else:
        return [Rejection(f"body must be a JSON object or a list of objects, got {_json_type(document)}")]

    results: list[EmqxMessage | Rejection] = []
    for position, item in enumerate(items):
        index = position if indexed else None
        if not isinstance(item, dict):
            results.append(Rejection(f"message must be a JSON object, got {_json_type(item)}", index))
            continue
        topic = item.get("topic")
        if not isinstance(topic, str) or not topic:
            results.append(Rejection("message has no topic", index))
            continue
        raw_ts = item.get("ts", item.get("timestamp"))
        received_at: datetime | None = None
        if raw_ts is not None:
            if isinstance(raw_ts, str) and raw_ts.isascii() and raw_ts.isdigit():
                raw_ts = int(raw_ts)
            try:
                received_at = _parse_timestamp(raw_ts)
            except _BadTimestampError as exc:
                results.append(Rejection(f"invalid ts: {exc}", index))
                continue
        try:
            payload = _payload_bytes(item.get("payload"))
        except TypeError as exc:
            results.append(Rejection(f"payload cannot be encoded as JSON: {exc}", index))
            continue
        client_id = item.get("client_id", item.get("clientid"))
        results.append(
            EmqxMessage(
                topic=topic,
                payload=payload,
                client_id=client_id if isinstance(client_id, str) else None,
                received_at=received_at,
            )
        )
    return results


def _parse_timestamp(raw: object) -> datetime:
    if type(raw) is str:
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise _BadTimestampError(
                f"unparseable timestamp {_show(raw)}: use ISO 8601 or epoch seconds or milliseconds"
            ) from None
        zone = parsed.tzinfo
        if zone is UTC:
            return parsed
        if zone is None:
            return parsed.replace(tzinfo=UTC)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise _BadTimestampError(f"timestamp {_show(raw)} is out of range") from None
    if type(raw) is int:
        if 0 <= raw < EPOCH_MILLISECONDS_FROM:
            return _EPOCH + _SECOND * raw
        if EPOCH_MILLISECONDS_FROM <= raw < EPOCH_MILLISECONDS_BELOW:
            return _EPOCH + _MILLISECOND * raw
    elif type(raw) is float:
        # Written as two ranges so that NaN, which compares false with everything, falls through.
        if 0 <= raw < EPOCH_MILLISECONDS_FROM:
            return _EPOCH + timedelta(seconds=raw)
        if EPOCH_MILLISECONDS_FROM <= raw < EPOCH_MILLISECONDS_BELOW:
            return _EPOCH + timedelta(milliseconds=raw)
    else:
        raise _BadTimestampError(f"timestamp must be an ISO 8601 string or a number, got {_json_type(raw)}")
    raise _BadTimestampError(
        f"epoch timestamp {raw} is out of range: seconds below 1e11 or milliseconds below 1e14, not negative"
    )


def _payload_bytes(payload: object) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, str):
        # Lone surrogates stay invalid UTF-8, so parse_readings reports them as malformed JSON.
        return payload.encode("utf-8", "surrogatepass")
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    return orjson.dumps(payload)


def _lenient_json(payload: bytes | bytearray | memoryview | str, error: str) -> Any:
    """Retry with the standard library only for `NaN`, `Infinity` or an overflowing number, so that just the
    readings that carry them are rejected; anything else stays malformed."""
    raw = bytes(payload) if isinstance(payload, memoryview) else payload
    if isinstance(raw, str):
        has_constant = "NaN" in raw or "Infinity" in raw
    else:
        has_constant = b"NaN" in raw or b"Infinity" in raw
    if not has_constant and "infinity" not in error:
        return _MISSING
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return _MISSING


def _value_reason(value: object) -> str:
    if value is _MISSING:
        return "missing value"
    if value is None:
        return "value is null, a number is required"
    if isinstance(value, bool):
        return "value must be a number, got a boolean"
    if isinstance(value, str):
        return f"value must be a number, got the string {_show(value)} (numbers in quotes are not accepted)"
    return f"value must be a number, got {_json_type(value)}"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _show(text: str) -> str:
    return repr(text if len(text) <= 64 else text[:61] + "...")


def _describe(period: timedelta) -> str:
    seconds = int(period.total_seconds())
    if seconds and seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    return f"{seconds} s"


def _is_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

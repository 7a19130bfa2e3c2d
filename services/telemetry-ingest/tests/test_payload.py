"""Topic, reading-payload and EMQX-body parsing: the rules devices and integrators rely on, good and bad."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from telemetry_ingest.ingest.payload import (
    EmqxMessage,
    ParsedPayload,
    Reading,
    Rejection,
    TopicRoute,
    parse_emqx_rule_body,
    parse_readings,
    parse_topic,
)

NOW = datetime(2025, 10, 17, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)
MAX_AGE = timedelta(days=30)
LIMITS: dict[str, Any] = {"now": NOW, "max_future_skew": SKEW, "max_age": MAX_AGE, "max_readings": 10}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def parse(payload: bytes | str, **overrides: Any) -> ParsedPayload:
    return parse_readings(payload, **{**LIMITS, **overrides})


# --- topics -----------------------------------------------------------------------------------------------

GOOD_TOPICS = [
    ("tenants/umc/devices/hvac-001/sensors/temperature", TopicRoute("umc", "hvac-001", "temperature")),
    ("tenants/a1_b-c/devices/AHU.01:zone_2/sensors/co2", TopicRoute("a1_b-c", "AHU.01:zone_2", "co2")),
    ("tenants/x/devices/D/sensors/s", TopicRoute("x", "D", "s")),
    (f"tenants/{'t' * 48}/devices/{'d' * 128}/sensors/{'s' * 128}", TopicRoute("t" * 48, "d" * 128, "s" * 128)),
]


@pytest.mark.parametrize(("topic", "route"), GOOD_TOPICS)
def test_parse_topic_accepts(topic: str, route: TopicRoute) -> None:
    assert parse_topic(topic) == route


BAD_TOPICS = [
    ("", "does not match"),
    ("tenants/umc/devices/hvac/sensors", "does not match"),
    ("tenants/umc/devices/hvac/sensors/temp/extra", "does not match"),
    ("/tenants/umc/devices/hvac/sensors/temp", "does not match"),
    ("tenants/umc/devices/hvac/sensors/temp/", "does not match"),
    ("tenant/umc/devices/hvac/sensors/temp", "does not match"),
    ("tenants/umc/device/hvac/sensors/temp", "does not match"),
    ("tenants/umc/devices/hvac/sensor/temp", "does not match"),
    ("Tenants/umc/devices/hvac/sensors/temp", "does not match"),
    ("tenants//devices/hvac/sensors/temp", "invalid tenant ''"),
    ("tenants/UMC/devices/hvac/sensors/temp", "invalid tenant 'UMC'"),
    ("tenants/1umc/devices/hvac/sensors/temp", "invalid tenant"),
    ("tenants/u.mc/devices/hvac/sensors/temp", "invalid tenant"),
    (f"tenants/{'t' * 49}/devices/hvac/sensors/temp", "invalid tenant"),
    ("tenants/umc\n/devices/hvac/sensors/temp", "invalid tenant"),
    ("tenants/umc/devices//sensors/temp", "invalid device id ''"),
    ("tenants/umc/devices/hvac 001/sensors/temp", "invalid device id"),
    ("tenants/umc/devices/+/sensors/temp", "invalid device id '+'"),
    ("tenants/umc/devices/#/sensors/temp", "invalid device id"),
    ("tenants/umc/devices/caldeira-é/sensors/temp", "invalid device id"),
    ("tenants/umc/devices/hvac\n/sensors/temp", "invalid device id"),
    (f"tenants/umc/devices/{'d' * 129}/sensors/temp", "invalid device id"),
    ("tenants/umc/devices/hvac/sensors/", "invalid sensor type ''"),
    ("tenants/umc/devices/hvac/sensors/temp erature", "invalid sensor type"),
    ("tenants/umc/devices/hvac/sensors/temp$", "invalid sensor type"),
    (f"tenants/umc/devices/hvac/sensors/{'s' * 129}", "invalid sensor type"),
    ("tenants/umc/devices/" + "d" * 5000 + "/sensors/temp", "longer than"),
]


@pytest.mark.parametrize(("topic", "reason"), BAD_TOPICS)
def test_parse_topic_rejects(topic: str, reason: str) -> None:
    result = parse_topic(topic)
    assert isinstance(result, Rejection)
    assert reason in result.reason
    assert result.index is None
    assert len(result.reason) < 300


def test_parse_topic_rejects_a_non_string() -> None:
    result = parse_topic(42)  # type: ignore[arg-type]
    assert result == Rejection("topic must be a string, got a number")


# --- readings: accepted ------------------------------------------------------------------------------------

GOOD_PAYLOADS: list[tuple[str, bytes | str, dict[str, Any], list[Reading]]] = [
    (
        "seed example",
        b'{"value": 23.5, "unit": "celsius", "timestamp": "2025-10-17T10:30:00Z"}',
        {},
        [Reading(utc(2025, 10, 17, 10, 30), 23.5, "celsius")],
    ),
    (
        "offset converted to UTC",
        b'{"value": 1, "timestamp": "2025-10-17T13:30:00+03:00"}',
        {},
        [Reading(utc(2025, 10, 17, 10, 30), 1.0, None)],
    ),
    (
        "negative offset without colon",
        b'{"value": 1, "timestamp": "2025-10-17T07:30:00-0300"}',
        {},
        [Reading(utc(2025, 10, 17, 10, 30), 1.0, None)],
    ),
    (
        "naive time is UTC",
        b'{"value": 1, "timestamp": "2025-10-17T10:30:00"}',
        {},
        [Reading(utc(2025, 10, 17, 10, 30), 1.0, None)],
    ),
    (
        "space separator and milliseconds",
        b'{"value": 1, "timestamp": "2025-10-17 10:30:00.250Z"}',
        {},
        [Reading(utc(2025, 10, 17, 10, 30, 0, 250000), 1.0, None)],
    ),
    (
        "nanoseconds truncated to microseconds",
        b'{"value": 1, "timestamp": "2025-10-17T10:30:00.123456789Z"}',
        {},
        [Reading(utc(2025, 10, 17, 10, 30, 0, 123456), 1.0, None)],
    ),
    (
        "basic ISO format",
        b'{"value": 1, "timestamp": "20251017T103000Z"}',
        {},
        [Reading(utc(2025, 10, 17, 10, 30), 1.0, None)],
    ),
    (
        "date alone is midnight UTC",
        b'{"value": 1, "timestamp": "2025-10-17"}',
        {},
        [Reading(utc(2025, 10, 17), 1.0, None)],
    ),
    (
        "epoch seconds",
        b'{"value": 1, "timestamp": 1760698800}',
        {},
        [Reading(utc(2025, 10, 17, 11), 1.0, None)],
    ),
    (
        "epoch seconds with a fraction",
        b'{"value": 1, "timestamp": 1760698800.25}',
        {},
        [Reading(utc(2025, 10, 17, 11, 0, 0, 250000), 1.0, None)],
    ),
    (
        "epoch milliseconds",
        b'{"value": 1, "timestamp": 1760698800123}',
        {},
        [Reading(utc(2025, 10, 17, 11, 0, 0, 123000), 1.0, None)],
    ),
    (
        "epoch milliseconds with a fraction",
        b'{"value": 1, "timestamp": 1760698800123.5}',
        {},
        [Reading(utc(2025, 10, 17, 11, 0, 0, 123500), 1.0, None)],
    ),
    (
        "largest number read as seconds",
        b'{"value": 1, "timestamp": 99999999999}',
        {"now": utc(5138, 11, 16, 9, 46, 39), "max_age": None},
        [Reading(utc(5138, 11, 16, 9, 46, 39), 1.0, None)],
    ),
    (
        "smallest number read as milliseconds",
        b'{"value": 1, "timestamp": 100000000000}',
        {"max_age": None},
        [Reading(utc(1973, 3, 3, 9, 46, 40), 1.0, None)],
    ),
    (
        "epoch zero without retention",
        b'{"value": 1, "timestamp": 0}',
        {"max_age": None},
        [Reading(utc(1970, 1, 1), 1.0, None)],
    ),
    ("missing timestamp is now", b'{"value": 1}', {}, [Reading(NOW, 1.0, None)]),
    ("null timestamp is now", b'{"value": 1, "timestamp": null}', {}, [Reading(NOW, 1.0, None)]),
    (
        "now in another zone is the same instant",
        b'{"value": 1}',
        {"now": datetime(2025, 10, 17, 14, 0, tzinfo=timezone(timedelta(hours=2)))},
        [Reading(NOW, 1.0, None)],
    ),
    ("null unit", b'{"value": 1, "unit": null}', {}, [Reading(NOW, 1.0, None)]),
    ("empty unit", b'{"value": 1, "unit": ""}', {}, [Reading(NOW, 1.0, None)]),
    ("unit of 32 characters", b'{"value": 1, "unit": "' + b"u" * 32 + b'"}', {}, [Reading(NOW, 1.0, "u" * 32)]),
    ("non-ASCII unit", '{"value": 1, "unit": "°C"}'.encode(), {}, [Reading(NOW, 1.0, "°C")]),
    ("integer value becomes float", b'{"value": 21}', {}, [Reading(NOW, 21.0, None)]),
    ("negative value", b'{"value": -40.5}', {}, [Reading(NOW, -40.5, None)]),
    ("zero", b'{"value": 0}', {}, [Reading(NOW, 0.0, None)]),
    ("huge finite value", b'{"value": 1e300}', {}, [Reading(NOW, 1e300, None)]),
    ("big integer", b'{"value": 123456789012345678901234567890}', {}, [Reading(NOW, 1.2345678901234568e29, None)]),
    (
        "unknown fields ignored",
        b'{"value": 2, "quality": "good", "meta": {"fw": "1.2"}, "ts": "ignored", "unit": "bar"}',
        {},
        [Reading(NOW, 2.0, "bar")],
    ),
    (
        "a list of readings",
        b'[{"value": 1, "timestamp": 1760698800}, {"value": 2, "timestamp": 1760698801, "unit": "kW"}]',
        {},
        [Reading(utc(2025, 10, 17, 11), 1.0, None), Reading(utc(2025, 10, 17, 11, 0, 1), 2.0, "kW")],
    ),
    (
        "a list of exactly max_readings",
        orjson.dumps([{"value": i} for i in range(10)]),
        {},
        [Reading(NOW, float(i), None) for i in range(10)],
    ),
    (
        "exactly at the future limit",
        b'{"value": 1, "timestamp": "2025-10-17T12:05:00Z"}',
        {},
        [Reading(utc(2025, 10, 17, 12, 5), 1.0, None)],
    ),
    (
        "exactly at the retention limit",
        b'{"value": 1, "timestamp": "2025-09-17T12:00:00Z"}',
        {},
        [Reading(utc(2025, 9, 17, 12), 1.0, None)],
    ),
    (
        "no retention limit",
        b'{"value": 1, "timestamp": "2001-01-01T00:00:00Z"}',
        {"max_age": None},
        [Reading(utc(2001, 1, 1), 1.0, None)],
    ),
    (
        "zero skew accepts now",
        b'{"value": 1, "timestamp": "2025-10-17T12:00:00Z"}',
        {"max_future_skew": timedelta(0)},
        [Reading(NOW, 1.0, None)],
    ),
    ("payload given as str", '{"value": 1.5}', {}, [Reading(NOW, 1.5, None)]),
    ("whitespace around JSON", b'  \n{"value": 1.5}\n', {}, [Reading(NOW, 1.5, None)]),
]


@pytest.mark.parametrize(
    ("payload", "overrides", "readings"),
    [case[1:] for case in GOOD_PAYLOADS],
    ids=[case[0] for case in GOOD_PAYLOADS],
)
def test_parse_readings_accepts(payload: bytes | str, overrides: dict[str, Any], readings: list[Reading]) -> None:
    result = parse(payload, **overrides)
    assert result.rejections == []
    assert result.readings == readings
    for reading in result.readings:
        assert reading.ts.utcoffset() == timedelta(0)
        assert type(reading.value) is float


def test_parse_readings_accepts_bytearray_and_memoryview() -> None:
    raw = b'{"value": 3, "timestamp": 1760698800}'
    expected = [Reading(utc(2025, 10, 17, 11), 3.0, None)]
    assert parse(bytearray(raw)).readings == expected  # type: ignore[arg-type]
    assert parse_readings(memoryview(raw), **LIMITS).readings == expected


# --- readings: whole message rejected ----------------------------------------------------------------------

BAD_MESSAGES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "empty payload"),
    ("truncated", b'{"value": 1', "malformed JSON"),
    ("not JSON", b"temperature=21.5", "malformed JSON"),
    ("trailing garbage", b'{"value": 1} x', "malformed JSON"),
    ("single quotes", b"{'value': 1}", "malformed JSON"),
    ("trailing comma", b'[{"value": 1},]', "malformed JSON"),
    ("invalid UTF-8", b'{"value": 1, "unit": "\xff"}', "malformed JSON"),
    ("lone surrogate in a string", b'{"value": 1, "unit": "\\ud800"}', "malformed JSON"),
    ("bare number", b"23.5", "got a number"),
    ("bare string", b'"23.5"', "got a string"),
    ("null", b"null", "got null"),
    ("boolean", b"true", "got a boolean"),
    ("bare NaN", b"NaN", "got a number"),
    ("empty list", b"[]", "empty list"),
    ("list over the limit", orjson.dumps([{"value": i} for i in range(11)]), "11 readings, more than the limit of 10"),
    ("over the limit, even if all bad", orjson.dumps([None] * 11), "more than the limit"),
]


@pytest.mark.parametrize(
    ("payload", "reason"), [case[1:] for case in BAD_MESSAGES], ids=[case[0] for case in BAD_MESSAGES]
)
def test_parse_readings_rejects_the_message(payload: bytes, reason: str) -> None:
    result = parse(payload)
    assert result.readings == []
    assert len(result.rejections) == 1
    assert reason in result.rejections[0].reason
    assert result.rejections[0].index is None


# --- readings: one reading rejected ------------------------------------------------------------------------

BAD_READINGS: list[tuple[str, str, str]] = [
    ("missing value", '{"unit": "celsius"}', "missing value"),
    ("null value", '{"value": null}', "value is null"),
    ("true", '{"value": true}', "got a boolean"),
    ("false", '{"value": false}', "got a boolean"),
    ("numeric string", '{"value": "23.5"}', "got the string '23.5' (numbers in quotes are not accepted)"),
    ("text", '{"value": "n/a"}', "got the string 'n/a'"),
    ("object", '{"value": {"v": 1}}', "got an object"),
    ("list", '{"value": [1]}', "got a list"),
    ("NaN", '{"value": NaN}', "finite number, got nan"),
    ("Infinity", '{"value": Infinity}', "finite number, got inf"),
    ("-Infinity", '{"value": -Infinity}', "finite number, got -inf"),
    ("overflowing float", '{"value": 1e400}', "finite number, got inf"),
    ("overflowing integer", '{"value": 1' + "0" * 400 + "}", "too large"),
    ("unparseable timestamp", '{"value": 1, "timestamp": "yesterday"}', "unparseable timestamp 'yesterday'"),
    ("impossible date", '{"value": 1, "timestamp": "2025-13-01T00:00:00Z"}', "unparseable timestamp"),
    ("empty timestamp", '{"value": 1, "timestamp": ""}', "unparseable timestamp ''"),
    ("NUL in unit", '{"value": 1, "unit": "deg\\u0000C"}', "unit contains a NUL character"),
    ("epoch in a string", '{"value": 1, "timestamp": "1760698800"}', "unparseable timestamp"),
    ("leap second", '{"value": 1, "timestamp": "2016-12-31T23:59:60Z"}', "unparseable timestamp"),
    ("boolean timestamp", '{"value": 1, "timestamp": true}', "ISO 8601 string or a number, got a boolean"),
    ("object timestamp", '{"value": 1, "timestamp": {"s": 1}}', "got an object"),
    ("negative epoch", '{"value": 1, "timestamp": -1}', "out of range"),
    ("negative epoch float", '{"value": 1, "timestamp": -0.5}', "out of range"),
    ("epoch microseconds", '{"value": 1, "timestamp": 1760698800000000}', "out of range"),
    ("epoch nanoseconds", '{"value": 1, "timestamp": 1760698800000000000}', "out of range"),
    ("NaN timestamp", '{"value": 1, "timestamp": NaN}', "out of range"),
    ("overflowing offset", '{"value": 1, "timestamp": "0001-01-01T00:00:00+01:00"}', "out of range"),
    (
        "just past the future limit",
        '{"value": 1, "timestamp": "2025-10-17T12:05:00.001Z"}',
        "timestamp 2025-10-17T12:05:00.001000+00:00 is more than 300 s in the future",
    ),
    ("far future", '{"value": 1, "timestamp": "2099-01-01T00:00:00Z"}', "in the future"),
    ("far future epoch", '{"value": 1, "timestamp": 4070908800}', "in the future"),
    (
        "just past retention",
        '{"value": 1, "timestamp": "2025-09-17T11:59:59Z"}',
        "is older than the retention of 30 days",
    ),
    ("epoch zero", '{"value": 1, "timestamp": 0}', "older than the retention"),
    ("numeric unit", '{"value": 1, "unit": 5}', "unit must be a string, got a number"),
    ("list unit", '{"value": 1, "unit": ["C"]}', "unit must be a string, got a list"),
    ("long unit", '{"value": 1, "unit": "' + "u" * 33 + '"}', "longer than 32 characters"),
]


@pytest.mark.parametrize(
    ("item", "reason"), [case[1:] for case in BAD_READINGS], ids=[case[0] for case in BAD_READINGS]
)
def test_parse_readings_rejects_one_reading(item: str, reason: str) -> None:
    alone = parse(item)
    assert alone.readings == []
    assert [rejection.index for rejection in alone.rejections] == [None]
    assert reason in alone.rejections[0].reason

    in_list = parse(f'[{{"value": 1, "timestamp": 1760698800}}, {item}, {{"value": 2}}]')
    assert in_list.readings == [Reading(utc(2025, 10, 17, 11), 1.0, None), Reading(NOW, 2.0, None)]
    assert [rejection.index for rejection in in_list.rejections] == [1]
    assert reason in in_list.rejections[0].reason


@pytest.mark.parametrize(
    ("item", "kind"),
    [("5", "a number"), ('"x"', "a string"), ("null", "null"), ("[]", "a list"), ("true", "a boolean")],
)
def test_list_items_that_are_not_objects_are_rejected(item: str, kind: str) -> None:
    result = parse(f'[{item}, {{"value": 7}}]')
    assert result.readings == [Reading(NOW, 7.0, None)]
    assert result.rejections == [Rejection(f"reading must be a JSON object, got {kind}", 0)]


def test_mixed_list_keeps_order_and_positions() -> None:
    payload = orjson.dumps(
        [
            {"value": 1.0, "timestamp": "2025-10-17T11:00:00Z"},
            {"value": "bad"},
            {"value": 2.0, "timestamp": 1760698860},
            {"value": 3.0, "timestamp": "2099-01-01T00:00:00Z"},
            {"value": 4.0, "timestamp": 1760698920000, "unit": "kW"},
            7,
        ]
    )
    result = parse(payload)
    assert result.readings == [
        Reading(utc(2025, 10, 17, 11), 1.0, None),
        Reading(utc(2025, 10, 17, 11, 1), 2.0, None),
        Reading(utc(2025, 10, 17, 11, 2), 4.0, "kW"),
    ]
    assert [rejection.index for rejection in result.rejections] == [1, 3, 5]


def test_lone_surrogate_in_unit_is_rejected_on_the_lenient_path() -> None:
    # NaN sends the payload through the standard-library parser, which lets lone surrogates through.
    result = parse(b'[{"value": NaN}, {"value": 1, "unit": "\\ud800"}, {"value": 2, "unit": "C"}]')
    assert result.readings == [Reading(NOW, 2.0, "C")]
    assert [(rejection.index, rejection.reason) for rejection in result.rejections] == [
        (0, "value must be a finite number, got nan"),
        (1, "unit is not valid Unicode text"),
    ]


def test_deep_nesting_is_malformed_not_a_crash() -> None:
    result = parse(b"[" * 100_000 + b"NaN" + b"]" * 100_000, max_readings=10)
    assert result.readings == []
    assert len(result.rejections) == 1
    assert "malformed JSON" in result.rejections[0].reason


def test_retention_reason_names_a_period_below_a_day_in_seconds() -> None:
    result = parse(b'{"value": 1, "timestamp": "2025-10-17T11:00:00Z"}', max_age=timedelta(minutes=10))
    assert result.rejections == [
        Rejection("timestamp 2025-10-17T11:00:00+00:00 is older than the retention of 600 s", None)
    ]


def test_long_values_are_clipped_in_reasons() -> None:
    result = parse(orjson.dumps({"value": "x" * 10_000}))
    assert len(result.rejections[0].reason) < 200


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"now": datetime(2025, 10, 17, 12, 0)}, "timezone-aware"),
        ({"max_readings": 0}, "max_readings"),
    ],
)
def test_bad_arguments_raise(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(b'{"value": 1}', **overrides)


# --- EMQX rule-engine bodies -------------------------------------------------------------------------------

SEED_BODY = (
    b'{"ts":1718000000123,"topic":"tenants/umc/devices/d-001/sensors/temp",'
    b'"payload":"{\\"value\\":21.5,\\"unit\\":\\"C\\"}","client_id":"d-001"}'
)
ARRIVAL = utc(2024, 6, 10, 6, 13, 20, 123000)


def test_emqx_seed_body() -> None:
    assert parse_emqx_rule_body(SEED_BODY) == [
        EmqxMessage(
            topic="tenants/umc/devices/d-001/sensors/temp",
            payload=b'{"value":21.5,"unit":"C"}',
            client_id="d-001",
            received_at=ARRIVAL,
        )
    ]


GOOD_EMQX_ITEMS: list[tuple[str, dict[str, Any], EmqxMessage]] = [
    (
        "decoded object payload",
        {"topic": "t/1", "payload": {"value": 1}, "ts": 1718000000123, "client_id": "c"},
        EmqxMessage("t/1", b'{"value":1}', "c", ARRIVAL),
    ),
    (
        "decoded list payload",
        {"topic": "t/1", "payload": [{"value": 1}, {"value": 2}]},
        EmqxMessage("t/1", b'[{"value":1},{"value":2}]', None, None),
    ),
    (
        "SELECT * names",
        {"topic": "t/1", "payload": "{}", "timestamp": 1718000000123, "clientid": "emqx_c", "qos": 1, "node": "n"},
        EmqxMessage("t/1", b"{}", "emqx_c", ARRIVAL),
    ),
    ("no payload", {"topic": "t/1"}, EmqxMessage("t/1", b"", None, None)),
    ("null payload", {"topic": "t/1", "payload": None}, EmqxMessage("t/1", b"", None, None)),
    ("non-JSON text payload", {"topic": "t/1", "payload": "21.5"}, EmqxMessage("t/1", b"21.5", None, None)),
    ("number payload", {"topic": "t/1", "payload": 21.5}, EmqxMessage("t/1", b"21.5", None, None)),
    ("ts as digit string", {"topic": "t/1", "ts": "1718000000123"}, EmqxMessage("t/1", b"", None, ARRIVAL)),
    ("ts as ISO string", {"topic": "t/1", "ts": "2024-06-10T06:13:20.123Z"}, EmqxMessage("t/1", b"", None, ARRIVAL)),
    ("null ts", {"topic": "t/1", "ts": None}, EmqxMessage("t/1", b"", None, None)),
    ("non-string client id", {"topic": "t/1", "client_id": 5}, EmqxMessage("t/1", b"", None, None)),
]


@pytest.mark.parametrize(
    ("item", "message"), [case[1:] for case in GOOD_EMQX_ITEMS], ids=[case[0] for case in GOOD_EMQX_ITEMS]
)
def test_emqx_items(item: dict[str, Any], message: EmqxMessage) -> None:
    assert parse_emqx_rule_body(orjson.dumps(item)) == [message]
    assert parse_emqx_rule_body(item) == [message]


BAD_EMQX_ITEMS: list[tuple[str, Any, str]] = [
    ("not an object", 5, "message must be a JSON object, got a number"),
    ("list item", [1], "message must be a JSON object, got a list"),
    ("no topic", {"payload": "{}"}, "message has no topic"),
    ("empty topic", {"topic": "", "payload": "{}"}, "message has no topic"),
    ("numeric topic", {"topic": 5, "payload": "{}"}, "message has no topic"),
    (
        "bad ts",
        {"topic": "t/1", "ts": "soon"},
        "invalid ts: unparseable timestamp 'soon': use ISO 8601 or epoch seconds or milliseconds",
    ),
    (
        "boolean ts",
        {"topic": "t/1", "ts": True},
        "invalid ts: timestamp must be an ISO 8601 string or a number, got a boolean",
    ),
    (
        "negative ts",
        {"topic": "t/1", "ts": -5},
        "invalid ts: epoch timestamp -5 is out of range: seconds below 1e11 or milliseconds below 1e14, not negative",
    ),
]


@pytest.mark.parametrize(
    ("item", "reason"), [case[1:] for case in BAD_EMQX_ITEMS], ids=[case[0] for case in BAD_EMQX_ITEMS]
)
def test_emqx_bad_items_are_rejected_by_position(item: Any, reason: str) -> None:
    good = {"topic": "t/ok", "payload": "{}"}
    if isinstance(item, dict):
        assert parse_emqx_rule_body(orjson.dumps(item)) == [Rejection(reason, None)]
    assert parse_emqx_rule_body(orjson.dumps([good, item, good])) == [
        EmqxMessage("t/ok", b"{}", None, None),
        Rejection(reason, 1),
        EmqxMessage("t/ok", b"{}", None, None),
    ]


def test_emqx_payload_that_cannot_be_encoded_is_rejected() -> None:
    result = parse_emqx_rule_body([{"topic": "t/1", "payload": {"value": 10**30}}])
    assert len(result) == 1
    assert isinstance(result[0], Rejection)
    assert result[0].index == 0
    assert result[0].reason.startswith("payload cannot be encoded as JSON")


BAD_EMQX_BODIES: list[tuple[str, Any, str]] = [
    ("empty", b"", "empty body"),
    ("malformed", b'{"topic": ', "malformed JSON body"),
    ("number", b"42", "body must be a JSON object or a list of objects, got a number"),
    ("string", b'"x"', "got a string"),
    ("null", b"null", "got null"),
    ("empty list", b"[]", "empty list"),
]


@pytest.mark.parametrize(
    ("body", "reason"), [case[1:] for case in BAD_EMQX_BODIES], ids=[case[0] for case in BAD_EMQX_BODIES]
)
def test_emqx_bad_bodies(body: bytes, reason: str) -> None:
    result = parse_emqx_rule_body(body)
    assert len(result) == 1
    assert isinstance(result[0], Rejection)
    assert reason in result[0].reason
    assert result[0].index is None


def test_emqx_batch_over_the_limit_is_rejected_whole() -> None:
    body = orjson.dumps([{"topic": "t/1", "payload": "{}"}] * 3)
    assert len(parse_emqx_rule_body(body, max_messages=3)) == 3
    assert parse_emqx_rule_body(body, max_messages=2) == [
        Rejection("the body holds 3 messages, more than the limit of 2", None)
    ]


def test_emqx_payload_string_with_lone_surrogate_stays_malformed() -> None:
    [message] = parse_emqx_rule_body([{"topic": "t/1", "payload": '{"value": 1, "unit": "\ud800"}'}])
    assert isinstance(message, EmqxMessage)
    result = parse(message.payload)
    assert result.readings == []
    assert "malformed JSON" in result.rejections[0].reason


def test_emqx_batch_end_to_end_with_arrival_time_as_now() -> None:
    body = orjson.dumps(
        [
            {
                "client_id": "hvac-001",
                "topic": "tenants/umc/devices/hvac-001/sensors/temperature",
                "payload": '[{"value": 21.5, "unit": "celsius", "timestamp": "2025-10-17T11:59:00Z"}, {"value": 22}]',
                "ts": 1760702340000,
            },
            {
                "client_id": "hvac-002",
                "topic": "tenants/umc/devices/hvac-002/sensors/humidity",
                "payload": '{"value": "wet"}',
                "ts": 1760702340500,
            },
            {"client_id": "x", "topic": "devices/x", "payload": '{"value": 1}', "ts": 1760702340600},
        ]
    )
    outcomes: list[object] = []
    for message in parse_emqx_rule_body(body):
        assert isinstance(message, EmqxMessage)
        route = parse_topic(message.topic)
        if isinstance(route, Rejection):
            outcomes.append(("unrouted", route.reason))
            continue
        assert message.received_at is not None
        parsed = parse(message.payload, now=message.received_at)
        outcomes.append((route, parsed.readings, parsed.rejections))

    assert outcomes == [
        (
            TopicRoute("umc", "hvac-001", "temperature"),
            [Reading(utc(2025, 10, 17, 11, 59), 21.5, "celsius"), Reading(utc(2025, 10, 17, 11, 59), 22.0, None)],
            [],
        ),
        (
            TopicRoute("umc", "hvac-002", "humidity"),
            [],
            [Rejection("value must be a number, got the string 'wet' (numbers in quotes are not accepted)", None)],
        ),
        ("unrouted", "topic 'devices/x' does not match tenants/{tenant}/devices/{device_id}/sensors/{sensor_type}"),
    ]

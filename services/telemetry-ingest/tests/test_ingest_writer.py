"""The telemetry writer against the real database: tenant routing, idempotence, latest by timestamp, lists,
every kind of bad input recorded with its reason (good readings of the same message kept), unknown tenants,
device registration events, partitions, the threshold hook, poison isolation, the tenant cache and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from telemetry_ingest.ingest import reasons
from telemetry_ingest.ingest import writer as writer_module
from telemetry_ingest.ingest.errors import describe_error, is_data_error, sqlstate
from telemetry_ingest.ingest.metrics import IngestMetrics
from telemetry_ingest.ingest.pipeline import ParseOptions, parse_message, topic_tenant
from telemetry_ingest.ingest.tenants import TenantDirectory
from telemetry_ingest.ingest.writer import (
    DEVICE_REGISTERED,
    MAX_STORED_PAYLOAD_BYTES,
    IngestMessage,
    TelemetryWriter,
    WriteResult,
    stored_payload,
)
from telemetry_ingest.tenancy.models import Tenant
from telemetry_ingest.tenancy.naming import partition_name, schema_for
from telemetry_ingest.tenancy.rows import ReadingRow
from telemetry_ingest.thresholds.cache import RuleCache
from telemetry_ingest.thresholds.evaluation import evaluate_thresholds

TenantFactory = Callable[..., Awaitable[str]]

NOW = datetime.now(UTC).replace(microsecond=0)
OPTIONS = ParseOptions(max_future_skew=timedelta(minutes=5), max_readings=10)


def topic(tenant: str, device: str = "dev-1", sensor: str = "temperature") -> str:
    return f"tenants/{tenant}/devices/{device}/sensors/{sensor}"


def reading(value: Any, minutes_ago: float, unit: str | None = "celsius") -> dict[str, Any]:
    return {"value": value, "unit": unit, "timestamp": (NOW - timedelta(minutes=minutes_ago)).isoformat()}


def dumps(document: Any) -> bytes:
    return orjson.dumps(document)


async def ingest(
    session: AsyncSession,
    writer: TelemetryWriter,
    messages: Sequence[tuple[str, bytes]],
    *,
    now: datetime = NOW,
    options: ParseOptions = OPTIONS,
) -> WriteResult:
    """Parse and store `(topic, payload)` pairs the way the MQTT pipeline does."""
    slugs = {slug for item_topic, _ in messages if (slug := topic_tenant(item_topic)) is not None}
    tenants = await writer.tenants.resolve(session, slugs)
    parsed = [
        parse_message("mqtt", item_topic, payload, tenants=tenants, now=now, options=options)
        for item_topic, payload in messages
    ]
    return await writer.write_isolating(session, parsed)


async def rows_of(session: AsyncSession, slug: str, table: str, columns: str, order: str) -> list[tuple[Any, ...]]:
    result = await session.execute(text(f'SELECT {columns} FROM "{schema_for(slug)}".{table} ORDER BY {order}'))
    return [tuple(row) for row in result]


async def readings_of(session: AsyncSession, slug: str) -> list[tuple[Any, ...]]:
    return await rows_of(session, slug, "readings", "device_id, sensor, ts, value, unit", "device_id, sensor, ts")


async def rejected_of(session: AsyncSession, slug: str) -> list[tuple[Any, ...]]:
    return await rows_of(session, slug, "rejected_readings", "source, topic, device_id, sensor, reason, payload", "id")


@pytest.fixture
def writer() -> TelemetryWriter:
    return TelemetryWriter()


async def test_readings_land_in_their_tenants_schema_only(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter
) -> None:
    first, second = await make_tenant(), await make_tenant()
    result = await ingest(
        db_session,
        writer,
        [
            (topic(first, "ahu-1"), dumps(reading(21.5, 3))),
            (topic(second, "ahu-1"), dumps(reading(30.25, 2))),
            (topic(first, "ahu-2", "humidity"), dumps(reading(48, 1, "percent"))),
        ],
    )

    assert await readings_of(db_session, first) == [
        ("ahu-1", "temperature", NOW - timedelta(minutes=3), 21.5, "celsius"),
        ("ahu-2", "humidity", NOW - timedelta(minutes=1), 48.0, "percent"),
    ]
    assert await readings_of(db_session, second) == [
        ("ahu-1", "temperature", NOW - timedelta(minutes=2), 30.25, "celsius")
    ]
    assert (result.tenants[first].received, result.tenants[first].written) == (2, 2)
    assert (result.tenants[second].received, result.tenants[second].written) == (1, 1)
    assert result.written == 3
    assert (result.duplicate, result.rejected, sum(result.unrouted.values())) == (0, 0, 0)


async def test_the_same_message_twice_is_stored_once_and_counted_as_duplicate(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter
) -> None:
    slug = await make_tenant()
    message = (topic(slug), dumps([reading(20.0, 2), reading(20.5, 1)]))

    first = await ingest(db_session, writer, [message])
    again = await ingest(db_session, writer, [message])
    within = await ingest(db_session, writer, [message, message])

    assert len(await readings_of(db_session, slug)) == 2
    assert (first.tenants[slug].written, first.tenants[slug].duplicate) == (2, 0)
    assert (again.tenants[slug].written, again.tenants[slug].duplicate) == (0, 2)
    assert (within.tenants[slug].received, within.tenants[slug].duplicate) == (4, 4)
    # The same time twice in one batch: the first is kept, the second is a duplicate.
    twin = await ingest(db_session, writer, [(topic(slug, "dev-2"), dumps([reading(1, 0), reading(2, 0)]))])
    assert (twin.tenants[slug].written, twin.tenants[slug].duplicate) == (1, 1)
    assert [row[3] for row in await readings_of(db_session, slug) if row[0] == "dev-2"] == [1.0]


async def test_latest_reading_is_the_newest_by_timestamp_not_by_arrival(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter
) -> None:
    slug = await make_tenant()
    latest = "device_id, sensor, ts, value"

    await ingest(db_session, writer, [(topic(slug), dumps(reading(25.0, 1)))])
    await ingest(db_session, writer, [(topic(slug), dumps(reading(19.0, 10)))])  # late reading arrives after
    assert await rows_of(db_session, slug, "latest_readings", latest, "sensor") == [
        ("dev-1", "temperature", NOW - timedelta(minutes=1), 25.0)
    ]

    # Out of order within one batch and within one list: the newest wins wherever it is.
    await ingest(
        db_session,
        writer,
        [
            (topic(slug), dumps([reading(26.0, 0.5), reading(27.0, 0.2), reading(18.0, 30)])),
            (topic(slug, sensor="humidity"), dumps(reading(50, 5, "percent"))),
            (topic(slug, sensor="humidity"), dumps(reading(40, 9, "percent"))),
        ],
    )
    assert await rows_of(db_session, slug, "latest_readings", latest, "sensor") == [
        ("dev-1", "humidity", NOW - timedelta(minutes=5), 50.0),
        ("dev-1", "temperature", NOW - timedelta(minutes=0.2), 27.0),
    ]
    assert len(await readings_of(db_session, slug)) == 7


async def test_a_list_payload_stores_every_reading(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter
) -> None:
    slug = await make_tenant()
    epoch_ms = int((NOW - timedelta(seconds=30)).timestamp() * 1000)
    payload = dumps(
        [
            reading(1.5, 3),
            {"value": 2, "timestamp": epoch_ms},
            {"value": 3.25, "unit": "", "timestamp": int((NOW - timedelta(seconds=20)).timestamp())},
            {"value": -4.0, "unit": "celsius"},
        ]
    )
    result = await ingest(db_session, writer, [(topic(slug, "fcu-7", "power"), payload)])

    assert result.tenants[slug].written == 4
    assert await readings_of(db_session, slug) == [
        ("fcu-7", "power", NOW - timedelta(minutes=3), 1.5, "celsius"),
        ("fcu-7", "power", NOW - timedelta(seconds=30), 2.0, None),
        ("fcu-7", "power", NOW - timedelta(seconds=20), 3.25, None),
        ("fcu-7", "power", NOW, -4.0, "celsius"),  # no timestamp: the arrival time
    ]


BAD_PAYLOADS: list[tuple[str, bytes, str, str]] = [
    ("malformed JSON", b'{"value": 21.5, "timestamp": ', reasons.MALFORMED_JSON, "malformed JSON"),
    ("string value", dumps({"value": "21.5"}), reasons.INVALID_VALUE, "numbers in quotes are not accepted"),
    ("null value", dumps({"value": None}), reasons.INVALID_VALUE, "value is null"),
    ("missing value", dumps({"unit": "celsius"}), reasons.INVALID_VALUE, "missing value"),
    ("boolean value", dumps({"value": True}), reasons.INVALID_VALUE, "got a boolean"),
    ("NaN value", b'{"value": NaN}', reasons.INVALID_VALUE, "finite number"),
    ("far future", dumps(reading(1.0, -60 * 24 * 365)), reasons.FUTURE_TIMESTAMP, "in the future"),
    ("unparseable time", dumps({"value": 1, "timestamp": "yesterday"}), reasons.INVALID_TIMESTAMP, "unparseable"),
    ("negative epoch", dumps({"value": 1, "timestamp": -5}), reasons.INVALID_TIMESTAMP, "out of range"),
    ("beyond retention", dumps(reading(1.0, 60 * 24 * 40)), reasons.TOO_OLD, "older than the retention"),
    ("unit not text", dumps({"value": 1, "unit": 5}), reasons.INVALID_UNIT, "unit must be a string"),
    ("unit too long", dumps({"value": 1, "unit": "x" * 40}), reasons.INVALID_UNIT, "longer than 32"),
    ("empty payload", b"", reasons.EMPTY_PAYLOAD, "empty payload"),
    ("empty list", b"[]", reasons.EMPTY_PAYLOAD, "empty list"),
    ("not an object", b'"hello"', reasons.INVALID_PAYLOAD, "got a string"),
    ("too many readings", dumps([{"value": 1}] * 11), reasons.TOO_MANY_READINGS, "more than the limit of 10"),
]


@pytest.mark.parametrize(("case", "payload", "reason_class", "wording"), BAD_PAYLOADS, ids=[c[0] for c in BAD_PAYLOADS])
async def test_bad_input_is_rejected_with_its_reason_and_counted(
    db_session: AsyncSession,
    make_tenant: TenantFactory,
    writer: TelemetryWriter,
    case: str,
    payload: bytes,
    reason_class: str,
    wording: str,
) -> None:
    slug = await make_tenant(retention_days=30)
    bad_topic = topic(slug, "ahu-9")
    result = await ingest(db_session, writer, [(bad_topic, payload), (topic(slug, "ahu-1"), dumps(reading(20, 1)))])

    counts = result.tenants[slug]
    assert (counts.received, counts.written, counts.rejected) == (2, 1, 1)
    assert counts.rejected_by_class == {reason_class: 1}
    registry = CollectorRegistry()
    IngestMetrics(registry).record("mqtt", result, 0.001)
    assert registry.get_sample_value("telemetry_readings_rejected_total", {"tenant": slug, "reason": reason_class}) == 1
    [(source, stored_topic, device, sensor, reason, stored)] = await rejected_of(db_session, slug)
    assert (source, stored_topic, device, sensor) == ("mqtt", bad_topic, "ahu-9", "temperature")
    assert wording in reason
    assert reasons.reason_class(reason) == reason_class
    assert stored == payload.decode("utf-8", "replace")
    assert [row[0] for row in await readings_of(db_session, slug)] == ["ahu-1"]


async def test_bad_readings_of_a_list_are_rejected_one_by_one_and_the_good_ones_kept(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter
) -> None:
    slug = await make_tenant()
    payload = dumps([reading(1, 3), {"value": "n/a"}, reading(3, 2), {"value": 4, "timestamp": "2099-01-01T00:00:00Z"}])
    result = await ingest(db_session, writer, [(topic(slug), payload)])

    counts = result.tenants[slug]
    assert (counts.received, counts.written, counts.rejected) == (4, 2, 2)
    assert counts.rejected_by_class == {reasons.INVALID_VALUE: 1, reasons.FUTURE_TIMESTAMP: 1}
    assert [row[3] for row in await readings_of(db_session, slug)] == [1.0, 3.0]
    rejected = await rejected_of(db_session, slug)
    assert [row[4].split(":")[0] for row in rejected] == ["reading 1", "reading 3"]
    assert all(row[5] == payload.decode() for row in rejected)


async def test_an_invalid_topic_of_a_known_tenant_is_rejected_in_that_tenant(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter
) -> None:
    slug = await make_tenant()
    bad = f"tenants/{slug}/devices/dev ice/sensors/temperature"
    result = await ingest(db_session, writer, [(bad, dumps(reading(1, 1)))])

    assert result.tenants[slug].rejected_by_class == {reasons.INVALID_TOPIC: 1}
    [row] = await rejected_of(db_session, slug)
    assert row[1] == bad
    assert "invalid device id" in row[4]


async def test_unknown_tenants_and_topics_naming_none_are_kept_as_unrouted(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter
) -> None:
    slug = await make_tenant()
    missing = f"{slug}x"
    result = await ingest(
        db_session,
        writer,
        [
            (topic(missing), dumps(reading(1, 1))),
            ("tenants/Not_A_Slug/devices/d/sensors/s", dumps(reading(2, 1))),
            ("somewhere/else", b"\x00\xff binary"),
            (topic(slug), dumps(reading(3, 1))),
        ],
    )

    assert result.unrouted == {reasons.UNKNOWN_TENANT: 1, reasons.INVALID_TOPIC: 2}
    assert result.tenants[slug].written == 1
    assert missing not in result.tenants
    rows = await db_session.execute(
        text(
            "SELECT source, topic, reason, payload FROM telemetry_ingest.unrouted_messages "
            "WHERE topic = ANY(:topics) ORDER BY id"
        ),
        {"topics": [topic(missing), "tenants/Not_A_Slug/devices/d/sensors/s", "somewhere/else"]},
    )
    stored = [tuple(row) for row in rows]
    assert stored[0] == ("mqtt", topic(missing), f"unknown tenant {missing!r}", dumps(reading(1, 1)).decode())
    assert "invalid tenant 'Not_A_Slug'" in stored[1][2]
    assert "does not match" in stored[2][2]
    assert stored[2][3] == "\ufffd\ufffd binary"  # NUL and invalid UTF-8 shown as U+FFFD


async def test_devices_and_sensors_register_themselves_once_with_an_event(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter
) -> None:
    slug = await make_tenant()
    first = await ingest(
        db_session,
        writer,
        [
            (topic(slug, "ahu-1"), dumps(reading(21, 2))),
            (topic(slug, "ahu-1", "humidity"), dumps(reading(40, 3, None))),
            (topic(slug, "ahu-2", "co2"), dumps(reading(600, 1, "ppm"))),
        ],
    )
    again = await ingest(
        db_session,
        writer,
        [
            (topic(slug, "ahu-1"), dumps(reading(22, 1))),
            (topic(slug, "ahu-1", "humidity"), dumps(reading(41, 1, "percent"))),
        ],
    )

    assert sorted(first.tenants[slug].registered_devices) == ["ahu-1", "ahu-2"]
    assert again.tenants[slug].registered_devices == []
    events = await db_session.execute(
        text(
            "SELECT subject, tenant, envelope FROM telemetry_ingest.outbox WHERE type = :type AND tenant = :tenant "
            "ORDER BY subject"
        ),
        {"type": DEVICE_REGISTERED, "tenant": slug},
    )
    found = [(row.subject, row.tenant, row.envelope["data"]) for row in events]
    assert found == [
        (
            f"tenants/{slug}/devices/ahu-1",
            slug,
            {
                "device_id": "ahu-1",
                "sensors": ["humidity", "temperature"],
                "first_reading_at": (NOW - timedelta(minutes=3)).isoformat(),
            },
        ),
        (
            f"tenants/{slug}/devices/ahu-2",
            slug,
            {"device_id": "ahu-2", "sensors": ["co2"], "first_reading_at": (NOW - timedelta(minutes=1)).isoformat()},
        ),
    ]
    # The unit of a sensor is filled in from its readings once one carries it.
    assert await rows_of(db_session, slug, "sensors", "device_id, sensor, unit", "device_id, sensor") == [
        ("ahu-1", "humidity", "percent"),
        ("ahu-1", "temperature", "celsius"),
        ("ahu-2", "co2", "ppm"),
    ]


async def test_last_seen_moves_forward_when_a_known_device_publishes(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter
) -> None:
    slug = await make_tenant()
    await ingest(db_session, writer, [(topic(slug), dumps(reading(1, 1)))])
    schema = schema_for(slug)
    await db_session.execute(
        text(
            f"UPDATE \"{schema}\".devices SET first_seen = first_seen - interval '1 day', "
            "last_seen = last_seen - interval '1 day'"
        )
    )
    await db_session.execute(text(f"UPDATE \"{schema}\".sensors SET last_seen = last_seen - interval '1 day'"))

    await ingest(db_session, writer, [(topic(slug), dumps(reading(2, 0)))])
    [(first_seen, last_seen, now)] = await rows_of(db_session, slug, "devices", "first_seen, last_seen, now()", "1")
    assert last_seen == now
    assert first_seen < now - timedelta(hours=23)
    [(sensor_seen,)] = await rows_of(db_session, slug, "sensors", "last_seen", "1")
    assert sensor_seen == now


async def test_partitions_exist_for_each_utc_day_of_a_batch(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter
) -> None:
    slug = await make_tenant()
    days = [NOW - timedelta(days=2), NOW - timedelta(days=1), NOW]
    payload = dumps([{"value": 1, "timestamp": day.isoformat()} for day in days])
    await ingest(db_session, writer, [(topic(slug), payload)])

    partitions = await db_session.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:rel AS regclass) ORDER BY 1"
        ),
        {"rel": f'"{schema_for(slug)}".readings'},
    )
    expected = sorted({partition_name(day.date()) for day in days})
    assert list(partitions) == expected
    stored = await db_session.scalars(
        text(f'SELECT tableoid::regclass::text FROM "{schema_for(slug)}".readings ORDER BY ts')
    )
    assert [name.split(".")[-1] for name in stored] == [partition_name(day.date()) for day in days]


async def test_thresholds_are_evaluated_on_the_stored_rows(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = await make_tenant()
    await db_session.execute(
        text(f"INSERT INTO \"{schema_for(slug)}\".threshold_rules (sensor, max_value) VALUES ('temperature', 30)")
    )
    seen: list[tuple[str, list[float]]] = []
    evaluate = evaluate_thresholds

    async def recording(session: AsyncSession, tenant: Tenant, rows: Sequence[ReadingRow], rules: RuleCache) -> int:
        seen.append((tenant.slug, [row.value for row in rows]))
        return await evaluate(session, tenant, rows, rules)

    monkeypatch.setattr(writer_module, "evaluate_thresholds", recording)
    result = await ingest(db_session, writer, [(topic(slug), dumps([reading(25, 3), reading(35, 2), reading(36, 1)]))])

    assert seen == [(slug, [25.0, 35.0, 36.0])]
    assert result.tenants[slug].thresholds_crossed == 1
    crossed = await db_session.scalar(
        text("SELECT count(*) FROM telemetry_ingest.outbox WHERE type = 'telemetry.threshold.crossed' AND tenant = :t"),
        {"t": slug},
    )
    assert crossed == 1


async def test_a_message_the_database_refuses_is_isolated_and_the_rest_stored(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter
) -> None:
    slug = await make_tenant()
    good = [
        IngestMessage(
            "mqtt",
            topic(slug, f"dev-{index}"),
            b"{}",
            tenant=slug,
            device_id=f"dev-{index}",
            sensor="temperature",
            rows=[ReadingRow(f"dev-{index}", "temperature", NOW, float(index), "celsius")],
        )
        for index in range(6)
    ]
    # PostgreSQL text cannot hold NUL: a value that passed validation but that the database refuses.
    poison = IngestMessage(
        "mqtt",
        topic(slug, "dev-x"),
        b'{"value": 1, "unit": "c\\u0000"}',
        tenant=slug,
        device_id="dev-x",
        sensor="temperature",
        rows=[ReadingRow("dev-x", "temperature", NOW, 1.0, "c\x00")],
    )
    batch = [*good[:4], poison, *good[4:]]
    result = await writer.write_isolating(db_session, batch)

    assert sorted(row[0] for row in await readings_of(db_session, slug)) == [f"dev-{index}" for index in range(6)]
    assert list(result.not_stored) == [4]
    assert result.not_stored[4].unrouted is False
    assert result.not_stored[4].reason.startswith("not stored: the database refused the message")
    assert "SQLSTATE 22" in result.not_stored[4].reason
    counts = result.tenants[slug]
    assert (counts.received, counts.written, counts.rejected) == (7, 6, 1)
    assert counts.rejected_by_class == {reasons.STORAGE_REFUSED: 1}
    [row] = await rejected_of(db_session, slug)
    assert (row[1], row[2], row[5]) == (topic(slug, "dev-x"), "dev-x", poison.payload.decode())
    # Nothing of the refused message reached the other tables.
    assert "dev-x" not in {row[0] for row in await rows_of(db_session, slug, "devices", "device_id", "1")}


async def test_other_failures_propagate_and_leave_nothing_behind(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = await make_tenant()

    async def broken(session: AsyncSession, tenant: Tenant, rows: Sequence[ReadingRow], rules: RuleCache) -> int:
        raise RuntimeError("evaluation failed")

    monkeypatch.setattr(writer_module, "evaluate_thresholds", broken)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        await ingest(db_session, writer, [(topic(slug), dumps(reading(1, 1))), (topic(slug), b"not json")])

    assert await readings_of(db_session, slug) == []
    assert await rejected_of(db_session, slug) == []
    assert await rows_of(db_session, slug, "devices", "device_id", "1") == []


def test_database_errors_are_told_apart_by_sqlstate() -> None:
    assert is_data_error(asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence"))
    assert is_data_error(asyncpg.exceptions.CheckViolationError("violates check constraint"))
    assert is_data_error(asyncpg.exceptions.UndefinedTableError("relation does not exist"))
    assert not is_data_error(asyncpg.exceptions.DeadlockDetectedError("deadlock detected"))
    assert not is_data_error(asyncpg.exceptions.SerializationError("could not serialize"))
    assert not is_data_error(asyncpg.exceptions.AdminShutdownError("terminating connection"))
    assert not is_data_error(ConnectionResetError("reset"))
    assert not is_data_error(RuntimeError("a bug"))

    wrapped = DBAPIError("INSERT ...", {}, asyncpg.exceptions.NumericValueOutOfRangeError("out of range"))
    assert sqlstate(wrapped) == "22003"
    assert is_data_error(wrapped)
    try:
        raise ValueError("outer") from asyncpg.exceptions.NotNullViolationError("null value")
    except ValueError as chained:
        assert sqlstate(chained) == "23502"
    assert describe_error(asyncpg.exceptions.CheckViolationError("new row violates")) == (
        "new row violates (SQLSTATE 23514)"
    )


async def test_payloads_are_stored_up_to_4_kib(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter
) -> None:
    slug = await make_tenant()
    big = b'{"value": "' + "é".encode() * 5000 + b'"}'
    await ingest(db_session, writer, [(topic(slug), big)])

    [row] = await rejected_of(db_session, slug)
    assert len(row[5].encode()) <= MAX_STORED_PAYLOAD_BYTES
    assert row[5] == stored_payload(big)
    assert row[5].startswith('{"value": "éé')
    assert stored_payload(b"\xff" + b"a" * 5000) == "\ufffd" + "a" * (MAX_STORED_PAYLOAD_BYTES - 3)
    assert stored_payload(b"\x00" * 5000) == "\ufffd" * (MAX_STORED_PAYLOAD_BYTES // 3)


async def test_a_new_tenant_is_found_although_it_was_missing_a_moment_ago(
    db_session: AsyncSession, make_tenant: TenantFactory
) -> None:
    directory = TenantDirectory(ttl_seconds=60)
    writer = TelemetryWriter(directory)
    slug = f"later{NOW.timestamp():.0f}{id(directory) % 100000}"

    before = await ingest(db_session, writer, [(topic(slug), dumps(reading(1, 1)))])
    assert before.unrouted == {reasons.UNKNOWN_TENANT: 1}
    await make_tenant(slug)
    after = await ingest(db_session, writer, [(topic(slug), dumps(reading(1, 1)))])
    assert after.tenants[slug].written == 1

    lookups = directory.lookups
    await ingest(db_session, writer, [(topic(slug), dumps(reading(2, 2)))])
    assert directory.lookups == lookups  # a known tenant costs no query
    directory.forget(slug)
    await ingest(db_session, writer, [(topic(slug), dumps(reading(3, 3)))])
    assert directory.lookups == lookups + 1


async def test_metrics_count_per_tenant_and_reason_class(
    db_session: AsyncSession, make_tenant: TenantFactory, writer: TelemetryWriter
) -> None:
    slug = await make_tenant()
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    message = (topic(slug), dumps([reading(1, 2), reading(2, 1), {"value": "x"}]))
    metrics.record("mqtt", await ingest(db_session, writer, [message, (topic(f"{slug}z"), b"{}")]), 0.01)
    metrics.record("mqtt", await ingest(db_session, writer, [message]), 0.01)

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("telemetry_readings_received_total", tenant=slug) == 6
    assert sample("telemetry_readings_written_total", tenant=slug) == 2
    assert sample("telemetry_readings_duplicate_total", tenant=slug) == 2
    assert sample("telemetry_readings_rejected_total", tenant=slug, reason=reasons.INVALID_VALUE) == 2
    assert sample("telemetry_messages_unrouted_total", source="mqtt", reason=reasons.UNKNOWN_TENANT) == 1
    assert sample("telemetry_ingest_batch_readings_count", source="mqtt") == 2


def test_every_payload_reason_has_a_class() -> None:
    for _case, _payload, reason_class, _wording in BAD_PAYLOADS:
        assert reason_class in reasons.REASON_CLASSES
    assert reasons.reason_class("reading 3: value must be a number, got a boolean") == reasons.INVALID_VALUE
    assert reasons.reason_class("something new") == reasons.OTHER
    assert reasons.describe("missing value", 2) == "reading 2: missing value"
    assert reasons.describe("missing value", None) == "missing value"


def test_the_readings_parameters_follow_the_columns_of_the_statements() -> None:
    row = ReadingRow("d", "s", datetime(2026, 1, 1, tzinfo=UTC), 1.5, "celsius")
    expected = tuple([getattr(row, name)] for name in writer_module.READING_COLUMNS)
    assert writer_module._columns([row]) == expected

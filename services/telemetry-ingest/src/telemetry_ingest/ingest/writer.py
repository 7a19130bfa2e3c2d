"""Storing parsed telemetry: one batch of messages, any number of tenants, in the caller's transaction.

For each tenant of a batch, in slug order (every writer takes locks in the same order):

1. the daily `readings` partitions of the batch's UTC dates (`tenancy.partitions.ensure_partitions`);
2. devices and sensors registered on first sight, `last_seen` moved forward (at most once per
   `LAST_SEEN_RESOLUTION`, so that a busy device does not rewrite its row with every batch); a device seen for the
   first time queues `telemetry.device.registered` (told apart by `RETURNING (xmax = 0)`: only an inserted row has
   no deleting transaction);
3. readings inserted with `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING`: idempotent on
   (device, sensor, ts), so a redelivered message changes nothing; `written` is the row count and
   `duplicate = accepted - written`;
4. `latest_readings` upserted with the newest reading per (device, sensor) of the batch, and only where it is
   newer than the stored one (`WHERE latest_readings.ts < EXCLUDED.ts`): "latest" is by timestamp, not arrival;
5. rejected readings into `rejected_readings` (payload kept up to 4 KiB). These rows, and unrouted messages, have
   no natural key: a message delivered again after its batch committed but before it was acknowledged (a crash
   in that window) records its rejections twice, while its readings are still stored once;
6. threshold evaluation (`thresholds.evaluation.evaluate_thresholds`).

Messages naming no known tenant go to `telemetry_ingest.unrouted_messages`. Everything only flushes: the caller
commits. Rows are sorted by key before each statement so concurrent writers lock rows in the same order.

The hot statements run on the asyncpg connection under the session (same transaction): it skips SQLAlchemy's
statement handling, which measured about 10 % of a 1,000-row batch here. Tenant schemas are interpolated into
SQL only after `tenancy.naming.quoted` has checked them against the schema pattern; table and column names
come from the tables' one description (`tenancy.tables`).

Poison safety: `write_isolating` runs a batch in a savepoint; if the database refuses it for a reason that lies in
the data (`is_data_error`: SQLSTATE classes 22, 23 and 54, or a tenant whose tables are missing), the batch is
split in halves, recursively, until the message at fault is alone; that message is recorded as not stored (with
its payload, in its tenant's `rejected_readings`, else in `unrouted_messages`) and everything else is stored. Such a
message can therefore never make a batch fail again and again. Every other failure (connection lost, deadlock,
serialization, a bug) propagates: the caller's transaction rolls back and the message source delivers the batch
again, so nothing accepted is lost.
"""

from __future__ import annotations

import codecs
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Final, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus import Event, emit_many
from mirante.db_driver import session_driver
from telemetry_ingest.ingest import reasons
from telemetry_ingest.ingest.errors import describe_error, is_data_error
from telemetry_ingest.ingest.payload import Rejection
from telemetry_ingest.ingest.tenants import TenantDirectory
from telemetry_ingest.tenancy.models import Tenant
from telemetry_ingest.tenancy.partitions import MissingReadingsTableError, ensure_partitions, forget_partitions
from telemetry_ingest.tenancy.rows import ReadingRow
from telemetry_ingest.tenancy.tables import (
    column_list,
    devices,
    latest_readings,
    qualified,
    readings,
    rejected_readings,
    sensors,
    unnest_arrays,
)
from telemetry_ingest.thresholds.cache import RuleCache
from telemetry_ingest.thresholds.evaluation import evaluate_thresholds

logger = logging.getLogger(__name__)

Source = Literal["mqtt", "http"]

OUTBOX_SCHEMA: Final = "telemetry_ingest"
EVENT_SOURCE: Final = "mirante/telemetry-ingest"
DEVICE_REGISTERED: Final = "telemetry.device.registered"
MAX_STORED_PAYLOAD_BYTES: Final = 4096
MAX_STORED_TOPIC_CHARS: Final = 1024
LAST_SEEN_RESOLUTION: Final = timedelta(seconds=10)
"""`devices.last_seen` and `sensors.last_seen` are moved forward only when they are older than this."""


@dataclass(slots=True)
class IngestMessage:
    """One message on its way to storage: where it goes, the readings accepted from it and those refused.

    `tenant` is the slug its topic names (None when it names none). A message with `unrouted_reason` set, or
    whose tenant does not exist, is stored whole in `unrouted_messages`. `rejections` are refused readings (or
    the whole message, index None) and count as readings received.
    """

    source: Source
    topic: str | None
    payload: bytes
    tenant: str | None = None
    device_id: str | None = None
    sensor: str | None = None
    rows: list[ReadingRow] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    unrouted_reason: str | None = None

    @property
    def received(self) -> int:
        """Readings received: accepted plus rejected (a message refused whole counts as one)."""
        return len(self.rows) + len(self.rejections)


@dataclass(slots=True)
class TenantCounts:
    """What a write did for one tenant, in readings: `received = written + duplicate + rejected`."""

    received: int = 0
    written: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejected_by_class: Counter[str] = field(default_factory=Counter)
    registered_devices: list[str] = field(default_factory=list)
    thresholds_crossed: int = 0

    def add(self, other: TenantCounts) -> None:
        self.received += other.received
        self.written += other.written
        self.duplicate += other.duplicate
        self.rejected += other.rejected
        self.rejected_by_class.update(other.rejected_by_class)
        self.registered_devices.extend(other.registered_devices)
        self.thresholds_crossed += other.thresholds_crossed


@dataclass(frozen=True, slots=True)
class NotStored:
    """A message the database refused: why, and whether it was recorded as unrouted (else in its tenant)."""

    reason: str
    unrouted: bool


@dataclass(slots=True)
class WriteResult:
    """Counts per tenant slug, unrouted messages per reason class, and the messages that could not be stored
    (position in the batch -> reason)."""

    tenants: dict[str, TenantCounts] = field(default_factory=dict)
    unrouted: Counter[str] = field(default_factory=Counter)
    not_stored: dict[int, NotStored] = field(default_factory=dict)

    def counts(self, slug: str) -> TenantCounts:
        counts = self.tenants.get(slug)
        if counts is None:
            counts = self.tenants[slug] = TenantCounts()
        return counts

    def merge(self, other: WriteResult, offset: int = 0) -> None:
        """Add `other`, the result of the part of the batch starting at position `offset`."""
        for slug, counts in other.tenants.items():
            self.counts(slug).add(counts)
        self.unrouted.update(other.unrouted)
        for index, item in other.not_stored.items():
            self.not_stored[index + offset] = item

    @property
    def written(self) -> int:
        return sum(counts.written for counts in self.tenants.values())

    @property
    def duplicate(self) -> int:
        return sum(counts.duplicate for counts in self.tenants.values())

    @property
    def rejected(self) -> int:
        return sum(counts.rejected for counts in self.tenants.values())


@dataclass(slots=True)
class _TenantBatch:
    rows: list[ReadingRow] = field(default_factory=list)
    rejected: list[tuple[IngestMessage, str]] = field(default_factory=list)


def stored_payload(payload: bytes) -> str:
    """A payload as kept for inspection: at most its first 4 KiB, as text (invalid UTF-8 and NUL shown as U+FFFD;
    a character cut by the limit is left out)."""
    stored = _clean(_decode_head(payload))
    encoded = stored.encode("utf-8")
    # Replacement characters take more bytes than what they replace: cut again.
    return _decode_head(encoded) if len(encoded) > MAX_STORED_PAYLOAD_BYTES else stored


def _decode_head(data: bytes) -> str:
    # Not final: an incomplete character at the cut is left out instead of becoming U+FFFD.
    return codecs.getincrementaldecoder("utf-8")("replace").decode(data[:MAX_STORED_PAYLOAD_BYTES], final=False)


def _clean(value: str) -> str:
    # PostgreSQL text cannot hold NUL: a stored rejection must never fail on what a device sent.
    return value.replace("\x00", "\ufffd")


def _stored_topic(topic: str | None) -> str | None:
    return None if topic is None else _clean(topic[:MAX_STORED_TOPIC_CHARS])


class TelemetryWriter:
    """Writes batches of `IngestMessage` into the tenant schemas (see the module documentation)."""

    def __init__(self, tenants: TenantDirectory | None = None, rules: RuleCache | None = None) -> None:
        self.tenants = tenants or TenantDirectory()
        self.rules = rules or RuleCache()

    async def write(self, session: AsyncSession, messages: Sequence[IngestMessage]) -> WriteResult:
        """Store `messages` in the caller's transaction (flush only); counts per tenant.

        Raises what the database raises; the caller's transaction is then unusable up to its last savepoint.
        """
        result = WriteResult()
        slugs = {message.tenant for message in messages if message.tenant and message.unrouted_reason is None}
        tenants = await self.tenants.resolve(session, slugs) if slugs else {}
        groups: dict[str, _TenantBatch] = {}
        unrouted: list[tuple[IngestMessage, str]] = []
        for message in messages:
            if message.unrouted_reason is not None:
                unrouted.append((message, message.unrouted_reason))
                continue
            if message.tenant is None or message.tenant not in tenants:
                unrouted.append((message, _unknown_tenant(message.tenant)))
                continue
            group = groups.get(message.tenant)
            if group is None:
                group = groups[message.tenant] = _TenantBatch()
            group.rows.extend(message.rows)
            group.rejected.extend(
                (message, reasons.describe(rejection.reason, rejection.index)) for rejection in message.rejections
            )

        for slug in sorted(groups):
            tenant = tenants[slug]
            try:
                result.tenants[slug] = await self._write_tenant(session, tenant, groups[slug])
            except MissingReadingsTableError:
                logger.error("tenant %s has no readings table: its messages are kept as unrouted", slug)
                self.tenants.forget(slug)
                forget_partitions(tenant.schema_name)
                reason = f"{reasons.UNKNOWN_TENANT_PREFIX} {slug!r}: its schema has no telemetry tables"
                unrouted.extend(
                    (message, reason)
                    for message in messages
                    if message.tenant == slug and message.unrouted_reason is None
                )
        if unrouted:
            await self._insert_unrouted(session, unrouted)
            result.unrouted.update(reasons.reason_class(reason) for _, reason in unrouted)
        return result

    async def write_isolating(self, session: AsyncSession, messages: Sequence[IngestMessage]) -> WriteResult:
        """`write` inside a savepoint; when the data makes the database refuse it, store all but the messages at
        fault, which are recorded as not stored (see the module documentation). Other errors propagate."""
        try:
            async with session.begin_nested():
                return await self.write(session, messages)
        except Exception as error:
            if not is_data_error(error):
                raise
            failure = error
        if len(messages) == 1:
            return await self._record_not_stored(session, messages[0], failure)
        middle = len(messages) // 2
        result = await self.write_isolating(session, messages[:middle])
        result.merge(await self.write_isolating(session, messages[middle:]), offset=middle)
        return result

    async def _write_tenant(self, session: AsyncSession, tenant: Tenant, batch: _TenantBatch) -> TenantCounts:
        schema = tenant.schema_name
        rows = batch.rows
        counts = TenantCounts(received=len(rows) + len(batch.rejected), rejected=len(batch.rejected))
        counts.rejected_by_class.update(reasons.reason_class(reason) for _, reason in batch.rejected)
        driver = await session_driver(session)
        if rows:
            await ensure_partitions(session, schema, {row.ts.date() for row in rows})
            rows = sorted(rows, key=_row_key)
            new_devices = await _register(driver, schema, rows)
            status = await driver.execute(_insert_readings(schema), *_columns(rows))
            counts.written = _row_count(status)
            counts.duplicate = len(rows) - counts.written
            await driver.execute(_upsert_latest(schema), *_columns(_newest(rows)))
            if new_devices:
                counts.registered_devices = new_devices
                await emit_many(session, OUTBOX_SCHEMA, _registered_events(tenant, new_devices, rows))
            # Duplicates are passed too: evaluation ignores readings not newer than the state it holds.
            counts.thresholds_crossed = await evaluate_thresholds(session, tenant, rows, self.rules)
        if batch.rejected:
            await _insert_rejected(driver, schema, batch.rejected)
        return counts

    async def _record_not_stored(self, session: AsyncSession, message: IngestMessage, error: Exception) -> WriteResult:
        reason = f"{reasons.STORAGE_REFUSED_PREFIX}: the database refused the message: {describe_error(error)}"
        logger.error("message on %r not stored, recorded as rejected: %s", message.topic, reason)
        result = WriteResult()
        tenant = None
        if message.tenant is not None and message.unrouted_reason is None:
            tenant = (await self.tenants.resolve(session, [message.tenant])).get(message.tenant)
        if tenant is not None:
            try:
                async with session.begin_nested():
                    rejected = [(message, reason)]
                    rejected += [(message, reasons.describe(item.reason, item.index)) for item in message.rejections]
                    await _insert_rejected(await session_driver(session), tenant.schema_name, rejected)
            except Exception as failure:
                if not is_data_error(failure):
                    raise
            else:
                counts = result.counts(tenant.slug)
                counts.received = counts.rejected = message.received
                if message.rows:
                    counts.rejected_by_class[reasons.STORAGE_REFUSED] += len(message.rows)
                counts.rejected_by_class.update(reasons.reason_class(item.reason) for item in message.rejections)
                result.not_stored[0] = NotStored(reason, unrouted=False)
                return result
        await self._insert_unrouted(session, [(message, reason)])
        result.unrouted[reasons.STORAGE_REFUSED] += 1
        result.not_stored[0] = NotStored(reason, unrouted=True)
        return result

    async def _insert_unrouted(self, session: AsyncSession, messages: list[tuple[IngestMessage, str]]) -> None:
        payloads: dict[int, str] = {}
        await (await session_driver(session)).execute(
            _INSERT_UNROUTED,
            [message.source for message, _ in messages],
            [_stored_topic(message.topic) for message, _ in messages],
            [_clean(reason) for _, reason in messages],
            [_payload_once(payloads, message) for message, _ in messages],
        )


def _unknown_tenant(slug: str | None) -> str:
    if slug is None:
        return f"{reasons.UNKNOWN_TENANT_PREFIX}: the topic names no tenant"
    return f"{reasons.UNKNOWN_TENANT_PREFIX} {slug!r}"


def _payload_once(cache: dict[int, str], message: IngestMessage) -> str:
    """The stored form of a message's payload, computed once however many of its readings were rejected."""
    key = id(message)
    stored = cache.get(key)
    if stored is None:
        stored = cache[key] = stored_payload(message.payload)
    return stored


def _row_key(row: ReadingRow) -> tuple[str, str, Any]:
    return row.device_id, row.sensor, row.ts


def _columns(rows: Sequence[ReadingRow]) -> tuple[list[Any], ...]:
    """One array per column of `READING_COLUMNS`, in order: the parameters of the readings statements."""
    # Spelled out: twice as fast as attrgetters over the column names, and a test holds the order to theirs.
    return (
        [row.device_id for row in rows],
        [row.sensor for row in rows],
        [row.ts for row in rows],
        [row.value for row in rows],
        [row.unit for row in rows],
    )


def _newest(rows: Sequence[ReadingRow]) -> list[ReadingRow]:
    """The newest reading per (device, sensor), from rows sorted by key: the first of equal times wins, as in
    `readings`, where the first stored is kept."""
    newest: dict[tuple[str, str], ReadingRow] = {}
    for row in rows:
        key = (row.device_id, row.sensor)
        kept = newest.get(key)
        if kept is None or row.ts > kept.ts:
            newest[key] = row
    return list(newest.values())


def _row_count(status: str) -> int:
    """The row count of a command status such as `INSERT 0 42`."""
    return int(status.rsplit(" ", 1)[-1])


async def _register(driver: Any, schema: str, rows: Sequence[ReadingRow]) -> list[str]:
    """Register unseen devices and sensors, move `last_seen` forward; returns the devices inserted now."""
    device_ids = sorted({row.device_id for row in rows})
    inserted = await driver.fetch(_upsert_devices(schema), device_ids, LAST_SEEN_RESOLUTION)
    units: dict[tuple[str, str], str | None] = {}
    for row in rows:
        if units.get((row.device_id, row.sensor)) is None:
            units[row.device_id, row.sensor] = row.unit
    keys = sorted(units)
    await driver.execute(
        _upsert_sensors(schema),
        [key[0] for key in keys],
        [key[1] for key in keys],
        [units[key] for key in keys],
        LAST_SEEN_RESOLUTION,
    )
    return [record["device_id"] for record in inserted if record["inserted"]]


def _registered_events(tenant: Tenant, devices: list[str], rows: Sequence[ReadingRow]) -> list[Event]:
    sensors: dict[str, set[str]] = {device: set() for device in devices}
    first: dict[str, datetime] = {}
    for row in rows:
        seen = sensors.get(row.device_id)
        if seen is not None:
            seen.add(row.sensor)
            if row.device_id not in first or row.ts < first[row.device_id]:
                first[row.device_id] = row.ts
    return [
        Event(
            source=EVENT_SOURCE,
            type=DEVICE_REGISTERED,
            subject=f"tenants/{tenant.slug}/devices/{device}",
            tenant=tenant.slug,
            data={
                "device_id": device,
                "sensors": sorted(sensors[device]),
                "first_reading_at": first[device].isoformat(),
            },
        )
        for device in devices
    ]


async def _insert_rejected(driver: Any, schema: str, rejected: Sequence[tuple[IngestMessage, str]]) -> None:
    payloads: dict[int, str] = {}
    await driver.execute(
        _insert_rejected_sql(schema),
        [message.source for message, _ in rejected],
        [_stored_topic(message.topic) for message, _ in rejected],
        [message.device_id for message, _ in rejected],
        [message.sensor for message, _ in rejected],
        [_clean(reason) for _, reason in rejected],
        [_payload_once(payloads, message) for message, _ in rejected],
    )


# Statement texts, one per tenant schema, rendered from the table descriptions (`tenancy.tables`). The schema is
# the only interpolated value, and `qualified` checks it against the tenant schema pattern first (hence S608).
_INSERT_UNROUTED: Final = (
    "INSERT INTO telemetry_ingest.unrouted_messages (source, topic, reason, payload) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
)
READING_COLUMNS: Final = tuple(column.name for column in fields(ReadingRow))
"""The columns `_columns` fills, in order: those of `ReadingRow`."""
REJECTED_COLUMNS: Final = ("source", "topic", "device_id", "sensor", "reason", "payload")
_LATEST_KEY: Final = column_list(latest_readings, [column.name for column in latest_readings.primary_key])
_LATEST_UPDATED: Final = ", ".join(
    f"{name} = EXCLUDED.{name}" for name in (*READING_COLUMNS, "received_at") if name not in _LATEST_KEY.split(", ")
)


@lru_cache(maxsize=4096)
def _insert_readings(schema: str) -> str:
    return (
        f"INSERT INTO {qualified(readings, schema)} ({column_list(readings, READING_COLUMNS)}) "  # noqa: S608
        f"SELECT * FROM unnest({unnest_arrays(readings, READING_COLUMNS)}) "
        "ON CONFLICT DO NOTHING"
    )


@lru_cache(maxsize=4096)
def _upsert_latest(schema: str) -> str:
    return (
        f"INSERT INTO {qualified(latest_readings, schema)} AS latest_readings "  # noqa: S608
        f"({column_list(latest_readings, READING_COLUMNS)}) "
        f"SELECT * FROM unnest({unnest_arrays(latest_readings, READING_COLUMNS)}) "
        f"ON CONFLICT ({_LATEST_KEY}) DO UPDATE SET {_LATEST_UPDATED} "
        "WHERE latest_readings.ts < EXCLUDED.ts"
    )


@lru_cache(maxsize=4096)
def _upsert_devices(schema: str) -> str:
    return (
        f"INSERT INTO {qualified(devices, schema)} AS devices "  # noqa: S608
        f"({column_list(devices, ('device_id', 'first_seen', 'last_seen'))}) "
        "SELECT device_id, now(), now() FROM unnest($1::text[]) AS device_id "
        "ON CONFLICT (device_id) DO UPDATE SET last_seen = EXCLUDED.last_seen "
        "WHERE devices.last_seen < EXCLUDED.last_seen - $2::interval "
        "RETURNING device_id, (xmax = 0) AS inserted"
    )


@lru_cache(maxsize=4096)
def _upsert_sensors(schema: str) -> str:
    return (
        f"INSERT INTO {qualified(sensors, schema)} AS sensors "  # noqa: S608
        f"({column_list(sensors, ('device_id', 'sensor', 'unit', 'first_seen', 'last_seen'))}) "
        "SELECT device_id, sensor, unit, now(), now() "
        "FROM unnest($1::text[], $2::text[], $3::text[]) AS s(device_id, sensor, unit) "
        "ON CONFLICT (device_id, sensor) DO UPDATE SET last_seen = EXCLUDED.last_seen, "
        "unit = COALESCE(sensors.unit, EXCLUDED.unit) "
        "WHERE sensors.last_seen < EXCLUDED.last_seen - $4::interval "
        "OR (sensors.unit IS NULL AND EXCLUDED.unit IS NOT NULL)"
    )


@lru_cache(maxsize=4096)
def _insert_rejected_sql(schema: str) -> str:
    return (
        f"INSERT INTO {qualified(rejected_readings, schema)} "  # noqa: S608
        f"({column_list(rejected_readings, REJECTED_COLUMNS)}) "
        f"SELECT * FROM unnest({unnest_arrays(rejected_readings, REJECTED_COLUMNS)})"
    )

"""Producers' side of the bus: write events to the schema's outbox inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import ARRAY, Insert, Interval, String, Text, bindparam, cast, column, func, insert, literal, select
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus.envelope import Event
from mirante.bus.tables import outbox_table

OUTBOX_PARAMETER_PREFIX = "outbox_"
_ONE_MICROSECOND = literal(timedelta(microseconds=1), Interval)


async def emit(session: AsyncSession, schema: str, event: Event) -> None:
    """Queue `event` for publishing: it becomes visible to the relay only when the caller commits.

    Never commits. Raises `TypeError` for anything but an `Event` and `ValueError` for a schema name that
    is not a safe identifier.
    """
    _check_events([event], "emit() expects an Event")
    await session.execute(_single_insert(schema), _row(event))


async def emit_many(session: AsyncSession, schema: str, events: Sequence[Event]) -> None:
    """Queue `events` for publishing, in this order, with one INSERT (one round trip) whatever their number.

    Same contract as `emit`: visible to the relay only when the caller commits, never commits. An empty
    sequence does nothing. Raises `TypeError` when an item is not an `Event` and `ValueError` for a bad
    schema name or for the same event id twice (the outbox key would reject the whole batch anyway).
    """
    if events_insert := outbox_insert(schema, events):
        await session.execute(*events_insert)


def outbox_insert(schema: str, events: Sequence[Event]) -> tuple[Insert, dict[str, Any]] | None:
    """The INSERT that `emit_many` runs, with its parameters, not run; None for no events.

    For a caller that sends it inside a statement of its own (as a data-modifying CTE), to save the round
    trip. The statement is built once per schema and its parameter names all start with `outbox_`. Raises as
    `emit_many` does.
    """
    _check_events(events, "emit_many() expects a sequence of Events")
    if not events:
        return None
    if len({event.id for event in events}) != len(events):
        raise ValueError("emit_many() got the same event id more than once")
    rows = [_row(event) for event in events]
    return _batch_insert(schema), {
        f"{OUTBOX_PARAMETER_PREFIX}{field}s": [row[field] for row in rows]
        for field in ("id", "type", "subject", "tenant", "envelope")
    }


def _check_events(events: Sequence[object], message: str) -> None:
    if isinstance(events, str | bytes) or not isinstance(events, Sequence):
        raise TypeError(f"{message}, got {type(events).__name__}")
    for item in events:
        if not isinstance(item, Event):
            raise TypeError(f"{message}, got {type(item).__name__}")


def _row(event: Event) -> dict[str, Any]:
    # Pydantic's own JSON encoder, cast to jsonb by the server, is cheaper than a dict for SQLAlchemy to dump.
    return {
        "id": event.event_uuid,
        "type": event.type,
        "subject": event.subject,
        "tenant": event.tenant,
        "envelope": event.to_json(),
    }


@cache
def _single_insert(schema: str) -> Insert:
    outbox = outbox_table(schema)
    return insert(outbox).values(
        id=bindparam("id"),
        type=bindparam("type"),
        subject=bindparam("subject"),
        tenant=bindparam("tenant"),
        envelope=cast(bindparam("envelope", type_=Text), JSONB),
        # now() is the transaction start, the same for every row of a transaction; the wall clock keeps
        # the order of several events emitted by one transaction.
        created_at=func.clock_timestamp(),
    )


@cache
def _batch_insert(schema: str) -> Insert:
    """`INSERT ... SELECT FROM unnest(arrays) WITH ORDINALITY`: a fixed statement text for any batch size,
    so it is prepared once and never meets the 32,767 bind-parameter limit of a VALUES list."""
    outbox = outbox_table(schema)
    rows = (
        func.unnest(
            bindparam("outbox_ids", type_=ARRAY(UUID(as_uuid=True))),
            bindparam("outbox_types", type_=ARRAY(String)),
            bindparam("outbox_subjects", type_=ARRAY(String)),
            bindparam("outbox_tenants", type_=ARRAY(String)),
            bindparam("outbox_envelopes", type_=ARRAY(Text)),
        )
        .table_valued(
            column("id", UUID(as_uuid=True)),
            column("type", String),
            column("subject", String),
            column("tenant", String),
            column("envelope", Text),
            with_ordinality="position",
        )
        .render_derived()
    )
    # Rows of one statement get distinct, increasing times in list order: the statement's start plus
    # one microsecond per position. Each row takes well over a microsecond to insert, so these times never
    # run ahead of the clock that a later `emit` in the same transaction reads.
    ordered_rows = select(
        rows.c.id,
        rows.c.type,
        rows.c.subject,
        rows.c.tenant,
        cast(rows.c.envelope, JSONB),
        func.statement_timestamp() + (rows.c.position - 1) * _ONE_MICROSECOND,
    )
    return insert(outbox).from_select(["id", "type", "subject", "tenant", "envelope", "created_at"], ordered_rows)

"""The event envelope: CloudEvents attribute names, stream entry round trip, a typed error for bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from mirante.bus.envelope import Event, InvalidEventError


def sample_event(**overrides: Any) -> Event:
    attributes: dict[str, Any] = {
        "source": "mirante/cvat-sync",
        "type": "cvat.job.created",
        "subject": "job/42",
        "tenant": "acme",
        "data": {"job_id": 42, "labels": ["car", "person"], "meta": {"stage": None, "ratio": 0.5}},
    }
    attributes.update(overrides)
    return Event(**attributes)


def envelope_json(**changes: Any) -> str:
    envelope = sample_event().envelope()
    envelope.update(changes)
    return orjson.dumps(envelope).decode()


def test_defaults_follow_cloudevents() -> None:
    event = Event(source="mirante/telemetry-ingest", type="telemetry.device.registered")

    assert event.specversion == "1.0"
    assert event.datacontenttype == "application/json"
    assert uuid.UUID(event.id).version == 4
    assert event.time.tzinfo is UTC
    assert abs(datetime.now(UTC) - event.time) < timedelta(seconds=5)
    assert event.data == {}
    assert event.subject is None and event.tenant is None
    assert Event(source="s", type="a.b").id != event.id


def test_stream_fields_round_trip() -> None:
    event = sample_event()
    fields = event.to_fields()

    assert set(fields) == {"id", "type", "event"}
    assert fields["id"] == event.id
    assert fields["type"] == "cvat.job.created"
    assert orjson.loads(fields["event"])["specversion"] == "1.0"
    assert Event.from_fields(fields) == event


def test_round_trip_from_bytes_as_redis_returns_them() -> None:
    event = sample_event()
    raw = {key.encode(): value.encode() for key, value in event.to_fields().items()}

    assert Event.from_fields(raw) == event


def test_time_is_normalised_to_utc() -> None:
    local = datetime(2025, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=-3)))
    event = sample_event(time=local)

    assert event.time == datetime(2025, 3, 1, 15, 0, tzinfo=UTC)
    assert event.time.utcoffset() == timedelta(0)
    assert Event.from_fields(event.to_fields()).time == event.time


def test_id_is_stored_in_canonical_form() -> None:
    raw = uuid.uuid4()
    event = sample_event(id=str(raw).upper())

    assert event.id == str(raw)
    assert event.event_uuid == raw


def test_an_entry_whose_id_is_written_in_capitals_is_read_with_its_canonical_id() -> None:
    raw = uuid.uuid4()
    fields = {**VALID, "id": str(raw).upper(), "event": envelope_json(id=str(raw).upper())}

    event = Event.from_fields(fields)

    assert (event.id, event.event_uuid) == (str(raw), raw)


def test_unknown_envelope_attributes_are_ignored_for_forward_compatibility() -> None:
    event = Event.from_json(envelope_json(traceparent="00-abc-def-01"))

    assert event == sample_event(id=event.id, time=event.time)


@pytest.mark.parametrize(
    ("attributes", "mentions"),
    [
        ({"type": "Cvat.Job.Created"}, "type"),
        ({"type": "cvat"}, "type"),
        ({"type": "cvat..job"}, "type"),
        ({"type": "cvat.job.created!"}, "type"),
        ({"type": "a." + "b" * 250}, "type"),
        ({"source": ""}, "source"),
        ({"id": "not-a-uuid"}, "id"),
        ({"time": datetime(2025, 1, 1, 12, 0)}, "time"),
        ({"specversion": "0.3"}, "specversion"),
        ({"datacontenttype": "text/plain"}, "datacontenttype"),
        ({"data": ["not", "an", "object"]}, "data"),
        ({"data": {"when": datetime(2025, 1, 1, tzinfo=UTC)}}, "data"),
        ({"subject": ""}, "subject"),
        ({"tenant": "t" * 101}, "tenant"),
    ],
)
def test_invalid_attributes_raise_invalid_event_error(attributes: dict[str, Any], mentions: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        sample_event(**attributes)

    assert mentions in caught.value.reason


def test_missing_required_attributes_raise_invalid_event_error() -> None:
    with pytest.raises(InvalidEventError, match="type"):
        Event.model_validate({"source": "mirante/test"})
    with pytest.raises(InvalidEventError, match="source"):
        Event.from_json('{"type": "a.b"}')


VALID = sample_event().to_fields()


@pytest.mark.parametrize(
    ("fields", "mentions"),
    [
        ({"type": VALID["type"], "event": VALID["event"]}, "missing field(s) id"),
        ({"id": VALID["id"], "event": VALID["event"]}, "missing field(s) type"),
        ({"id": VALID["id"], "type": VALID["type"]}, "missing field(s) event"),
        ({}, "missing field(s) id, type, event"),
        ({**VALID, "event": "{not json"}, "not JSON"),
        ({**VALID, "event": "[1, 2]"}, "not a JSON object"),
        ({**VALID, "event": '"just a string"'}, "not a JSON object"),
        ({**VALID, "event": envelope_json(specversion="2.0")}, "specversion"),
        ({**VALID, "event": envelope_json(type="NotDotted")}, "type"),
        ({**VALID, "event": envelope_json(time="yesterday")}, "time"),
        ({**VALID, "event": envelope_json(time="2025-01-01T00:00:00")}, "time"),
        ({**VALID, "event": envelope_json(data=["not", "an", "object"])}, "data"),
        ({**VALID, "type": "cvat.job.deleted"}, "differs from envelope"),
        ({**VALID, "id": str(uuid.uuid4())}, "differs from envelope"),
        ({**VALID, "id": "garbage"}, "differs from envelope"),
    ],
)
def test_malformed_entries_raise_invalid_event_error(fields: dict[str, str], mentions: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        Event.from_fields(fields)

    assert mentions in caught.value.reason
    assert not isinstance(caught.value, ValueError), "must not be mistaken for a pydantic or json error"


def test_non_utf8_field_is_invalid() -> None:
    raw = {b"id": b"\xff\xfe", b"type": b"a.b", b"event": b"{}"}

    with pytest.raises(InvalidEventError, match="UTF-8"):
        Event.from_fields(raw)


def test_events_are_immutable() -> None:
    event = sample_event()

    with pytest.raises(Exception, match="frozen"):
        event.type = "cvat.job.deleted"  # type: ignore[misc]

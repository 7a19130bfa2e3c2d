"""Storing a batch of MQTT messages in one transaction, and the gateway presence sweep.

Per batch: every message is routed and parsed; gateways that spoke are marked seen in one statement (an offline
gateway comes back online, an unknown one registers itself unplaced); readings go to the collection logs in one
insert; camera messages upsert their camera, events and collectors; whatever cannot be used is kept in
`rejected_messages` with its reason. Events go to the outbox in the same transaction. Nothing in a message can
make the batch fail: only the database can, and then the batch is redelivered whole.

The collection logs are written on a second connection while the positions are worked out on the first: the
insert is the batch's longest wait on the database, and nothing else in the batch reads it. The caller commits the
batch's transaction first and the logs' right after (`IngestPipeline`), so a batch whose work fails stores no
readings either, and the broker's redelivery of one whose logs failed to commit stores them once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.aio import cancel_and_wait
from mirante.bus import Event, emit_many
from mirante.mqtt import Message
from rtls_cambus.identifiers import SCHEMA, SOURCE
from rtls_cambus.ingest import repository
from rtls_cambus.ingest.models import CameraEvent
from rtls_cambus.ingest.payloads import (
    CameraEventPayload,
    Reading,
    Rejection,
    parse_beacon,
    parse_camera_event,
    parse_info,
    parse_status,
)
from rtls_cambus.ingest.positions import ReadingsSink
from rtls_cambus.ingest.repository import GatewaySeen
from rtls_cambus.ingest.topics import CameraTopic, CollectorTopic, GatewayTopic, OwnCommand, TopicError, route

logger = logging.getLogger(__name__)

GATEWAY_REGISTERED: Final = "rtls.gateway.registered"
GATEWAY_ONLINE: Final = "rtls.gateway.online"
GATEWAY_OFFLINE: Final = "rtls.gateway.offline"
CAMERA_REGISTERED: Final = "rtls.camera.registered"
CAMERA_EVENT: Final = "rtls.camera.event"

MAX_STORED_TOPIC: Final = 500
MAX_STORED_PAYLOAD: Final = 4096


@dataclass
class BatchOutcome:
    """What a batch did, for the metrics: messages per kind, readings stored, rejections per reason class."""

    kinds: Counter[str] = field(default_factory=Counter)
    readings: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    events: int = 0
    """Events the batch queued in the outbox (gateways, cameras, and the positions' moves, which emit some)."""


@dataclass
class _Batch:
    received_at: datetime
    outcome: BatchOutcome = field(default_factory=BatchOutcome)
    states: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    readings: dict[str, list[Reading]] = field(default_factory=lambda: defaultdict(list))
    cameras: list[tuple[CameraTopic | CollectorTopic, bytes]] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def reject(self, topic: str, payload: bytes, rejection: Rejection) -> None:
        self.outcome.rejected[rejection.reason_class] += 1
        self.rejections.append(
            {
                "received_at": self.received_at,
                "topic": topic[:MAX_STORED_TOPIC],
                "reason_class": rejection.reason_class,
                "reason": rejection.reason.replace("\x00", ""),
                "reading_index": rejection.reading_index,
                "payload": (rejection.payload or payload)[:MAX_STORED_PAYLOAD],
            }
        )


async def store_batch(
    session: AsyncSession,
    logs: AsyncSession,
    messages: Sequence[Message],
    received_at: datetime,
    *,
    max_readings: int,
    forward: ReadingsSink,
) -> BatchOutcome:
    """Store `messages` in the caller's transactions (flush only): the readings in `logs`, everything else in
    `session`, which the caller commits first; what they came to."""
    batch = _Batch(received_at)
    for message in messages:
        _sort(batch, message, max_readings)
    gateways = await _gateway_presence(session, batch)
    logged = asyncio.create_task(_log_readings(logs, batch, gateways))
    try:
        await _move_tags(session, batch, gateways, forward)
        for topic, payload in batch.cameras:
            await _camera_message(session, batch, topic, payload)
        await repository.add_rejections(session, batch.rejections)
        await emit_many(session, SCHEMA, batch.events)
    except BaseException:
        await cancel_and_wait(logged)
        raise
    await logged
    batch.outcome.events += len(batch.events)
    return batch.outcome


def _sort(batch: _Batch, message: Message, max_readings: int) -> None:
    try:
        where = route(message.topic)
    except TopicError as error:
        batch.outcome.kinds["rejected"] += 1
        batch.reject(message.topic, message.payload, Rejection(error.reason_class, str(error)))
        return
    if isinstance(where, OwnCommand):
        batch.outcome.kinds["command"] += 1
        return
    if isinstance(where, (CameraTopic, CollectorTopic)):
        batch.cameras.append((where, message.payload))
        return
    _gateway_message(batch, where, message, max_readings)


def _gateway_message(batch: _Batch, where: GatewayTopic, message: Message, max_readings: int) -> None:
    # Any message on a gateway's topic, even one it cannot use, shows the gateway is alive.
    state = "online"
    if where.channel == "status":
        batch.outcome.kinds["gateway_status"] += 1
        parsed = parse_status(message.payload)
        if isinstance(parsed, Rejection):
            batch.reject(message.topic, message.payload, parsed)
        elif parsed[0] == "offline":
            state = "offline"
    else:
        batch.outcome.kinds["beacon"] += 1
        beacon = parse_beacon(message.payload, max_readings)
        if isinstance(beacon, Rejection):
            batch.reject(message.topic, message.payload, beacon)
        else:
            batch.readings[where.mac].extend(beacon.readings)
            for rejection in beacon.rejections:
                batch.reject(message.topic, message.payload, rejection)
    batch.states[where.mac] = (state, batch.received_at)


async def _gateway_presence(session: AsyncSession, batch: _Batch) -> dict[str, GatewaySeen]:
    seen = await repository.mark_gateways_seen(session, batch.states)
    missing = {mac: state for mac, state in batch.states.items() if mac not in {row.mac for row in seen}}
    registered = await repository.register_gateways(session, missing)
    raced = {mac: state for mac, state in missing.items() if mac not in {row.mac for row in registered}}
    # Registered by another replica between the two statements: now it is there to update.
    seen += await repository.mark_gateways_seen(session, raced)
    for gateway in registered:
        batch.events.append(_gateway_event(GATEWAY_REGISTERED, gateway, batch.received_at))
        logger.info("gateway %s registered itself (unplaced)", gateway.mac)
    for gateway in seen:
        if gateway.status == gateway.previous_status:
            continue
        if gateway.status == "online":
            batch.events.append(_gateway_event(GATEWAY_ONLINE, gateway, batch.received_at))
        elif gateway.status == "offline":
            batch.events.append(_gateway_event(GATEWAY_OFFLINE, gateway, batch.received_at, reason="reported"))
    return {gateway.mac: gateway for gateway in [*seen, *registered]}


async def _log_readings(logs: AsyncSession, batch: _Batch, gateways: dict[str, GatewaySeen]) -> None:
    gateway_ids: list[int] = []
    gateway_macs: list[str] = []
    tag_macs: list[str] = []
    rssis: list[int] = []
    for mac, readings in batch.readings.items():
        gateway_ids += [gateways[mac].id] * len(readings)
        gateway_macs += [mac] * len(readings)
        tag_macs += [reading.tag_mac for reading in readings]
        rssis += [reading.rssi for reading in readings]
    await repository.add_readings(logs, batch.received_at, gateway_ids, gateway_macs, tag_macs, rssis)
    batch.outcome.readings = len(tag_macs)


async def _move_tags(
    session: AsyncSession, batch: _Batch, gateways: dict[str, GatewaySeen], forward: ReadingsSink
) -> None:
    heard = [(gateways[mac], readings) for mac, readings in batch.readings.items() if readings]
    if heard:
        batch.outcome.events += await forward(session, heard, batch.received_at)


async def _camera_message(
    session: AsyncSession, batch: _Batch, where: CameraTopic | CollectorTopic, payload: bytes
) -> None:
    topic = where.base if isinstance(where, CameraTopic) else f"rtls/cameras/{where.tenant}/{where.building}"
    buildings = await repository.building_ids_by_code(session, {where.building})
    building_id = buildings.get(where.building)
    if isinstance(where, CollectorTopic):
        batch.outcome.kinds["collector_status"] += 1
        status = parse_status(payload)
        if isinstance(status, Rejection):
            batch.reject(f"{topic}/collector/status", payload, status)
            return
        await repository.upsert_collector(
            session,
            tenant=where.tenant,
            building_code=where.building,
            building_id=building_id,
            status=status[0] or "online",
            details=status[1],
            seen_at=batch.received_at,
        )
        return
    full_topic = f"{topic}/{where.analytic}/events" if where.analytic else f"{topic}/{where.channel}"
    batch.outcome.kinds[f"camera_{where.channel}"] += 1
    if building_id is None:
        batch.reject(
            full_topic,
            payload,
            Rejection(
                "unknown_building",
                f"no building has the code {where.building!r}: give the camera's building this code "
                "(PATCH /buildings/{id}) so its cameras can register",
            ),
        )
        return
    info: dict[str, Any] | None = None
    status_word = "online"
    event: CameraEventPayload | None = None
    if where.channel == "info":
        parsed_info = parse_info(payload)
        if isinstance(parsed_info, Rejection):
            batch.reject(full_topic, payload, parsed_info)
        else:
            info = parsed_info
    elif where.channel == "status":
        status = parse_status(payload)
        if isinstance(status, Rejection):
            batch.reject(full_topic, payload, status)
        else:
            status_word = status[0] or "online"
    else:
        parsed_event = parse_camera_event(payload)
        if isinstance(parsed_event, Rejection):
            batch.reject(full_topic, payload, parsed_event)
        else:
            event = parsed_event
    floor_id = None
    if where.floor.lstrip("-").isdigit() and len(where.floor) <= 6:
        floor_id = await repository.floor_id(session, building_id, int(where.floor))
    camera_id, inserted = await repository.upsert_camera(
        session,
        building_id=building_id,
        floor_id=floor_id,
        code=where.code,
        topic=where.base,
        seen_at=batch.received_at,
        status=status_word,
        info=info,
    )
    if inserted:
        logger.info("camera %s of building %s registered itself", where.code, where.building)
        batch.events.append(
            Event(
                source=SOURCE,
                type=CAMERA_REGISTERED,
                subject=f"camera/{camera_id}",
                data={"camera_id": camera_id, "code": where.code, "building_id": building_id, "floor_id": floor_id},
            )
        )
    if event is not None and where.analytic is not None:
        stored = await repository.upsert_event(session, camera_id, where.analytic, event, batch.received_at)
        batch.events.append(_camera_event(stored, event.type, where.code, building_id))


def _camera_event(stored: CameraEvent, message_type: str, code: str, building_id: int) -> Event:
    return Event(
        source=SOURCE,
        type=CAMERA_EVENT,
        subject=f"camera/{stored.camera_id}",
        data={
            "id": stored.id,
            "camera_id": stored.camera_id,
            "camera_code": code,
            "building_id": building_id,
            "analytic": stored.analytic,
            "event_id": stored.event_id,
            "message_type": message_type,
            "type": stored.type,
            "label": stored.label,
            "sub_label": stored.sub_label,
            "score": stored.score,
            "top_score": stored.top_score,
            "zones": stored.zones,
            "entered_zones": stored.entered_zones,
            "started_at": stored.started_at.isoformat(),
            "ended_at": stored.ended_at.isoformat() if stored.ended_at else None,
        },
    )


def _gateway_event(kind: str, gateway: GatewaySeen, at: datetime, *, reason: str | None = None) -> Event:
    data: dict[str, Any] = {
        "gateway_id": gateway.id,
        "mac": gateway.mac,
        "status": gateway.status,
        "building_id": gateway.building_id,
        "floor_id": gateway.floor_id,
        "zone_id": gateway.zone_id,
        "last_seen_at": gateway.last_seen_at.isoformat(),
        "at": at.isoformat(),
    }
    if reason is not None:
        data["reason"] = reason
    return Event(source=SOURCE, type=kind, subject=f"gateway/{gateway.id}", data=data)


async def sweep_silent_gateways(session: AsyncSession, now: datetime, offline_after: timedelta) -> list[GatewaySeen]:
    """Turn offline the gateways silent for `offline_after`, each once whatever the number of replicas; those."""
    silent = await repository.mark_silent_gateways_offline(session, now - offline_after)
    await emit_many(
        session, SCHEMA, [_gateway_event(GATEWAY_OFFLINE, gateway, now, reason="silent") for gateway in silent]
    )
    for gateway in silent:
        logger.warning("gateway %s is offline: no message since %s", gateway.mac, gateway.last_seen_at)
    return silent

"""Whether a machine is there: a heartbeat turns an offline machine online, a status report says busy or online
(or offline on a clean shutdown), and a sweep turns offline the machines whose heartbeats stopped.

Every change to online or offline queues `vision.machine.online|offline` in the outbox; every change that may
leave a machine with a free slot (back online, no longer busy) calls `announce_capacity`. Only a heartbeat
brings an offline machine back: a status report from it is recorded in the log and changes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus import Event, emit, emit_many
from vision_orchestrator.capacity import announce_capacity
from vision_orchestrator.heartbeats import repository
from vision_orchestrator.identifiers import SCHEMA, SOURCE
from vision_orchestrator.tables import MachineStatus

logger = logging.getLogger(__name__)

MACHINE_ONLINE: Final = "vision.machine.online"
MACHINE_OFFLINE: Final = "vision.machine.offline"


def _machine_event(kind: str, machine_id: str, data: dict[str, Any]) -> Event:
    return Event(source=SOURCE, type=kind, subject=f"machine/{machine_id}", data={"machine_id": machine_id, **data})


async def record_heartbeat(session: AsyncSession, machine_id: str, values: dict[str, Any]) -> datetime:
    """Store the heartbeat and refresh the machine's presence; the time it was received."""
    status = MachineStatus(values["status"])
    received_at, previous = await repository.record_heartbeat(session, {"machine_id": machine_id, **values})
    if previous == MachineStatus.offline:
        await emit(
            session,
            SCHEMA,
            _machine_event(MACHINE_ONLINE, machine_id, {"status": status.value, "at": received_at.isoformat()}),
        )
        logger.info("machine %s is back online", machine_id)
    if status is MachineStatus.online and previous != MachineStatus.online:
        await announce_capacity(session, machine_id)
    return received_at


async def record_status(session: AsyncSession, machine_id: str, status: MachineStatus, reported: int) -> str:
    """Apply a status report; the machine's status afterwards."""
    current = await repository.current_status(session, machine_id)
    if current == MachineStatus.offline:
        if status is not MachineStatus.offline:
            logger.info("machine %s reported %s while offline; its next heartbeat brings it back", machine_id, status)
        return current
    previous = await repository.set_presence(session, machine_id, status)
    if status is MachineStatus.offline and previous != MachineStatus.offline:
        await emit(
            session,
            SCHEMA,
            _machine_event(MACHINE_OFFLINE, machine_id, {"reason": "reported", "at": datetime.now(UTC).isoformat()}),
        )
        logger.info("machine %s reported going offline (%d inspections running)", machine_id, reported)
    elif status is MachineStatus.online and previous != MachineStatus.online:
        await announce_capacity(session, machine_id)
    return status.value


async def sweep_silent(session: AsyncSession, offline_after: timedelta) -> list[str]:
    """Turn offline the machines without a heartbeat for `offline_after`; their ids."""
    now = datetime.now(UTC)
    silent = await repository.mark_silent_offline(session, now - offline_after)
    await emit_many(
        session,
        SCHEMA,
        [
            _machine_event(
                MACHINE_OFFLINE,
                machine_id,
                {
                    "reason": "heartbeat_timeout",
                    "last_heartbeat": last_heartbeat.isoformat() if last_heartbeat else None,
                    "at": now.isoformat(),
                },
            )
            for machine_id, last_heartbeat in silent
        ],
    )
    for machine_id, last_heartbeat in silent:
        logger.warning("machine %s is offline: no heartbeat since %s", machine_id, last_heartbeat)
    return [machine_id for machine_id, _ in silent]

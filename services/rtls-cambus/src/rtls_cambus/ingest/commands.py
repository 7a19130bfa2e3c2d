"""Camera commands: published at QoS 1 on `<camera topic>/command` (the CAM-BUS publisher's topic), answered
with the broker's acknowledgement or the reason there is none."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import aiomqtt
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.principal import Principal
from mirante.mqtt import MqttConfigError, Publisher
from rtls_cambus.devices.service import CAMERA, get_device
from rtls_cambus.ingest.errors import CameraNotOnBusError, CommandNotDeliveredError, CommandTimeoutError
from rtls_cambus.ingest.schemas import CameraCommand, CommandResult
from rtls_cambus.ingest.topics import command_topic

logger = logging.getLogger(__name__)


async def send_command(
    session: AsyncSession,
    camera_id: int,
    body: CameraCommand,
    principal: Principal,
    *,
    mqtt_url: str,
    wait_seconds: float,
) -> CommandResult:
    """Publish `body` to the camera's command topic and wait for the broker's PUBACK.

    Raises 404 for an unknown camera, 409 for one never heard on CAM-BUS, 502 when the broker refuses or cannot
    be reached, 504 when it does not acknowledge within `wait_seconds`.
    """
    camera = await get_device(session, CAMERA, camera_id)
    if camera.topic is None:
        raise CameraNotOnBusError(camera_id)
    topic = command_topic(camera.topic)
    command_id = str(uuid.uuid4())
    issued_at = datetime.now(UTC)
    payload = orjson.dumps(
        {
            "id": command_id,
            "command": body.command,
            "params": body.params or {},
            "issued_at": issued_at.isoformat(),
            "issued_by": principal.name,
        }
    )
    try:
        async with asyncio.timeout(wait_seconds):
            async with Publisher(mqtt_url, timeout=wait_seconds) as publisher:
                await publisher.publish(topic, payload, qos=1)
    except TimeoutError:
        raise CommandTimeoutError(
            f"the broker did not acknowledge the command within {wait_seconds:g} s; it may or may not reach the camera"
        ) from None
    except (aiomqtt.MqttError, MqttConfigError, OSError) as error:
        logger.warning("command %s to camera %s not delivered: %s", body.command, camera_id, error)
        raise CommandNotDeliveredError(f"the broker did not take the command: {error}") from None
    logger.info("command %s (%s) sent to camera %s by %s", body.command, command_id, camera_id, principal.name)
    return CommandResult(command_id=command_id, topic=topic, qos=1, acknowledged=True, published_at=issued_at)

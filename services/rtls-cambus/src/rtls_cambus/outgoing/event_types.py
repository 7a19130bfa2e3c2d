"""The event types of the suite a webhook subscription may name, listed at `/webhooks/event-types`.

Services declare their types as constants next to the code that emits them; the services do not import each
other, so the catalogue is kept here. A service that starts emitting a new type adds it to `SUITE_EVENT_TYPES`
(and to the table in docs/rtls-cambus.md); a subscription naming an unknown type is refused with 422.
"""

from __future__ import annotations

from typing import Final

TEST_EVENT_TYPE: Final = "rtls.webhook.test"

SUITE_EVENT_TYPES: Final[dict[str, str]] = {
    "cvat.job.created": "a CVAT job appeared in a sync",
    "cvat.job.updated": "a CVAT job changed",
    "cvat.job.deleted": "a CVAT job disappeared",
    "cvat.sync.completed": "a CVAT sync run finished",
    "telemetry.tenant.created": "a telemetry tenant was created",
    "telemetry.device.registered": "a telemetry device was registered",
    "telemetry.threshold.crossed": "a reading crossed a threshold",
    "vision.machine.online": "a vision machine came online",
    "vision.machine.offline": "a vision machine went offline",
    "vision.inspection.assigned": "an inspection was assigned to a machine",
    "vision.inspection.completed": "an inspection completed",
    "vision.inspection.failed": "an inspection failed",
    "vision.inspection.cancelled": "an inspection was cancelled",
    "recording.upload.completed": "a recording upload completed",
    "recording.upload.expired": "a recording upload expired unfinished",
    "rtls.gateway.registered": "a BLE gateway was seen for the first time",
    "rtls.gateway.online": "a gateway came back online",
    "rtls.gateway.offline": "a gateway went silent",
    "rtls.camera.registered": "a camera was seen for the first time",
    "rtls.camera.event": "a camera analytic event",
    "rtls.tag.assigned": "a tag was assigned to a person",
    "rtls.tag.unassigned": "a tag was unassigned",
    "rtls.person.zone_entered": "a person entered a zone",
    "rtls.person.zone_exited": "a person left a zone",
    "rtls.alert.created": "an alert was raised",
    "rtls.alert.acknowledged": "an alert was acknowledged",
    "rtls.alert.resolved": "an alert was resolved",
    "rtls.incident.created": "an incident was opened",
    "rtls.incident.updated": "an incident changed",
    TEST_EVENT_TYPE: "a test delivery sent from the test-send endpoint",
}

"""The topics the ingest reads, and what each names.

- `rtls/gateways/<mac>/status` and `rtls/gateways/<mac>/beacon`
- `rtls/cameras/<tenant>/<building>/<floor>/camera/<code>/info`, `.../status`, `.../<analytic>/events`
- `rtls/cameras/<tenant>/<building>/collector/status`

`.../camera/<code>/command` is where this service publishes commands; it hears its own and ignores them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from rtls_cambus.identifiers import normalise_mac

GATEWAYS_FILTER: Final = "rtls/gateways/+/+"
CAMERAS_PREFIX: Final = "rtls/cameras"
COMMAND_SUFFIX: Final = "command"

# Topic segments this service stores (codes, analytics): what CAM-BUS publishers write, and nothing that would
# need quoting in a topic or a URL.
_SEGMENT = re.compile(r"[A-Za-z0-9_.:-]{1,100}")

GatewayChannel = Literal["status", "beacon"]
CameraChannel = Literal["info", "status", "events"]


class TopicError(ValueError):
    """A topic under the ingest's filters that names nothing it knows; `reason_class` says which kind."""

    def __init__(self, reason_class: str, message: str) -> None:
        super().__init__(message)
        self.reason_class = reason_class


@dataclass(frozen=True, slots=True)
class GatewayTopic:
    mac: str
    channel: GatewayChannel


@dataclass(frozen=True, slots=True)
class CameraTopic:
    tenant: str
    building: str
    floor: str
    code: str
    channel: CameraChannel
    analytic: str | None = None

    @property
    def base(self) -> str:
        """`rtls/cameras/<tenant>/<building>/<floor>/camera/<code>`: the prefix of the camera's topics."""
        return camera_base(self.tenant, self.building, self.floor, self.code)


@dataclass(frozen=True, slots=True)
class CollectorTopic:
    tenant: str
    building: str


@dataclass(frozen=True, slots=True)
class OwnCommand:
    """A command this service published; nothing to store."""


Route = GatewayTopic | CameraTopic | CollectorTopic | OwnCommand


def camera_base(tenant: str, building: str, floor: str, code: str) -> str:
    return f"{CAMERAS_PREFIX}/{tenant}/{building}/{floor}/camera/{code}"


def command_topic(base: str) -> str:
    return f"{base}/{COMMAND_SUFFIX}"


def camera_filters(tenant: str | None) -> list[str]:
    """The CAM-BUS filters: every tenant's, or one tenant's."""
    return [f"{CAMERAS_PREFIX}/{tenant or '+'}/#"]


def route(topic: str) -> Route:
    """What `topic` names; raises `TopicError` for a topic of ours that names nothing known."""
    parts = topic.split("/")
    if parts[:2] == ["rtls", "gateways"]:
        return _gateway(parts)
    if parts[:2] == ["rtls", "cameras"]:
        return _camera(parts[2:])
    raise TopicError("unknown_topic", f"topic {topic[:200]!r} is neither rtls/gateways/... nor rtls/cameras/...")


def _gateway(parts: list[str]) -> GatewayTopic:
    if len(parts) != 4 or parts[3] not in ("status", "beacon"):
        raise TopicError(
            "unknown_topic", "gateway topics are rtls/gateways/<mac>/status and rtls/gateways/<mac>/beacon"
        )
    mac = normalise_mac(parts[2])
    if mac is None:
        raise TopicError("bad_gateway_mac", f"{parts[2][:100]!r} in the topic is not a MAC address")
    channel: GatewayChannel = "status" if parts[3] == "status" else "beacon"
    return GatewayTopic(mac, channel)


def _camera(parts: list[str]) -> Route:
    # <tenant>/<building>/collector/status
    if len(parts) == 4 and parts[2:] == ["collector", "status"]:
        _check_segments(parts[:2])
        return CollectorTopic(parts[0], parts[1])
    # <tenant>/<building>/<floor>/camera/<code>/(info|status|command) or .../<analytic>/events
    if len(parts) >= 6 and parts[3] == "camera":
        tenant, building, floor, _, code = parts[:5]
        rest = parts[5:]
        if rest == [COMMAND_SUFFIX]:
            return OwnCommand()
        _check_segments([tenant, building, floor, code])
        if rest in (["info"], ["status"]):
            channel: CameraChannel = "info" if rest == ["info"] else "status"
            return CameraTopic(tenant, building, floor, code, channel)
        if len(rest) == 2 and rest[1] == "events":
            _check_segments(rest[:1])
            return CameraTopic(tenant, building, floor, code, "events", analytic=rest[0])
    raise TopicError(
        "unknown_topic",
        "CAM-BUS topics are rtls/cameras/<tenant>/<building>/<floor>/camera/<code>/(info|status|<analytic>/events) "
        "and rtls/cameras/<tenant>/<building>/collector/status",
    )


def _check_segments(segments: list[str]) -> None:
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):
            raise TopicError(
                "bad_topic_segment", f"topic segment {segment[:100]!r} is not 1 to 100 of A-Z a-z 0-9 _ . : -"
            )

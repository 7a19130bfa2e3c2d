"""When an alert's situation is over: the events that end one, and what the periodic check looks at.

An alert whose rule said `auto_resolve` (copied to the alert when it was raised) is resolved by the engine, as the
system, when what it is about ends:
- `gateway_offline`: the gateway is back online (`rtls.gateway.online`);
- `zone_entry`: the person left the zone, i.e. the presence session the alert is about ended
  (`rtls.person.zone_exited`);
- `zone_absence`: the person is back in the zone (`rtls.person.zone_entered` for that person and zone);
- `person_not_seen`: the person is heard again (any `rtls.person.zone_entered` of theirs, or a newer position);
- `camera_event` (only when its rule asked for it): the camera ended its analytic event (its `end` message).
A suite event rule's alerts are resolved by hand: an event has no end.

Events resolve at once; the periodic check resolves, from the site's state, whatever an event did not (an alert
raised just after its situation ended, an event this replica did not see).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mirante.bus import Event
from rtls_cambus.alerts.evaluation import CAMERA_EVENT, ZONE_ENTERED, key
from rtls_cambus.alerts.schemas import Kind

GATEWAY_ONLINE: Final = "rtls.gateway.online"
ZONE_EXITED: Final = "rtls.person.zone_exited"

SYSTEM: Final = "system"
"""`resolved_by.kind` of an alert the engine resolved."""
ENGINE: Final = "alert engine"
"""`resolved_by.name` of an alert the engine resolved."""

ENDED_BY: Final[dict[str, frozenset[str]]] = {
    Kind.gateway_offline.value: frozenset({GATEWAY_ONLINE}),
    Kind.zone_entry.value: frozenset({ZONE_EXITED}),
    Kind.zone_absence.value: frozenset({ZONE_ENTERED}),
    Kind.person_not_seen.value: frozenset({ZONE_ENTERED}),
    Kind.camera_event.value: frozenset({CAMERA_EVENT}),
}
"""Kind → the event types `endings` reads for it: the engine's consumer must not skip them while such alerts may
still be resolved."""

NOTES: Final[dict[Kind, str]] = {
    Kind.gateway_offline: "The gateway is back online.",
    Kind.zone_entry: "The person left the zone.",
    Kind.zone_absence: "The person is back in the zone.",
    Kind.person_not_seen: "The person was heard again.",
    Kind.camera_event: "The camera ended its analytic event.",
}
"""The note each kind's alerts are resolved with."""


@dataclass(frozen=True, slots=True)
class Ending:
    """Alerts of `kind` whose situation an event shows is over, picked by the fields that are set."""

    kind: Kind
    dedup_key: str | None = None
    person_id: int | None = None
    zone_id: int | None = None
    gateway_id: int | None = None


def endings(event: Event) -> list[Ending]:
    """The situations `event` ends (none for most events)."""
    data = event.data
    if event.type == GATEWAY_ONLINE and (gateway := _int(data.get("gateway_id"))) is not None:
        return [Ending(Kind.gateway_offline, gateway_id=gateway)]
    if event.type == ZONE_EXITED and (session := _int(data.get("session_id"))) is not None:
        # The alert's situation is the presence session: its dedup key names it.
        return [Ending(Kind.zone_entry, dedup_key=key("session", str(session)))]
    if event.type == ZONE_ENTERED and (person := _int(data.get("person_id"))) is not None:
        found = [Ending(Kind.person_not_seen, person_id=person)]
        if (zone := _int(data.get("zone_id"))) is not None:
            found.append(Ending(Kind.zone_absence, person_id=person, zone_id=zone))
        return found
    if event.type == CAMERA_EVENT and data.get("message_type") == "end" and (stored := _int(data.get("id"))):
        return [Ending(Kind.camera_event, dedup_key=key("camera_event", str(stored)))]
    return []


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

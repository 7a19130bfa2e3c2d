"""The message of an alert, in words a person on duty reads at a glance."""

from __future__ import annotations

from collections.abc import Mapping

from rtls_cambus.alerts.evaluation import Situation
from rtls_cambus.alerts.schemas import MESSAGE_MAX_LENGTH, Kind


def duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`: two units at most."""
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole} s"
    minutes, hours, days = whole // 60, whole // 3600, whole // 86400
    if whole < 3600:
        return f"{minutes} min"
    if whole < 86400:
        rest = minutes % 60
        return f"{hours} h" + (f" {rest} min" if rest else "")
    rest = hours % 24
    return f"{days} d" + (f" {rest} h" if rest else "")


def compose(situation: Situation, names: Mapping[str, str | None]) -> str:
    """The alert's message: the rule's own (a template) when it wrote one, else one made for its kind."""
    if situation.message:
        return situation.message[:MESSAGE_MAX_LENGTH]
    details = situation.details
    person = names.get("person") or f"person {situation.person_id}"
    zone = names.get("zone") or f"zone {situation.zone_id}"
    match situation.rule.kind:
        case Kind.zone_entry:
            where = f"restricted zone {zone}" if situation.rule.zone_id is None else f"zone {zone}"
            dwell = details.get("dwell_seconds") or 0
            if situation.rule.min_dwell_seconds:
                text = f"{person} has been in {where} for {duration(dwell)}"
            else:
                text = f"{person} entered {where}"
        case Kind.zone_absence:
            text = f"{person} has not been in zone {zone} for {duration(details.get('absent_seconds') or 0)}, "
            text += "while expected there"
        case Kind.person_not_seen:
            text = f"{person} has not been seen for {duration(details.get('not_seen_seconds') or 0)}"
        case Kind.gateway_offline:
            gateway = names.get("gateway") or details.get("mac") or f"gateway {situation.gateway_id}"
            text = f"Gateway {gateway} is offline"
            if details.get("reason") == "reported":
                text += " (it reported so)"
        case Kind.camera_event:
            camera = names.get("camera") or details.get("camera_code") or f"camera {situation.camera_id}"
            what = details.get("label") or "an object"
            text = f"Camera {camera}: {what} detected by {details.get('analytic') or 'an analytic'}"
            if isinstance(details.get("score"), int | float):
                text += f" (score {details['score']:.2f})"
        case _:
            text = situation.rule.name
    return text[:MESSAGE_MAX_LENGTH]

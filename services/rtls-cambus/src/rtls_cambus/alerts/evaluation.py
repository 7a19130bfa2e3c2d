"""Deciding whether a rule holds: pure functions over an event or a snapshot of the site, no database.

A rule that holds gives a `Situation`: what the alert is about, with the two keys that make one situation give
one alert. `dedup_key` names the situation itself (a presence session, a camera event, a gateway's offline spell,
a suite event), unique per rule in the database, so an event delivered twice or a periodic check that sees the
same situation again raises nothing new. `cooldown_key` names the subject (a person, a gateway, a camera, an
event's subject): after an alert, the rule raises no other about that subject for its cooldown.

Which rules run where:
- on events (the service's own stream and the suite's): `zone_entry` without a dwell on `rtls.person.zone_entered`,
  `gateway_offline` on `rtls.gateway.offline`, `camera_event` on `rtls.camera.event`, `suite_event` on its type;
- in the periodic check: `zone_entry` (every one: the dwell, and a window that opens while someone is already
  inside), `zone_absence` and `person_not_seen`, which no event announces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeGuard

from mirante.bus import Event
from rtls_cambus.alerts.models import AlertRule
from rtls_cambus.alerts.schedule import Window
from rtls_cambus.alerts.schemas import MESSAGE_MAX_LENGTH, REFUSED_EVENT_PREFIXES, Kind
from rtls_cambus.conditions import matches, render_template

ZONE_ENTERED: Final = "rtls.person.zone_entered"
GATEWAY_OFFLINE: Final = "rtls.gateway.offline"
CAMERA_EVENT: Final = "rtls.camera.event"
TIMED_KINDS: Final = frozenset({Kind.zone_entry, Kind.zone_absence, Kind.person_not_seen})
RESOLVED_WHEN_OVER: Final = frozenset({Kind.zone_entry, Kind.zone_absence, Kind.person_not_seen, Kind.gateway_offline})
"""Kinds whose rules resolve their alerts when the situation ends unless told otherwise (`auto_resolve`); a camera
rule does so only when told to, and a suite event rule never (an event has no end)."""
PLACE_FIELDS: Final = ("person_id", "zone_id", "floor_id", "building_id", "gateway_id", "camera_id")
_KEY_MAX: Final = 180


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """An enabled rule ready to evaluate: its row's columns and parameters, the schedule parsed once."""

    id: int
    name: str
    kind: Kind
    severity: str
    cooldown_seconds: int
    event_type: str | None = None
    zone_id: int | None = None
    person_id: int | None = None
    person_group_id: int | None = None
    gateway_id: int | None = None
    camera_id: int | None = None
    camera_group_id: int | None = None
    building_id: int | None = None
    floor_id: int | None = None
    window: Window | None = None
    min_dwell_seconds: int = 0
    min_absence_seconds: int = 0
    not_seen_seconds: int = 0
    analytic: str | None = None
    label: str | None = None
    min_score: float | None = None
    conditions: tuple[Mapping[str, Any], ...] = ()
    message_template: str | None = None
    auto_resolve: bool = False

    @classmethod
    def of(cls, row: AlertRule) -> CompiledRule:
        params = row.params or {}
        schedule = params.get("schedule")
        return cls(
            id=row.id,
            name=row.name,
            kind=Kind(row.kind),
            severity=row.severity,
            cooldown_seconds=row.cooldown_seconds,
            event_type=row.event_type,
            zone_id=row.zone_id,
            person_id=row.person_id,
            person_group_id=row.person_group_id,
            gateway_id=row.gateway_id,
            camera_id=row.camera_id,
            camera_group_id=row.camera_group_id,
            building_id=row.building_id,
            floor_id=row.floor_id,
            window=Window.of(**schedule) if schedule else None,
            min_dwell_seconds=int(params.get("min_dwell_seconds") or 0),
            min_absence_seconds=int(params.get("min_absence_seconds") or 0),
            not_seen_seconds=int(params.get("not_seen_seconds") or 0),
            analytic=_folded(params.get("analytic")),
            label=_folded(params.get("label")),
            min_score=params.get("min_score"),
            conditions=tuple(params.get("conditions") or ()),
            message_template=params.get("message_template"),
            auto_resolve=bool(params.get("auto_resolve", Kind(row.kind) in RESOLVED_WHEN_OVER)),
        )

    @property
    def trigger(self) -> str | None:
        """The event type this rule is evaluated on, or None when only the periodic check evaluates it."""
        if self.kind is Kind.suite_event:
            return self.event_type
        if self.kind is Kind.zone_entry and self.min_dwell_seconds == 0:
            return ZONE_ENTERED
        if self.kind is Kind.gateway_offline:
            return GATEWAY_OFFLINE
        if self.kind is Kind.camera_event:
            return CAMERA_EVENT
        return None

    def targets(self, person_id: int, groups: frozenset[int]) -> bool:
        """Whether the person is one the rule is about (its person, a member of its group, or anyone)."""
        if self.person_id is not None and person_id != self.person_id:
            return False
        return self.person_group_id is None or self.person_group_id in groups


@dataclass(frozen=True)
class RuleSet:
    """The enabled rules, by the event type that triggers them and for the periodic check."""

    by_trigger: Mapping[str, tuple[CompiledRule, ...]]
    timed: tuple[CompiledRule, ...]

    @classmethod
    def of(cls, rules: Iterable[CompiledRule]) -> RuleSet:
        by_trigger: dict[str, list[CompiledRule]] = {}
        timed: list[CompiledRule] = []
        for rule in rules:
            if rule.trigger is not None:
                by_trigger.setdefault(rule.trigger, []).append(rule)
            if rule.kind in TIMED_KINDS:
                timed.append(rule)
        return cls({key: tuple(value) for key, value in by_trigger.items()}, tuple(timed))


@dataclass(frozen=True, slots=True)
class Situation:
    """What an alert would be about; `message` is set when the rule wrote it (a template), else composed later."""

    rule: CompiledRule
    dedup_key: str
    cooldown_key: str
    person_id: int | None = None
    zone_id: int | None = None
    floor_id: int | None = None
    building_id: int | None = None
    gateway_id: int | None = None
    camera_id: int | None = None
    source_event_id: str | None = None
    source_event_type: str | None = None
    tenant: str | None = None
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventFacts:
    """What evaluating an event needs beyond its data, read once per event."""

    restricted_zone: bool = False
    person_groups: frozenset[int] = frozenset()
    camera_groups: frozenset[int] = frozenset()
    camera_floor_id: int | None = None


@dataclass(frozen=True, slots=True)
class OpenSession:
    id: int
    person_id: int
    zone_id: int
    floor_id: int | None
    building_id: int | None
    started_at: datetime


@dataclass(frozen=True)
class SiteSnapshot:
    """What the periodic check evaluates: open presence sessions, restricted zones, group members, the last time
    each person left each zone, when each person carrying a tag was last heard, and where zones are."""

    open_sessions: tuple[OpenSession, ...] = ()
    restricted_zones: frozenset[int] = frozenset()
    groups_of: Mapping[int, frozenset[int]] = field(default_factory=dict)
    members_of: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    last_exit: Mapping[tuple[int, int], datetime] = field(default_factory=dict)
    last_seen: Mapping[int, datetime] = field(default_factory=dict)
    zone_places: Mapping[int, tuple[int | None, int | None]] = field(default_factory=dict)


def storable(value: Any) -> Any:
    """`value` with NUL characters dropped from its text: PostgreSQL text and JSONB cannot hold them, and an event
    of another service may carry one (in its subject, say)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(name): storable(item) for name, item in value.items()}
    return value


def key(prefix: str, text: str) -> str:
    """`prefix:text`, with text too long for the column replaced by its digest."""
    text = storable(text)
    if len(text) > _KEY_MAX:
        text = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return f"{prefix}:{text}"


# -- on events -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventView:
    """What the rules look at in an event, read from its data once for all the rules it triggers."""

    event: Event
    facts: EventFacts
    person_id: int | None
    zone_id: int | None
    floor_id: int | None
    building_id: int | None
    session_id: int | None
    gateway_id: int | None
    camera_id: int | None
    stored_id: int | None
    analytic: str | None
    label: str | None
    score: float | None
    at: datetime

    @classmethod
    def of(cls, event: Event, facts: EventFacts) -> EventView:
        data = event.data
        scores = [float(value) for value in (data.get("score"), data.get("top_score")) if _number(value)]
        return cls(
            event=event,
            facts=facts,
            person_id=_int(data, "person_id"),
            zone_id=_int(data, "zone_id"),
            floor_id=_int(data, "floor_id"),
            building_id=_int(data, "building_id"),
            session_id=_int(data, "session_id"),
            gateway_id=_int(data, "gateway_id"),
            camera_id=_int(data, "camera_id"),
            stored_id=_int(data, "id"),
            analytic=_folded(data.get("analytic")),
            label=_folded(data.get("label")),
            score=max(scores) if scores else None,
            at=_time(data.get("started_at")) or event.time,
        )


def evaluate_event(rule: CompiledRule, event: Event, facts: EventFacts) -> Situation | None:
    """The situation `event` makes for `rule` (one of the rules its type triggers), or None."""
    found = evaluate_rules((rule,), event, facts)
    return found[0] if found else None


def evaluate_rules(rules: Iterable[CompiledRule], event: Event, facts: EventFacts) -> list[Situation]:
    """The situations `event` makes for `rules` (those its type triggers)."""
    if event.type.startswith(REFUSED_EVENT_PREFIXES):
        return []
    view = EventView.of(event, facts)
    found = []
    for rule in rules:
        evaluator = _ON_EVENTS.get(rule.kind)
        situation = evaluator(rule, view) if evaluator is not None else None
        if situation is not None:
            found.append(situation)
    return found


def _zone_entered(rule: CompiledRule, view: EventView) -> Situation | None:
    person, zone, session = view.person_id, view.zone_id, view.session_id
    # The most selective test first: most zone rules are about one person or one zone.
    if rule.person_id is not None and rule.person_id != person:
        return None
    if person is None or zone is None or session is None:
        return None
    if not _zone_fits(rule, zone, view.facts.restricted_zone) or not rule.targets(person, view.facts.person_groups):
        return None
    if rule.window is not None and not rule.window.contains(view.at):
        return None
    return Situation(
        rule,
        key("session", str(session)),
        key("person", str(person)),
        person_id=person,
        zone_id=zone,
        floor_id=view.floor_id,
        building_id=view.building_id,
        source_event_id=view.event.id,
        source_event_type=view.event.type,
        tenant=view.event.tenant,
        details={"session_id": session, "entered_at": view.at.isoformat(), "dwell_seconds": 0},
    )


def _gateway_offline(rule: CompiledRule, view: EventView) -> Situation | None:
    gateway = view.gateway_id
    if gateway is None:
        return None
    wanted = ((rule.gateway_id, gateway), (rule.floor_id, view.floor_id), (rule.building_id, view.building_id))
    if any(expected is not None and expected != actual for expected, actual in wanted):
        return None
    data = view.event.data
    last_seen = data.get("last_seen_at")
    return Situation(
        rule,
        # The offline spell: the gateway's last message stays the same until it speaks again.
        key("gateway", f"{gateway}:{last_seen}"),
        key("gateway", str(gateway)),
        gateway_id=gateway,
        zone_id=view.zone_id,
        floor_id=view.floor_id,
        building_id=view.building_id,
        source_event_id=view.event.id,
        source_event_type=view.event.type,
        tenant=view.event.tenant,
        details={"mac": data.get("mac"), "last_seen_at": last_seen, "reason": data.get("reason")},
    )


def _camera_event(rule: CompiledRule, view: EventView) -> Situation | None:
    camera, stored = view.camera_id, view.stored_id
    if camera is None or stored is None:
        return None
    if rule.camera_id is not None and camera != rule.camera_id:
        return None
    if rule.camera_group_id is not None and rule.camera_group_id not in view.facts.camera_groups:
        return None
    if rule.analytic is not None and view.analytic != rule.analytic:
        return None
    if rule.label is not None and view.label != rule.label:
        return None
    if rule.min_score is not None and (view.score is None or view.score < rule.min_score):
        return None
    data = view.event.data
    return Situation(
        rule,
        # One alert per camera event, over its new, update and end messages.
        key("camera_event", str(stored)),
        key("camera", str(camera)),
        camera_id=camera,
        floor_id=view.facts.camera_floor_id,
        building_id=view.building_id,
        source_event_id=view.event.id,
        source_event_type=view.event.type,
        tenant=view.event.tenant,
        details={
            "camera_event_id": stored,
            "camera_code": data.get("camera_code"),
            "analytic": data.get("analytic"),
            "label": data.get("label"),
            "score": view.score,
        },
    )


def _suite_event(rule: CompiledRule, view: EventView) -> Situation | None:
    event = view.event
    if not matches(event.data, rule.conditions):
        return None
    message = None
    if rule.message_template:
        message = render_template(
            rule.message_template, event.data, max_length=MESSAGE_MAX_LENGTH, fallback=_event_message(event)
        )
    return Situation(
        rule,
        key("event", event.id),
        key("subject", event.subject) if event.subject else key("type", event.type),
        **{name: _int(event.data, name) for name in PLACE_FIELDS},
        source_event_id=event.id,
        source_event_type=event.type,
        tenant=event.tenant,
        message=message or _event_message(event),
        details={"subject": event.subject, "source": event.source},
    )


def _event_message(event: Event) -> str:
    return f"{event.type}" + (f" ({event.subject})" if event.subject else "")


_ON_EVENTS: Final[dict[Kind, Callable[[CompiledRule, EventView], Situation | None]]] = {
    Kind.zone_entry: _zone_entered,
    Kind.gateway_offline: _gateway_offline,
    Kind.camera_event: _camera_event,
    Kind.suite_event: _suite_event,
}


# -- the periodic check ----------------------------------------------------------------------------------------------


def evaluate_timed(rule: CompiledRule, site: SiteSnapshot, now: datetime) -> list[Situation]:
    """The situations `rule` (a zone entry, absence or not-seen rule) finds in `site` at `now`."""
    match rule.kind:
        case Kind.zone_entry:
            return _dwelling(rule, site, now)
        case Kind.zone_absence:
            return _absent(rule, site, now)
        case Kind.person_not_seen:
            return _not_seen(rule, site, now)
    return []


def _dwelling(rule: CompiledRule, site: SiteSnapshot, now: datetime) -> list[Situation]:
    if rule.window is not None and not rule.window.contains(now):
        return []
    found = []
    for session in site.open_sessions:
        if not _zone_fits(rule, session.zone_id, session.zone_id in site.restricted_zones):
            continue
        if not rule.targets(session.person_id, site.groups_of.get(session.person_id, frozenset())):
            continue
        dwell = (now - session.started_at).total_seconds()
        if dwell < rule.min_dwell_seconds:
            continue
        found.append(
            Situation(
                rule,
                key("session", str(session.id)),
                key("person", str(session.person_id)),
                person_id=session.person_id,
                zone_id=session.zone_id,
                floor_id=session.floor_id,
                building_id=session.building_id,
                details={
                    "session_id": session.id,
                    "entered_at": session.started_at.isoformat(),
                    "dwell_seconds": int(dwell),
                },
            )
        )
    return found


def _absent(rule: CompiledRule, site: SiteSnapshot, now: datetime) -> list[Situation]:
    opened = rule.window.opened_at(now) if rule.window is not None else None
    if opened is None or rule.zone_id is None:
        return []
    zone = rule.zone_id
    present = {session.person_id for session in site.open_sessions if session.zone_id == zone}
    floor, building = site.zone_places.get(zone, (None, None))
    found = []
    for person in _expected(rule, site):
        if person in present:
            continue
        left = site.last_exit.get((person, zone))
        since = max(opened, left) if left is not None else opened
        absent = (now - since).total_seconds()
        if absent < rule.min_absence_seconds:
            continue
        found.append(
            Situation(
                rule,
                # One alert per person per occurrence of the window.
                key("absence", f"{person}:{opened.isoformat()}"),
                key("person", str(person)),
                person_id=person,
                zone_id=zone,
                floor_id=floor,
                building_id=building,
                details={
                    "expected_since": opened.isoformat(),
                    "absent_since": since.isoformat(),
                    "absent_seconds": int(absent),
                },
            )
        )
    return found


def _expected(rule: CompiledRule, site: SiteSnapshot) -> tuple[int, ...]:
    if rule.person_id is not None:
        return (rule.person_id,)
    if rule.person_group_id is not None:
        return site.members_of.get(rule.person_group_id, ())
    return ()


def _not_seen(rule: CompiledRule, site: SiteSnapshot, now: datetime) -> list[Situation]:
    if rule.window is not None and not rule.window.contains(now):
        return []
    found = []
    for person, seen in site.last_seen.items():
        if not rule.targets(person, site.groups_of.get(person, frozenset())):
            continue
        silent = (now - seen).total_seconds()
        if silent < rule.not_seen_seconds:
            continue
        found.append(
            Situation(
                rule,
                # Seen again and then lost again is a new situation.
                key("not_seen", f"{person}:{seen.isoformat()}"),
                key("person", str(person)),
                person_id=person,
                details={"last_seen_at": seen.isoformat(), "not_seen_seconds": int(silent)},
            )
        )
    return found


# -- helpers ---------------------------------------------------------------------------------------------------------


def _zone_fits(rule: CompiledRule, zone: int, restricted: bool) -> bool:
    return zone == rule.zone_id if rule.zone_id is not None else restricted


def _int(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _folded(value: Any) -> str | None:
    return value.casefold() if isinstance(value, str) else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None

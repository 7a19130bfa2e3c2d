"""Request and response bodies of alert rules, alerts and the alerts report.

A rule is one of six kinds, told apart by `kind`; each kind has its own fields next to the common ones (name,
description, enabled, severity, cooldown), so the API describes exactly what each kind takes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, TypeAdapter, model_validator

from mirante.types import DateTime, Id64, NotBlank
from mirante.web.schema import Omittable
from rtls_cambus.alerts.schedule import WEEKDAYS, timezone_problem
from rtls_cambus.conditions import Conditions, EventType, template_problem
from rtls_cambus.fields import Body, Description, Name, Patch, Severity

AlertRuleId = Annotated[Id64, Path(description="id of the alert rule")]
AlertId = Annotated[Id64, Path(description="id of the alert")]

DAY_SECONDS: Final = 86_400
MESSAGE_MAX_LENGTH: Final = 1000
REFUSED_EVENT_PREFIXES: Final = ("rtls.alert.", "rtls.incident.")
"""Alert rules on alerts would feed on their own output; on incidents, incident rules on alerts close a loop."""


class Kind(StrEnum):
    zone_entry = "zone_entry"
    zone_absence = "zone_absence"
    person_not_seen = "person_not_seen"
    gateway_offline = "gateway_offline"
    camera_event = "camera_event"
    suite_event = "suite_event"


class AlertStatus(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Clock = Annotated[
    str,
    StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$"),
    Field(description="HH:MM on a 24-hour clock", examples=["08:00"]),
]
TimeZoneName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$"),
    Field(description="IANA time zone name", examples=["America/Sao_Paulo"]),
]


class Schedule(Body):
    """Days of the week and a daily window in a time zone; a window whose end is before its start runs past
    midnight (22:00 to 06:00), and one whose end equals its start is the whole day."""

    days: Annotated[list[Weekday], Field(min_length=1, max_length=7, description="mon ... sun; repeats are ignored")]
    start: Clock
    end: Clock
    timezone: TimeZoneName = "UTC"

    @model_validator(mode="after")
    def _known_zone(self) -> Self:
        if problem := timezone_problem(self.timezone):
            raise ValueError(f"timezone: {problem}")
        self.days = sorted(set(self.days), key=WEEKDAYS.index)
        return self


Cooldown = Annotated[
    int,
    Field(
        ge=0,
        le=7 * DAY_SECONDS,
        description="seconds after an alert during which the rule raises no other about the same subject "
        "(person, gateway, camera, event subject); 0: none",
    ),
]
MessageTemplate = Annotated[
    str,
    NotBlank(max_length=MESSAGE_MAX_LENGTH),
    Field(description="the alert's message, not only white space; {dotted.path} is replaced from the event's data"),
]
Label = Annotated[str, NotBlank(max_length=100), Field(description="compared without regard to case")]
Score = Annotated[float, Field(ge=0, le=1, description="0 to 1; the event's best score must reach it")]
DwellSeconds = Annotated[int, Field(ge=0, le=DAY_SECONDS, description="seconds")]
AutoResolve = Annotated[
    StrictBool,
    Field(description="the alert engine resolves the rule's alerts when their situation ends (see each kind)"),
]
NotSeenSeconds = Annotated[int, Field(ge=60, le=30 * DAY_SECONDS, description="seconds, one minute to 30 days")]


class _RuleFields(Body):
    name: Name
    description: Description | None = None
    enabled: StrictBool = True
    severity: Severity
    cooldown_seconds: Cooldown = 300


def _at_most_one(model: BaseModel, *names: str) -> None:
    given = [name for name in names if getattr(model, name) is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of {', '.join(names)} (got {' and '.join(given)})")


class ZoneEntryRule(_RuleFields):
    """Someone enters a restricted zone (and stays `min_dwell_seconds`) while the schedule holds."""

    kind: Literal["zone_entry"]
    zone_id: Id64 | None = Field(default=None, description="the zone; null: every zone flagged restricted")
    person_id: Id64 | None = Field(default=None, description="only this person (or give person_group_id)")
    person_group_id: Id64 | None = Field(default=None, description="only people of this group; neither: everyone")
    schedule: Schedule | None = Field(default=None, description="when it applies; null: always")
    min_dwell_seconds: DwellSeconds = 0
    auto_resolve: AutoResolve = Field(default=True, description="resolve the alert when the person leaves the zone")

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        _at_most_one(self, "person_id", "person_group_id")
        return self


class ZoneAbsenceRule(_RuleFields):
    """A person, or each person of a group, is expected in a zone during the schedule and is not there."""

    kind: Literal["zone_absence"]
    zone_id: Id64
    person_id: Id64 | None = Field(default=None, description="the person expected (or give person_group_id)")
    person_group_id: Id64 | None = Field(default=None, description="each person of this group is expected")
    schedule: Schedule
    min_absence_seconds: Annotated[int, Field(ge=0, le=DAY_SECONDS, description="seconds")] = 300
    auto_resolve: AutoResolve = Field(default=True, description="resolve the alert when the person is back in the zone")

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        _at_most_one(self, "person_id", "person_group_id")
        if self.person_id is None and self.person_group_id is None:
            raise ValueError("give person_id or person_group_id: who is expected in the zone")
        return self


class PersonNotSeenRule(_RuleFields):
    """A person carrying a tag has not been heard by any gateway for `not_seen_seconds`."""

    kind: Literal["person_not_seen"]
    person_id: Id64 | None = Field(default=None, description="only this person (or give person_group_id)")
    person_group_id: Id64 | None = Field(default=None, description="people of this group; neither: everyone")
    not_seen_seconds: NotSeenSeconds
    schedule: Schedule | None = Field(default=None, description="when it applies; null: always")
    auto_resolve: AutoResolve = Field(default=True, description="resolve the alert when the person is heard again")

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        _at_most_one(self, "person_id", "person_group_id")
        return self


class GatewayOfflineRule(_RuleFields):
    """A gateway goes offline (silent for the configured time, or reporting itself offline)."""

    kind: Literal["gateway_offline"]
    gateway_id: Id64 | None = Field(default=None, description="only this gateway")
    floor_id: Id64 | None = Field(default=None, description="only gateways of this floor")
    building_id: Id64 | None = Field(default=None, description="only gateways of this building; none: any gateway")
    auto_resolve: AutoResolve = Field(default=True, description="resolve the alert when the gateway is back online")


class CameraEventRule(_RuleFields):
    """A camera reports an analytic event (one alert per camera event, over its new/update/end messages)."""

    kind: Literal["camera_event"]
    analytic: Label | None = Field(default=None, description="e.g. intrusion; null: any analytic")
    label: Label | None = Field(default=None, description="e.g. person; null: any label")
    min_score: Score | None = None
    camera_id: Id64 | None = Field(default=None, description="only this camera (or give camera_group_id)")
    camera_group_id: Id64 | None = Field(default=None, description="only cameras of this group; neither: any")
    auto_resolve: AutoResolve = Field(
        default=False,
        description="resolve the alert when the camera ends its analytic event (its `end` message); off by "
        "default: a detection is something to look at, and the object leaving the view does not mean anyone has",
    )

    @model_validator(mode="after")
    def _one_camera(self) -> Self:
        _at_most_one(self, "camera_id", "camera_group_id")
        return self


def _check_suite_rule(event_type: str | None, template: str | None) -> None:
    if event_type is not None and event_type.startswith(REFUSED_EVENT_PREFIXES):
        raise ValueError(
            f"event_type {event_type}: rules on alerts or incidents would raise alerts from their own output"
        )
    if template is not None and (problem := template_problem(template)):
        raise ValueError(f"message_template: {problem}")


class SuiteEventRule(_RuleFields):
    """Any event of the suite whose data meets the conditions (e.g. vision.inspection.failed). An event has no end,
    so its alerts are resolved by hand."""

    kind: Literal["suite_event"]
    event_type: EventType
    conditions: Conditions = []
    message_template: MessageTemplate | None = None

    @model_validator(mode="after")
    def _valid_rule(self) -> Self:
        _check_suite_rule(self.event_type, self.message_template)
        return self


RULE_MODELS: Final[dict[str, type[_RuleFields]]] = {
    Kind.zone_entry: ZoneEntryRule,
    Kind.zone_absence: ZoneAbsenceRule,
    Kind.person_not_seen: PersonNotSeenRule,
    Kind.gateway_offline: GatewayOfflineRule,
    Kind.camera_event: CameraEventRule,
    Kind.suite_event: SuiteEventRule,
}

AlertRuleCreate = Annotated[
    ZoneEntryRule | ZoneAbsenceRule | PersonNotSeenRule | GatewayOfflineRule | CameraEventRule | SuiteEventRule,
    Field(discriminator="kind"),
]
rule_adapter: TypeAdapter[AlertRuleCreate] = TypeAdapter(AlertRuleCreate)

REFERENCE_FIELDS: Final = {
    "zone_id": "zone",
    "person_id": "person",
    "person_group_id": "person group",
    "gateway_id": "gateway",
    "camera_id": "camera",
    "camera_group_id": "camera group",
    "building_id": "building",
    "floor_id": "floor",
}
"""The fields that name other records, with what each names (its 404 when it names nothing)."""
COLUMN_FIELDS: Final = frozenset(
    {"name", "description", "kind", "enabled", "severity", "cooldown_seconds", "event_type", *REFERENCE_FIELDS}
)
"""Fields stored in columns of their own; the rest of a kind's fields go to `params`."""


class _Stored(BaseModel):
    id: int
    created_at: datetime
    updated_at: datetime


class ZoneEntryRuleRead(ZoneEntryRule, _Stored):
    pass


class ZoneAbsenceRuleRead(ZoneAbsenceRule, _Stored):
    pass


class PersonNotSeenRuleRead(PersonNotSeenRule, _Stored):
    pass


class GatewayOfflineRuleRead(GatewayOfflineRule, _Stored):
    pass


class CameraEventRuleRead(CameraEventRule, _Stored):
    pass


class SuiteEventRuleRead(SuiteEventRule, _Stored):
    pass


AlertRuleRead = Annotated[
    ZoneEntryRuleRead
    | ZoneAbsenceRuleRead
    | PersonNotSeenRuleRead
    | GatewayOfflineRuleRead
    | CameraEventRuleRead
    | SuiteEventRuleRead,
    Field(discriminator="kind"),
]
rule_read_adapter: TypeAdapter[AlertRuleRead] = TypeAdapter(AlertRuleRead)


class AlertRuleUpdate(Patch):
    """Any field of the rule's kind; omitted fields stay, null clears an optional one. The kind cannot change
    (delete the rule and create another), and a field of another kind is refused."""

    NOT_NULL = frozenset(
        {
            "name",
            "enabled",
            "severity",
            "cooldown_seconds",
            "event_type",
            "conditions",
            "min_dwell_seconds",
            "min_absence_seconds",
            "not_seen_seconds",
            "auto_resolve",
        }
    )

    name: Omittable[Name] = None
    description: Description | None = None
    enabled: Omittable[StrictBool] = None
    severity: Omittable[Severity] = None
    cooldown_seconds: Omittable[Cooldown] = None
    zone_id: Id64 | None = None
    person_id: Id64 | None = None
    person_group_id: Id64 | None = None
    gateway_id: Id64 | None = None
    floor_id: Id64 | None = None
    building_id: Id64 | None = None
    camera_id: Id64 | None = None
    camera_group_id: Id64 | None = None
    schedule: Schedule | None = None
    min_dwell_seconds: Omittable[DwellSeconds] = None
    min_absence_seconds: Omittable[DwellSeconds] = None
    not_seen_seconds: Omittable[NotSeenSeconds] = None
    analytic: Label | None = None
    label: Label | None = None
    min_score: Score | None = None
    event_type: Omittable[EventType] = None
    conditions: Omittable[Conditions] = None
    message_template: MessageTemplate | None = None
    auto_resolve: Omittable[StrictBool] = None

    def sent(self) -> dict[str, Any]:
        """The fields the client sent, as plain values."""
        return self.model_dump(mode="json", include=self.model_fields_set)


RuleKindFilter = Annotated[Kind | None, Query(description="only rules of this kind")]
EnabledFilter = Annotated[bool | None, Query(description="only enabled (true) or disabled (false) rules")]
SeverityFilter = Annotated[Severity | None, Query(description="only of this severity")]


class ActorRead(BaseModel):
    """Who acknowledged or resolved an alert: a user, an API key, or the system (the alert engine, resolving an
    alert whose situation ended; no id)."""

    kind: str = Field(description="user, api_key or system")
    id: int | None
    name: str


class AlertRead(BaseModel):
    id: int
    rule_id: int | None
    rule_name: str
    kind: Kind
    severity: Severity
    status: AlertStatus
    message: str
    person_id: int | None
    zone_id: int | None
    floor_id: int | None
    building_id: int | None
    gateway_id: int | None
    camera_id: int | None
    source_event_id: str | None
    source_event_type: str | None
    tenant: str | None
    details: dict[str, Any]
    auto_resolve: bool = Field(description="the engine resolves it when its situation ends (from its rule)")
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: ActorRead | None
    acknowledge_note: str | None
    resolved_at: datetime | None
    resolved_by: ActorRead | None
    resolve_note: str | None


class AlertAction(Body):
    note: Description | None = None


StatusesFilter = Annotated[
    list[AlertStatus] | None,
    Query(max_length=3, description="only in these statuses (repeat the parameter: status=open&status=acknowledged)"),
]
KindFilter = Annotated[Kind | None, Query(description="only of this kind")]
RuleFilter = Annotated[Id64 | None, Query(description="only raised by this rule")]
PersonFilter = Annotated[Id64 | None, Query(description="only about this person")]
ZoneFilter = Annotated[Id64 | None, Query(description="only about this zone")]
From = Annotated[DateTime | None, Query(alias="from", description="raised at or after this instant (RFC 3339)")]
To = Annotated[DateTime | None, Query(alias="to", description="raised before this instant (RFC 3339)")]


class Bucket(StrEnum):
    hour = "hour"
    day = "day"
    week = "week"
    month = "month"


class AlertReportRow(BaseModel):
    period_start: datetime
    kind: Kind
    severity: Severity
    count: int


class AlertReport(BaseModel):
    """Alerts raised in `[from, to)`, counted per period (in `timezone`), kind and severity."""

    model_config = ConfigDict(populate_by_name=True)

    period_from: datetime = Field(serialization_alias="from")
    period_to: datetime = Field(serialization_alias="to")
    bucket: Bucket
    timezone: str
    total: int
    by_kind: dict[str, int]
    by_severity: dict[str, int]
    rows: list[AlertReportRow]


ReportTimeZone = Annotated[
    TimeZoneName, Query(description="periods start at midnight (or the hour) of this IANA time zone")
]

"""Alert rules, the alerts they raised, and the time each rule last alerted about each subject (the cooldown).

A rule's references (zone, person, groups, devices, building, floor) are foreign keys that go with what they
name: a rule about a zone that no longer exists would never hold again, and widening it silently (a null zone
means "every restricted zone") would be worse. What is particular to a kind and references nothing (schedule,
thresholds, conditions, message template) is in `params`.

Alerts copy what they are about (ids, the rule's name, the message), so they read the same after the rule or the
site changed; `rule_id` is kept for filtering and becomes null when the rule is deleted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rtls_cambus.db import Base

KINDS: Final = ("zone_entry", "zone_absence", "person_not_seen", "gateway_offline", "camera_event", "suite_event")
SEVERITIES: Final = ("low", "medium", "high", "critical")
STATUSES: Final = ("open", "acknowledged", "resolved")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _reference(table: str) -> Any:
    return ForeignKey(f"{table}.id", ondelete="CASCADE")


class AlertRule(Base):
    __tablename__ = "alert_rules"
    __table_args__ = (
        CheckConstraint(_one_of("kind", KINDS), name="kind"),
        CheckConstraint(_one_of("severity", SEVERITIES), name="severity"),
        CheckConstraint("cooldown_seconds >= 0", name="cooldown_not_negative"),
        Index("ix_alert_rules_kind_enabled", "kind", "enabled"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(30))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    severity: Mapped[str] = mapped_column(String(20))
    cooldown_seconds: Mapped[int] = mapped_column(Integer, server_default="0")
    event_type: Mapped[str | None] = mapped_column(String(200), comment="suite_event: the event type it matches")
    zone_id: Mapped[int | None] = mapped_column(BigInteger, _reference("zones"), index=True)
    person_id: Mapped[int | None] = mapped_column(BigInteger, _reference("people"), index=True)
    person_group_id: Mapped[int | None] = mapped_column(BigInteger, _reference("person_groups"), index=True)
    gateway_id: Mapped[int | None] = mapped_column(BigInteger, _reference("devices"), index=True)
    camera_id: Mapped[int | None] = mapped_column(BigInteger, _reference("devices"), index=True)
    camera_group_id: Mapped[int | None] = mapped_column(BigInteger, _reference("camera_groups"), index=True)
    building_id: Mapped[int | None] = mapped_column(BigInteger, _reference("buildings"), index=True)
    floor_id: Mapped[int | None] = mapped_column(BigInteger, _reference("floors"), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb"), comment="what the kind needs besides references"
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class AlertEvent(Base):
    __tablename__ = "alert_events"
    __table_args__ = (
        CheckConstraint(_one_of("kind", KINDS), name="kind"),
        CheckConstraint(_one_of("severity", SEVERITIES), name="severity"),
        CheckConstraint(_one_of("status", STATUSES), name="status"),
        UniqueConstraint("rule_id", "dedup_key"),
        Index("ix_alert_events_created_at", "created_at"),
        Index("ix_alert_events_status_severity", "status", "severity"),
        Index("ix_alert_events_person_id_created_at", "person_id", "created_at"),
        Index("ix_alert_events_zone_id_created_at", "zone_id", "created_at"),
        # The few alerts the engine may still resolve: what every look for an ended situation starts from.
        Index("ix_alert_events_to_resolve", "kind", postgresql_where=text("auto_resolve AND status <> 'resolved'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    rule_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("alert_rules.id", ondelete="SET NULL"), comment="null once the rule is deleted"
    )
    rule_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(30))
    severity: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), server_default="open")
    message: Mapped[str] = mapped_column(String(1000))
    dedup_key: Mapped[str] = mapped_column(String(300), comment="the situation: one alert per rule and situation")
    cooldown_key: Mapped[str] = mapped_column(String(200), comment="the subject the rule's cooldown applies to")
    person_id: Mapped[int | None] = mapped_column(BigInteger)
    zone_id: Mapped[int | None] = mapped_column(BigInteger)
    floor_id: Mapped[int | None] = mapped_column(BigInteger)
    building_id: Mapped[int | None] = mapped_column(BigInteger)
    gateway_id: Mapped[int | None] = mapped_column(BigInteger)
    camera_id: Mapped[int | None] = mapped_column(BigInteger)
    source_event_id: Mapped[str | None] = mapped_column(String(64), comment="the event it was raised from, if one")
    source_event_type: Mapped[str | None] = mapped_column(String(200))
    tenant: Mapped[str | None] = mapped_column(
        String(100), index=True, comment="the source event's tenant; null for the site's own alerts"
    )
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    auto_resolve: Mapped[bool] = mapped_column(
        Boolean, server_default="false", comment="the engine resolves it when its situation ends (from its rule)"
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by_id: Mapped[int | None] = mapped_column(BigInteger, comment="identity user or API key id")
    acknowledged_by_kind: Mapped[str | None] = mapped_column(String(20), comment="user or api_key")
    acknowledged_by_name: Mapped[str | None] = mapped_column(String(200))
    acknowledge_note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by_id: Mapped[int | None] = mapped_column(BigInteger)
    resolved_by_kind: Mapped[str | None] = mapped_column(String(20), comment="user, api_key or system")
    resolved_by_name: Mapped[str | None] = mapped_column(String(200))
    resolve_note: Mapped[str | None] = mapped_column(Text)


class AlertCooldown(Base):
    """When a rule last raised an alert about a subject (a person, a gateway, a camera, an event subject)."""

    __tablename__ = "alert_cooldowns"

    rule_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("alert_rules.id", ondelete="CASCADE"), primary_key=True)
    cooldown_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_alert_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

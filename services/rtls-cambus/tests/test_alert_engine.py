"""The alert engine against the real database: each kind of rule on events and in the periodic check, one alert
per situation (an event seen twice, a check seeing the same situation again), cooldowns, schedules, tenants and the
`rtls.alert.created` event in the outbox; alerts resolved by the engine when their situation ends."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mirante.auth.principal import Principal
from mirante.auth.roles import Role
from mirante.bus import Event
from mirante.bus.tables import outbox_table
from mirante.testing.plans import plan_of, rolled_back, scans_of
from rtls_cambus.alerts import repository, service
from rtls_cambus.alerts.engine import AlertEngine
from rtls_cambus.alerts.errors import AlertTransitionRefusedError
from rtls_cambus.alerts.models import AlertEvent
from rtls_cambus.alerts.repository import open_alerts_by_severity
from rtls_cambus.alerts.schemas import AlertRuleUpdate, AlertStatus, rule_adapter
from rtls_cambus.devices.models import CameraGroup, CameraGroupMember, Device
from rtls_cambus.identifiers import SCHEMA, SOURCE
from rtls_cambus.people.models import Person, PersonGroup, PersonGroupMember
from rtls_cambus.positions.models import PresenceSession, TagPosition
from rtls_cambus.tags.models import Tag, TagAssignment

# A Monday, 09:00 UTC.
MONDAY_9 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PAYLOAD_FIELDS = {
    "alert_id",
    "rule_id",
    "rule_name",
    "kind",
    "severity",
    "message",
    "person_id",
    "zone_id",
    "floor_id",
    "building_id",
    "gateway_id",
    "camera_id",
    "source_event_id",
    "created_at",
}


@dataclass
class Clock:
    now: datetime = MONDAY_9

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Bench:
    session: AsyncSession
    site: Any
    clock: Clock
    engine: AlertEngine

    async def rule(self, **values: Any) -> int:
        body = {"name": f"rule-{uuid.uuid4().hex[:8]}", "severity": "high", "cooldown_seconds": 0, **values}
        rule = await service.create_rule(self.session, rule_adapter.validate_python(body))
        self.engine.invalidate()
        return rule.id

    async def alerts(self, rule_id: int) -> list[AlertEvent]:
        query = select(AlertEvent).where(AlertEvent.rule_id == rule_id).order_by(AlertEvent.id)
        return list((await self.session.scalars(query)).all())

    async def event(self, event: Event) -> list[AlertEvent]:
        return await self.engine.handle_event(self.session, event)

    async def resolved_events(self, alert_id: int) -> list[dict[str, Any]]:
        """The data of the `rtls.alert.resolved` events queued for the alert."""
        outbox = outbox_table(SCHEMA)
        query = select(outbox.c.envelope).where(
            outbox.c.subject == f"alert/{alert_id}", outbox.c.type == "rtls.alert.resolved"
        )
        return [envelope["data"] for envelope in (await self.session.scalars(query)).all()]

    async def refreshed(self, alert: AlertEvent) -> AlertEvent:
        """The alert as stored now (those the engine answers are copies, not rows of the session)."""
        stored = await self.session.get(AlertEvent, alert.id, populate_existing=True)
        assert stored is not None
        return stored

    def entered(
        self, session_id: int, *, person_id: int | None = None, zone_id: int | None = None, exited: bool = False
    ) -> Event:
        return Event(
            source=SOURCE,
            type="rtls.person.zone_exited" if exited else "rtls.person.zone_entered",
            subject=f"person/{person_id or self.site.person.id}",
            data={
                "session_id": session_id,
                "person_id": person_id or self.site.person.id,
                "tag_id": self.site.tag.id,
                "zone_id": zone_id or self.site.zones[1].id,
                "floor_id": self.site.floor.id,
                "building_id": self.site.building.id,
                "started_at": self.clock.now.isoformat(),
                "ended_at": None,
            },
        )

    async def presence(self, *, minutes_ago: float, zone: int = 1, person_id: int | None = None) -> PresenceSession:
        row = PresenceSession(
            person_id=person_id or self.site.person.id,
            tag_id=self.site.tag.id,
            zone_id=self.site.zones[zone].id,
            floor_id=self.site.floor.id,
            building_id=self.site.building.id,
            started_at=self.clock.now - timedelta(minutes=minutes_ago),
        )
        self.session.add(row)
        await self.session.flush()
        return row


@pytest.fixture
def principal() -> Principal:
    return Principal(kind="user", id=1, name="operator-on-duty", role=Role.operator)


@pytest_asyncio.fixture(loop_scope="session")
async def bench(db_session: AsyncSession, make_site: Any) -> Bench:
    clock = Clock()
    return Bench(db_session, await make_site(db_session), clock, AlertEngine(refresh_seconds=3600, clock=clock))


async def test_entering_a_restricted_zone_raises_one_alert_with_its_event(bench: Bench) -> None:
    rule_id = await bench.rule(kind="zone_entry", zone_id=bench.site.zones[1].id, severity="critical")
    event = bench.entered(101)
    raised = await bench.event(event)
    assert [alert.rule_id for alert in raised] == [rule_id]
    alert = raised[0]
    assert alert.message == "Ana Souza entered zone Lab"
    assert (alert.person_id, alert.zone_id, alert.floor_id) == (
        bench.site.person.id,
        bench.site.zones[1].id,
        bench.site.floor.id,
    )
    assert alert.source_event_id == event.id and alert.status == "open" and alert.tenant is None

    assert await bench.event(event) == []
    assert await bench.event(bench.entered(101)) == [], "another event about the same presence session"
    assert len(await bench.alerts(rule_id)) == 1

    outbox = outbox_table(SCHEMA)
    rows = (
        await bench.session.execute(
            select(outbox.c.type, outbox.c.envelope).where(outbox.c.subject == f"alert/{alert.id}")
        )
    ).all()
    assert [row.type for row in rows] == ["rtls.alert.created"]
    data = rows[0].envelope["data"]
    assert set(data) >= PAYLOAD_FIELDS
    assert data["alert_id"] == alert.id and data["rule_id"] == rule_id and data["severity"] == "critical"
    assert data["kind"] == "zone_entry" and data["source_event_id"] == event.id


async def test_a_rule_without_a_zone_watches_every_restricted_zone_for_its_people(
    bench: Bench, db_session: AsyncSession
) -> None:
    group = PersonGroup(name=f"visitors-{uuid.uuid4().hex[:6]}")
    visitor = Person(full_name="Bruno Lima")
    db_session.add_all([group, visitor])
    await db_session.flush()
    db_session.add(PersonGroupMember(group_id=group.id, person_id=visitor.id))
    await db_session.flush()
    rule_id = await bench.rule(kind="zone_entry", person_group_id=group.id)

    assert await bench.event(bench.entered(201, zone_id=bench.site.zones[0].id, person_id=visitor.id)) == []
    assert await bench.event(bench.entered(202)) == [], "Ana is not in the group"
    raised = await bench.event(bench.entered(203, person_id=visitor.id))
    assert [alert.message for alert in raised] == ["Bruno Lima entered restricted zone Lab"]
    assert len(await bench.alerts(rule_id)) == 1


async def test_the_cooldown_holds_back_another_alert_about_the_same_person(bench: Bench) -> None:
    rule_id = await bench.rule(kind="zone_entry", zone_id=bench.site.zones[1].id, cooldown_seconds=600)
    assert len(await bench.event(bench.entered(301))) == 1
    bench.clock.now += timedelta(minutes=5)
    assert await bench.event(bench.entered(302)) == [], "back in within the cooldown"
    bench.clock.now += timedelta(minutes=6)
    assert len(await bench.event(bench.entered(303))) == 1
    assert [alert.dedup_key for alert in await bench.alerts(rule_id)] == ["session:301", "session:303"]


async def test_a_schedule_limits_entries_and_the_check_catches_who_is_inside_when_it_opens(bench: Bench) -> None:
    night = {"days": ["mon"], "start": "22:00", "end": "06:00", "timezone": "UTC"}
    rule_id = await bench.rule(kind="zone_entry", zone_id=bench.site.zones[1].id, schedule=night)
    inside = await bench.presence(minutes_ago=0)
    assert await bench.event(bench.entered(inside.id)) == [], "09:00 is outside the window"
    await bench.engine.check(bench.session)
    assert await bench.alerts(rule_id) == []
    bench.clock.now = MONDAY_9.replace(hour=23)
    await bench.engine.check(bench.session)
    assert [alert.dedup_key for alert in await bench.alerts(rule_id)] == [f"session:{inside.id}"]


async def test_a_minimum_dwell_is_left_to_the_periodic_check(bench: Bench) -> None:
    rule_id = await bench.rule(kind="zone_entry", zone_id=bench.site.zones[1].id, min_dwell_seconds=300)
    inside = await bench.presence(minutes_ago=2)
    assert await bench.event(bench.entered(inside.id)) == []
    await bench.engine.check(bench.session)
    assert await bench.alerts(rule_id) == []
    bench.clock.now += timedelta(minutes=4)
    await bench.engine.check(bench.session)
    [alert] = await bench.alerts(rule_id)
    assert alert.message == "Ana Souza has been in zone Lab for 6 min"
    assert alert.details["session_id"] == inside.id
    bench.clock.now += timedelta(minutes=10)
    await bench.engine.check(bench.session)
    assert len(await bench.alerts(rule_id)) == 1, "the same stay is one situation"


async def test_absence_from_a_zone_during_its_schedule(bench: Bench, db_session: AsyncSession) -> None:
    guard = Person(full_name="Carla Dias")
    db_session.add(guard)
    await db_session.flush()
    shift = {"days": ["mon", "tue"], "start": "08:00", "end": "18:00", "timezone": "America/Sao_Paulo"}
    ana_rule = await bench.rule(
        kind="zone_absence", zone_id=bench.site.zones[0].id, person_id=bench.site.person.id, schedule=shift
    )
    carla_rule = await bench.rule(
        kind="zone_absence",
        zone_id=bench.site.zones[0].id,
        person_id=guard.id,
        schedule=shift,
        min_absence_seconds=600,
    )
    await bench.presence(minutes_ago=30, zone=0)
    bench.clock.now = MONDAY_9.replace(hour=11, minute=5)  # 08:05 in Sao Paulo
    await bench.engine.check(bench.session)
    assert await bench.alerts(ana_rule) == [], "Ana is in the lobby"
    assert await bench.alerts(carla_rule) == [], "five minutes into the shift: within the grace"
    bench.clock.now = MONDAY_9.replace(hour=11, minute=30)
    await bench.engine.check(bench.session)
    [alert] = await bench.alerts(carla_rule)
    assert alert.message == "Carla Dias has not been in zone Lobby for 30 min, while expected there"
    assert alert.floor_id == bench.site.floor.id and alert.building_id == bench.site.building.id
    bench.clock.now = MONDAY_9.replace(hour=12)
    await bench.engine.check(bench.session)
    assert len(await bench.alerts(carla_rule)) == 1, "one alert per shift"
    bench.clock.now = MONDAY_9.replace(hour=23)
    await bench.engine.check(bench.session)
    assert len(await bench.alerts(carla_rule)) == 1, "after the shift nobody is expected"


async def test_a_person_not_seen_for_a_time(bench: Bench, db_session: AsyncSession) -> None:
    db_session.add(TagPosition(tag_id=bench.site.tag.id, last_seen_at=MONDAY_9 - timedelta(minutes=50)))
    await db_session.flush()
    rule_id = await bench.rule(kind="person_not_seen", person_id=bench.site.person.id, not_seen_seconds=3600)
    await bench.engine.check(bench.session)
    assert await bench.alerts(rule_id) == []
    bench.clock.now += timedelta(minutes=15)
    await bench.engine.check(bench.session)
    [alert] = await bench.alerts(rule_id)
    assert alert.message == "Ana Souza has not been seen for 1 h 5 min"
    await bench.engine.check(bench.session)
    assert len(await bench.alerts(rule_id)) == 1


async def test_a_gateway_offline_spell_raises_one_alert(bench: Bench) -> None:
    gateway = bench.site.gateways[0]
    other_building = await bench.rule(kind="gateway_offline", gateway_id=bench.site.gateways[1].id)
    rule_id = await bench.rule(kind="gateway_offline", floor_id=bench.site.floor.id)

    def offline(last_seen: datetime) -> Event:
        return Event(
            source=SOURCE,
            type="rtls.gateway.offline",
            subject=f"gateway/{gateway.id}",
            data={
                "gateway_id": gateway.id,
                "mac": gateway.mac,
                "status": "offline",
                "building_id": bench.site.building.id,
                "floor_id": bench.site.floor.id,
                "zone_id": gateway.zone_id,
                "last_seen_at": last_seen.isoformat(),
                "at": MONDAY_9.isoformat(),
                "reason": "silent",
            },
        )

    first = MONDAY_9 - timedelta(minutes=2)
    assert len(await bench.event(offline(first))) == 1
    assert await bench.event(offline(first)) == [], "the same spell, reported again"
    assert len(await bench.event(offline(first + timedelta(hours=1)))) == 1, "back online, then silent again"
    assert await bench.alerts(other_building) == [], "a rule on another gateway"
    alerts = await bench.alerts(rule_id)
    assert alerts[0].message == f"Gateway {gateway.mac} is offline" and alerts[0].gateway_id == gateway.id


async def test_camera_events_by_analytic_label_score_and_group(bench: Bench, db_session: AsyncSession) -> None:
    camera = Device(
        kind="camera",
        code=f"cam-{uuid.uuid4().hex[:6]}",
        name="Dock camera",
        building_id=bench.site.building.id,
        floor_id=bench.site.floor.id,
    )
    elsewhere = Device(kind="camera", code=f"cam-{uuid.uuid4().hex[:6]}", building_id=bench.site.building.id)
    group = CameraGroup(name=f"dock-{uuid.uuid4().hex[:6]}")
    db_session.add_all([camera, elsewhere, group])
    await db_session.flush()
    db_session.add(CameraGroupMember(group_id=group.id, device_id=camera.id))
    await db_session.flush()
    rule_id = await bench.rule(
        kind="camera_event", analytic="Intrusion", label="person", min_score=0.8, camera_group_id=group.id
    )

    def camera_event(stored: int, device: Device, *, score: float, label: str = "person", kind: str = "new") -> Event:
        return Event(
            source=SOURCE,
            type="rtls.camera.event",
            subject=f"camera/{device.id}",
            data={
                "id": stored,
                "camera_id": device.id,
                "camera_code": device.code,
                "building_id": bench.site.building.id,
                "analytic": "intrusion",
                "event_id": f"frigate-{stored}",
                "message_type": kind,
                "label": label,
                "score": score,
                "top_score": score,
            },
        )

    assert await bench.event(camera_event(1, camera, score=0.5)) == [], "score below the minimum"
    assert await bench.event(camera_event(2, camera, score=0.95, label="car")) == []
    assert await bench.event(camera_event(3, elsewhere, score=0.95)) == [], "camera outside the group"
    raised = await bench.event(camera_event(1, camera, score=0.9, kind="update"))
    assert [alert.message for alert in raised] == ["Camera Dock camera: person detected by intrusion (score 0.90)"]
    assert raised[0].floor_id == bench.site.floor.id
    assert await bench.event(camera_event(1, camera, score=0.97, kind="end")) == [], "the same camera event"
    assert len(await bench.alerts(rule_id)) == 1


async def test_a_suite_event_with_conditions_and_a_message_template_keeps_its_tenant(bench: Bench) -> None:
    rule_id = await bench.rule(
        kind="suite_event",
        event_type="vision.inspection.failed",
        conditions=[{"path": "result.line", "op": "in", "value": ["L1", "L2"]}],
        message_template="Inspection {inspection_id} failed on line {result.line}",
        severity="medium",
    )

    def failed(line: str) -> Event:
        return Event(
            source="mirante/vision-orchestrator",
            type="vision.inspection.failed",
            subject="inspection/7",
            tenant="acme",
            data={"inspection_id": 7, "result": {"line": line}},
        )

    assert await bench.event(failed("L9")) == []
    [odd] = await bench.event(
        Event(
            source="mirante/vision-orchestrator",
            type="vision.inspection.failed",
            subject="inspection/\u00008",
            data={"inspection_id": "8\u0000", "result": {"line": "L1"}},
        )
    )
    assert odd.message == "Inspection 8 failed on line L1" and odd.cooldown_key == "subject:inspection/8"
    event = failed("L2")
    [alert] = await bench.event(event)
    assert alert.message == "Inspection 7 failed on line L2" and alert.tenant == "acme"
    assert alert.source_event_type == "vision.inspection.failed"
    assert await bench.event(event) == []
    assert len(await bench.alerts(rule_id)) == 2


async def test_alerts_about_alerts_are_never_evaluated(bench: Bench) -> None:
    await bench.rule(kind="zone_entry", zone_id=bench.site.zones[1].id)
    looped = Event(source=SOURCE, type="rtls.alert.created", data={"person_id": bench.site.person.id})
    assert await bench.event(looped) == []


async def test_a_disabled_rule_raises_nothing_and_counts_by_severity(bench: Bench) -> None:
    before = await open_alerts_by_severity(bench.session)
    acme_before = await open_alerts_by_severity(bench.session, "acme")
    await bench.rule(kind="zone_entry", zone_id=bench.site.zones[1].id, enabled=False)
    assert await bench.event(bench.entered(401)) == []
    await bench.rule(kind="zone_entry", zone_id=bench.site.zones[1].id, severity="low")
    assert len(await bench.event(bench.entered(402))) == 1
    after = await open_alerts_by_severity(bench.session)
    assert after["low"] == before["low"] + 1 and set(after) == {"low", "medium", "high", "critical"}
    assert await open_alerts_by_severity(bench.session, "acme") == acme_before, "the site's alerts have no tenant"


async def test_a_tag_never_heard_counts_from_when_it_was_given(bench: Bench, db_session: AsyncSession) -> None:
    newcomer = Person(full_name="Davi Rocha")
    tag = Tag(mac="0A:0B:0C:" + ":".join(uuid.uuid4().hex[i : i + 2].upper() for i in (0, 2, 4)))
    db_session.add_all([newcomer, tag])
    await db_session.flush()
    db_session.add(TagAssignment(tag_id=tag.id, person_id=newcomer.id, assigned_from=MONDAY_9 - timedelta(hours=3)))
    await db_session.flush()
    rule_id = await bench.rule(kind="person_not_seen", person_id=newcomer.id, not_seen_seconds=7200)
    await bench.engine.check(bench.session)
    [alert] = await bench.alerts(rule_id)
    assert alert.details["last_seen_at"] == (MONDAY_9 - timedelta(hours=3)).isoformat()


async def test_rule_changes_reach_an_engine_that_read_the_rules_before(bench: Bench, db_session: AsyncSession) -> None:
    engine = AlertEngine(refresh_seconds=0, clock=bench.clock)
    first = await bench.rule(kind="zone_entry", zone_id=bench.site.zones[1].id)
    assert [alert.rule_id for alert in await engine.handle_event(db_session, bench.entered(501))] == [first]
    await service.update_rule(db_session, first, AlertRuleUpdate(enabled=False))
    second = await bench.rule(kind="zone_entry", zone_id=bench.site.zones[1].id)
    assert [alert.rule_id for alert in await engine.handle_event(db_session, bench.entered(502))] == [second]


async def test_a_rule_deleted_after_the_engine_read_it_raises_nothing(bench: Bench) -> None:
    rule_id = await bench.rule(kind="zone_entry", zone_id=bench.site.zones[1].id, cooldown_seconds=60)
    assert len(await bench.event(bench.entered(601))) == 1
    await service.delete_rule(bench.session, rule_id)
    assert await bench.event(bench.entered(602)) == [], "the engine's copy of the rules still has it"


# -- resolved when the situation ends ----------------------------------------------------------------------------


def gateway_event(bench: Bench, gateway: Device, status: str, last_seen: datetime) -> Event:
    return Event(
        source=SOURCE,
        type=f"rtls.gateway.{status}",
        subject=f"gateway/{gateway.id}",
        data={
            "gateway_id": gateway.id,
            "mac": gateway.mac,
            "status": status,
            "building_id": bench.site.building.id,
            "floor_id": bench.site.floor.id,
            "zone_id": gateway.zone_id,
            "last_seen_at": last_seen.isoformat(),
            "at": bench.clock.now.isoformat(),
        },
    )


async def test_a_gateway_offline_alert_is_resolved_when_the_gateway_is_back_online_acknowledged_or_not(
    bench: Bench, principal: Principal
) -> None:
    gateway, other = bench.site.gateways[0], bench.site.gateways[1]
    rule_id = await bench.rule(kind="gateway_offline", floor_id=bench.site.floor.id)
    manual = await bench.rule(kind="gateway_offline", gateway_id=gateway.id, auto_resolve=False)
    went = bench.clock.now - timedelta(minutes=3)
    [alert, kept] = await bench.event(gateway_event(bench, gateway, "offline", went))
    [elsewhere] = await bench.event(gateway_event(bench, other, "offline", went))
    assert (alert.rule_id, kept.rule_id, alert.auto_resolve, kept.auto_resolve) == (rule_id, manual, True, False)
    await service.change_status(bench.session, alert.id, AlertStatus.acknowledged, "on it", principal, None)

    bench.clock.now += timedelta(minutes=5)
    online = gateway_event(bench, gateway, "online", bench.clock.now)
    assert await bench.event(online) == []
    alert = await bench.refreshed(alert)
    assert alert.status == "resolved" and alert.resolved_at == bench.clock.now
    assert (alert.resolved_by_kind, alert.resolved_by_id, alert.resolved_by_name) == ("system", None, "alert engine")
    assert alert.resolve_note == "The gateway is back online."
    assert alert.acknowledged_by_kind == "user", "who acknowledged it stays"
    assert (await bench.refreshed(kept)).status == "open", "a rule that resolves by hand"
    assert (await bench.refreshed(elsewhere)).status == "open", "another gateway is still offline"
    [resolved] = await bench.resolved_events(alert.id)
    assert resolved["status"] == "resolved" and resolved["resolved_by"] == {
        "kind": "system",
        "id": None,
        "name": "alert engine",
    }

    bench.clock.now += timedelta(minutes=1)
    assert await bench.event(online) == [], "the same event delivered again"
    assert (await bench.refreshed(alert)).resolved_at == bench.clock.now - timedelta(minutes=1)
    assert len(await bench.resolved_events(alert.id)) == 1, "resolved once, one event"
    with pytest.raises(AlertTransitionRefusedError):
        await service.change_status(bench.session, alert.id, AlertStatus.resolved, None, principal, None)
    assert len(await bench.event(gateway_event(bench, gateway, "offline", bench.clock.now))) == 2, "a new spell"


async def test_a_restricted_zone_alert_is_resolved_when_the_person_leaves_the_zone(bench: Bench) -> None:
    rule_id = await bench.rule(kind="zone_entry", zone_id=bench.site.zones[1].id)
    inside = await bench.presence(minutes_ago=1)
    [alert] = await bench.event(bench.entered(inside.id))
    await bench.engine.check(bench.session)
    assert (await bench.refreshed(alert)).status == "open", "the person is still inside"
    assert await bench.event(bench.entered(inside.id + 1000, exited=True)) == []
    assert (await bench.refreshed(alert)).status == "open", "another stay ended"

    inside.ended_at = bench.clock.now
    await bench.session.flush()
    await bench.event(bench.entered(inside.id, exited=True))
    alert = await bench.refreshed(alert)
    assert alert.status == "resolved" and alert.resolve_note == "The person left the zone."

    # A stay whose end the engine never heard of: the periodic check finds its session closed.
    dwell_rule = await bench.rule(kind="zone_entry", zone_id=bench.site.zones[1].id, min_dwell_seconds=60)
    second = await bench.presence(minutes_ago=5, person_id=bench.site.person.id)
    await bench.engine.check(bench.session)
    [dwelling] = await bench.alerts(dwell_rule)
    assert dwelling.details["session_id"] == second.id and dwelling.status == "open"
    second.ended_at = bench.clock.now
    await bench.session.flush()
    bench.clock.now += timedelta(seconds=10)
    await bench.engine.check(bench.session)
    assert (await bench.refreshed(dwelling)).status == "resolved"
    # The rule without a dwell is evaluated by the check too: it raised about the second stay, now over as well.
    assert [(item.details["session_id"], item.status) for item in await bench.alerts(rule_id)] == [
        (inside.id, "resolved"),
        (second.id, "resolved"),
    ]


async def test_an_absence_alert_is_resolved_when_the_person_is_back_in_the_zone(bench: Bench) -> None:
    shift = {"days": ["mon"], "start": "08:00", "end": "18:00"}
    rule_id = await bench.rule(
        kind="zone_absence", zone_id=bench.site.zones[0].id, person_id=bench.site.person.id, schedule=shift
    )
    await bench.engine.check(bench.session)
    [alert] = await bench.alerts(rule_id)
    assert alert.status == "open" and alert.auto_resolve
    assert await bench.event(bench.entered(701, zone_id=bench.site.zones[1].id)) == []
    assert (await bench.refreshed(alert)).status == "open", "in another zone"
    await bench.event(bench.entered(702, zone_id=bench.site.zones[0].id))
    alert = await bench.refreshed(alert)
    assert alert.status == "resolved" and alert.resolve_note == "The person is back in the zone."

    # Missed by the events: the check finds the person inside.
    bench.clock.now += timedelta(days=7)
    await bench.engine.check(bench.session)
    [_, next_week] = await bench.alerts(rule_id)
    await bench.presence(minutes_ago=0, zone=0)
    bench.clock.now += timedelta(minutes=1)
    await bench.engine.check(bench.session)
    assert (await bench.refreshed(next_week)).status == "resolved"


async def test_a_person_not_seen_alert_is_resolved_when_the_person_is_heard_again(
    bench: Bench, db_session: AsyncSession
) -> None:
    position = TagPosition(tag_id=bench.site.tag.id, last_seen_at=MONDAY_9 - timedelta(hours=2))
    db_session.add(position)
    await db_session.flush()
    rule_id = await bench.rule(kind="person_not_seen", person_id=bench.site.person.id, not_seen_seconds=3600)
    await bench.engine.check(bench.session)
    [alert] = await bench.alerts(rule_id)
    await bench.engine.check(bench.session)
    assert (await bench.refreshed(alert)).status == "open"
    position.last_seen_at = bench.clock.now
    await db_session.flush()
    await bench.engine.check(bench.session)
    alert = await bench.refreshed(alert)
    assert alert.status == "resolved" and alert.resolve_note == "The person was heard again."
    assert len(await bench.alerts(rule_id)) == 1, "heard again: no new alert"

    # Lost again, then walking into a zone: the event resolves it at once.
    bench.clock.now += timedelta(hours=2)
    await bench.engine.check(bench.session)
    [_, again] = await bench.alerts(rule_id)
    await bench.event(bench.entered(801))
    assert (await bench.refreshed(again)).status == "resolved"


def camera_end(bench: Bench, camera: Device, stored: int, message_type: str) -> Event:
    return Event(
        source=SOURCE,
        type="rtls.camera.event",
        subject=f"camera/{camera.id}",
        data={
            "id": stored,
            "camera_id": camera.id,
            "analytic": "intrusion",
            "message_type": message_type,
            "label": "person",
            "score": 0.9,
        },
    )


async def test_camera_alerts_stay_until_resolved_by_hand_unless_the_rule_resolves_them_when_the_event_ends(
    bench: Bench, db_session: AsyncSession
) -> None:
    camera = Device(kind="camera", code=f"cam-{uuid.uuid4().hex[:6]}", building_id=bench.site.building.id)
    db_session.add(camera)
    await db_session.flush()
    kept = await bench.rule(kind="camera_event", camera_id=camera.id)
    ending = await bench.rule(kind="camera_event", camera_id=camera.id, auto_resolve=True)
    raised = await bench.event(camera_end(bench, camera, 11, "new"))
    by_rule = {alert.rule_id: alert for alert in raised}
    assert (by_rule[kept].auto_resolve, by_rule[ending].auto_resolve) == (False, True)
    await bench.event(camera_end(bench, camera, 11, "update"))
    assert {(await bench.refreshed(alert)).status for alert in raised} == {"open"}
    await bench.event(camera_end(bench, camera, 11, "end"))
    assert (await bench.refreshed(by_rule[kept])).status == "open"
    resolved = await bench.refreshed(by_rule[ending])
    assert resolved.status == "resolved" and resolved.resolve_note == "The camera ended its analytic event."


async def test_suite_event_alerts_are_resolved_by_hand(bench: Bench) -> None:
    rule_id = await bench.rule(kind="suite_event", event_type="vision.inspection.failed")
    event = Event(source="mirante/vision-orchestrator", type="vision.inspection.failed", data={"inspection_id": 3})
    [alert] = await bench.event(event)
    assert not alert.auto_resolve
    bench.clock.now += timedelta(hours=1)
    await bench.engine.check(bench.session)
    assert (await bench.refreshed(alert)).status == "open"
    assert len(await bench.alerts(rule_id)) == 1


@pytest.mark.parametrize("forgotten", [False, True], ids=["statistics-of-a-history", "statistics-of-an-emptied-table"])
async def test_the_check_of_unseen_people_finds_their_tags_by_key_whatever_the_statistics_say(
    db_engine: AsyncEngine, forgotten: bool
) -> None:
    """Statistics taken before a site's tags were handed out (autovacuum has not come by yet) must not turn the
    periodic check of person-not-seen alerts into a read of every assignment for each alert: each alert's person
    finds their open assignments, and each assignment its tag's position, through an index lookup."""
    people = "INSERT INTO rtls_cambus.people (full_name) SELECT 'someone' FROM generate_series(1, :count) RETURNING id"
    handed_out = (
        "WITH tag AS (INSERT INTO rtls_cambus.tags (mac) "
        "SELECT :prefix || n FROM generate_series(1, cardinality(CAST(:person_ids AS bigint[]))) AS n RETURNING id), "
        "numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM tag) "
        "INSERT INTO rtls_cambus.tag_assignments (tag_id, person_id, assigned_from) "
        "SELECT numbered.id, (CAST(:person_ids AS bigint[]))[numbered.n], now() - interval '1 day' FROM numbered"
    )
    prefix = uuid.uuid4().hex[:8]
    async with rolled_back(db_engine) as connection:
        before = list((await connection.scalars(text(people), {"count": 20})).all())
        await connection.execute(text(handed_out), {"prefix": f"{prefix}h", "person_ids": before})
        if forgotten:
            await connection.execute(
                text("DELETE FROM rtls_cambus.tags WHERE mac LIKE :pattern"), {"pattern": f"{prefix}h%"}
            )
        for table in ("tags", "tag_assignments", "tag_positions", "alert_events"):
            await connection.execute(text(f"ANALYZE rtls_cambus.{table}"))
        site = list((await connection.scalars(text(people), {"count": 5000})).all())
        await connection.execute(text(handed_out), {"prefix": f"{prefix}s", "person_ids": site})
        await connection.execute(
            text(
                "INSERT INTO rtls_cambus.tag_positions (tag_id, person_id, status, last_seen_at) "
                "SELECT tag_id, person_id, 'present', now() FROM rtls_cambus.tag_assignments "
                "WHERE person_id = ANY(:person_ids)"
            ),
            {"person_ids": site},
        )
        await connection.execute(
            text(
                "INSERT INTO rtls_cambus.alert_events (rule_name, kind, severity, message, dedup_key, "
                "cooldown_key, person_id, details, auto_resolve) "
                "SELECT 'not seen', 'person_not_seen', 'high', 'not seen', :prefix || person_id, "
                ":prefix || person_id, person_id, "
                "jsonb_build_object('last_seen_at', now() - interval '1 hour'), true "
                "FROM unnest(CAST(:person_ids AS bigint[])) AS person_id"
            ),
            {"prefix": prefix, "person_ids": site[:50]},
        )
        plan = await plan_of(connection, repository._resolve_ended(datetime.now(UTC), None))
    assignment_scans, position_scans = scans_of(plan, "tag_assignments"), scans_of(plan, "tag_positions")
    assert [scan.index for scan in assignment_scans] == ["ix_tag_assignments_person_id"]
    assert [scan.index for scan in position_scans] == ["pk_tag_positions"]
    assert all(scan.condition for scan in assignment_scans + position_scans), (assignment_scans, position_scans)

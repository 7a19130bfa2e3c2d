"""Mail notifications against a real SMTP server (aiosmtpd on 127.0.0.1, started by the tests), the real database
and Redis: who is mailed, what the mail says (plain text and escaped HTML), digests of bursts, a mail server down
then up (retried, sent once), a refused recipient, and the preferences API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mirante.auth.commands import create_api_key, create_user
from mirante.auth.models import User
from mirante.auth.roles import Role
from mirante.bus import Event
from mirante.bus.tables import outbox_table
from mirante.db import create_sessionmaker
from mirante.settings import InfraSettings, SmtpSettings
from mirante.testing.mail import MailServer
from mirante.testing.plans import plan_of, rolled_back, scans_of
from mirante.testing.plugin import HeadersFactory
from mirante.testing.streams import publish_event
from rtls_cambus.chatwoot.models import ChatwootDelivery
from rtls_cambus.config import Settings
from rtls_cambus.fields import Severity
from rtls_cambus.identifiers import SCHEMA, SOURCE
from rtls_cambus.incidents import service as incidents
from rtls_cambus.incidents.models import Incident, SupportGroup, SupportGroupMember
from rtls_cambus.incidents.schemas import IncidentCreate, Status
from rtls_cambus.incidents.service import Actor
from rtls_cambus.notifications import repository
from rtls_cambus.notifications.models import MailNotification
from rtls_cambus.notifications.planner import NotificationPlanner
from rtls_cambus.notifications.sender import MailSender
from rtls_cambus.notifications.worker import notification_consumer
from rtls_cambus.retention import forget_old_logs


@dataclass
class People:
    sessions: async_sessionmaker[AsyncSession]
    group_name: str
    group_id: int
    users: dict[str, User]

    def address(self, name: str) -> str:
        email_address = self.users[name].email
        assert email_address is not None
        return email_address


@pytest_asyncio.fixture(loop_scope="session")
async def people(db_engine: AsyncEngine) -> AsyncIterator[People]:
    """Committed users (ana, bruno who turned alert mails off, carla without an address, dave whose mails bounce,
    eva and fabio) and a support group `Alerts <marker>` with ana, bruno, carla and dave."""
    sessions = create_sessionmaker(db_engine)
    marker = uuid.uuid4().hex[:8]
    async with sessions() as session, session.begin():
        users = {}
        for name in ("ana", "bruno", "carla", "dave", "eva", "fabio"):
            address = None if name == "carla" else f"{'bounce-' if name == 'dave' else ''}{name}-{marker}@example.com"
            users[name] = await create_user(
                session, username=f"{name}-{marker}", password="password-1234", role="operator", email=address
            )
        group = SupportGroup(name=f"Alerts {marker}")
        session.add(group)
        await session.flush()
        session.add_all(
            SupportGroupMember(group_id=group.id, user_id=users[name].id) for name in ("ana", "bruno", "carla", "dave")
        )
        await repository.put_preference(session, users["bruno"].id, email_alerts=False, email_incidents=True)
    made = People(sessions, group.name, group.id, users)
    try:
        yield made
    finally:
        ids = [user.id for user in users.values()]
        async with sessions() as session, session.begin():
            await session.execute(delete(MailNotification).where(MailNotification.user_id.in_(ids)))
            await session.execute(delete(Incident).where(Incident.support_group_id == group.id))
            await session.execute(delete(SupportGroup).where(SupportGroup.id == group.id))
            await session.execute(delete(User).where(User.id.in_(ids)))


def mail_settings(infra: InfraSettings, server: MailServer, people: People, **overrides: Any) -> Settings:
    smtp = SmtpSettings(host="127.0.0.1", port=server.port, security="none", timeout_seconds=5)
    values: dict[str, Any] = {
        "infra": infra.model_copy(update={"smtp": smtp}),
        "alert_mail_support_group": people.group_name,
        "mail_digest_window_seconds": 600,
        "mail_retry_schedule_seconds": [0.0, 0.0, 0.0],
        "mail_lease_seconds": 30,
        "mail_from": "Mirante Alerts <alerts@mirante.example>",
        "alert_url_template": "https://rtls.example.com/alerts/{id}",
        "incident_url_template": "https://rtls.example.com/incidents/{id}",
    }
    values.update(overrides)
    return Settings(**values)


def alert_event(number: int, **fields: Any) -> Event:
    data: dict[str, Any] = {
        "alert_id": number,
        "rule_id": 3,
        "rule_name": f"Restricted zone {number}",
        "kind": "zone_entry",
        "severity": "high",
        "message": "Ana Souza entered <b>Lab</b> & stayed",
        "person_id": 11,
        "zone_id": 7,
        "floor_id": 2,
        "building_id": 1,
        "gateway_id": None,
        "camera_id": None,
        "source_event_id": str(uuid.uuid4()),
        "created_at": "2026-12-06T10:00:00Z",
    }
    data.update(fields)
    return Event(source=SOURCE, type="rtls.alert.created", subject=f"alert/{number}", data=data)


async def plan(people: People, planner: NotificationPlanner, *events: Event) -> None:
    async with people.sessions() as session, session.begin():
        for event in events:
            await planner.handle(session, event)


async def rows_of(people: People, name: str) -> list[MailNotification]:
    async with people.sessions() as session:
        query = (
            select(MailNotification)
            .where(MailNotification.user_id == people.users[name].id)
            .order_by(MailNotification.id)
        )
        return list((await session.scalars(query)).all())


async def test_an_alert_from_the_stream_mails_the_groups_members_who_want_it(
    infra_settings: InfraSettings, redis_client: Redis, people: People, mail_server: MailServer
) -> None:
    mail_server.start()
    settings = mail_settings(infra_settings, mail_server, people)
    sender = MailSender(people.sessions, settings)
    planner = NotificationPlanner(settings, on_planned=sender.wake)
    stream = f"test-alerts:{uuid.uuid4().hex}"
    consumer = notification_consumer(
        redis_client, people.sessions, planner, [stream], group=f"notify-{uuid.uuid4().hex}", block_ms=100
    )
    await consumer.ensure_groups()
    task = asyncio.create_task(consumer.run())
    try:
        event = alert_event(41)
        await publish_event(redis_client, stream, event)
        await publish_event(redis_client, stream, event)  # delivered twice, planned once
        for _ in range(400):
            if consumer.stats.processed + consumer.stats.duplicates >= 2:
                break
            await asyncio.sleep(0.05)
        assert consumer.stats.processed == 1 and consumer.stats.duplicates == 1
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 30)
        await redis_client.delete(stream)

    # ana is mailed; bruno turned alert mails off, carla has no address; dave's is planned (and will bounce).
    assert [len(await rows_of(people, name)) for name in ("ana", "bruno", "carla", "dave")] == [1, 0, 0, 1]
    assert await sender.poll_once() == 1
    [caught] = mail_server.to(people.address("ana"))
    message = caught.message
    assert message["Subject"] == "[Mirante] high alert: Restricted zone 41"
    assert message["From"] == "Mirante Alerts <alerts@mirante.example>"
    assert people.address("ana") in message["To"] and message["Auto-Submitted"] == "auto-generated"
    text, html = caught.part("plain"), caught.part("html")
    assert "Ana Souza entered <b>Lab</b> & stayed" in text
    assert "Ana Souza entered &lt;b&gt;Lab&lt;/b&gt; &amp; stayed" in html and "<b>Lab</b>" not in html
    assert "https://rtls.example.com/alerts/41" in text and 'href="https://rtls.example.com/alerts/41"' in html
    assert "zone 7" in text and "person 11" in text
    [sent] = await rows_of(people, "ana")
    assert (sent.status, sent.attempts, sent.in_digest, sent.mail_id) == ("sent", 1, False, message["Message-ID"])
    # dave's address is refused by the server for good: failed after one try, not retried.
    [bounced] = await rows_of(people, "dave")
    assert bounced.status == "failed" and bounced.attempts == 1 and "550" in (bounced.last_error or "")
    assert await sender.poll_once() == 0


async def test_a_burst_of_alerts_goes_out_as_one_digest_then_one_per_window(
    infra_settings: InfraSettings, people: People, mail_server: MailServer
) -> None:
    mail_server.start()
    # A group with ana alone, so every mail of the test is hers.
    async with people.sessions() as session, session.begin():
        solo = SupportGroup(name=f"Solo {uuid.uuid4().hex[:8]}")
        session.add(solo)
        await session.flush()
        session.add(SupportGroupMember(group_id=solo.id, user_id=people.users["ana"].id))
    settings = mail_settings(infra_settings, mail_server, people, alert_mail_support_group=solo.name)
    planner, sender = NotificationPlanner(settings), MailSender(people.sessions, settings)
    try:
        await plan(people, planner, *(alert_event(number) for number in range(1, 6)))
        assert await sender.poll_once() == 1
        [digest] = mail_server.to(people.address("ana"))
        assert digest.message["Subject"] == "[Mirante] 5 alerts"
        text = digest.part("plain")
        assert "5 notifications" in text
        assert all(f"Restricted zone {number}" in text for number in range(1, 6))
        sent = await rows_of(people, "ana")
        assert {(row.status, row.in_digest, row.mail_id) for row in sent} == {
            ("sent", True, digest.message["Message-ID"])
        }

        # Two more within the window: held until it ends, then one digest.
        await plan(people, planner, alert_event(6), alert_event(7))
        held = [row for row in await rows_of(people, "ana") if row.status == "pending"]
        assert len(held) == 2
        window_end = max(row.sent_at for row in sent if row.sent_at is not None) + timedelta(seconds=600)
        assert {row.due_at for row in held} == {window_end}
        assert await sender.poll_once() == 0
        assert await sender.poll_once(now=window_end + timedelta(seconds=1)) == 1
        second = mail_server.to(people.address("ana"))[1]
        assert second.message["Subject"] == "[Mirante] 2 alerts"
    finally:
        async with people.sessions() as session, session.begin():
            await session.execute(delete(SupportGroup).where(SupportGroup.id == solo.id))


async def test_a_mail_server_down_then_up_gets_the_mail_once(
    infra_settings: InfraSettings, people: People, mail_server: MailServer
) -> None:
    settings = mail_settings(infra_settings, mail_server, people)
    planner, sender = NotificationPlanner(settings), MailSender(people.sessions, settings)
    await plan(people, planner, alert_event(90))
    assert await sender.poll_once() == 0  # nothing listens on the port
    [waiting] = await rows_of(people, "ana")
    assert (waiting.status, waiting.attempts) == ("pending", 1)
    assert waiting.last_error and waiting.locked_until is None

    mail_server.start()
    assert await sender.poll_once() == 1
    assert await sender.poll_once() == 0
    assert len(mail_server.to(people.address("ana"))) == 1
    [sent] = await rows_of(people, "ana")
    assert (sent.status, sent.attempts) == ("sent", 2)


async def test_the_schedule_spent_the_notification_fails(
    infra_settings: InfraSettings, people: People, mail_server: MailServer
) -> None:
    settings = mail_settings(infra_settings, mail_server, people, mail_retry_schedule_seconds=[0.0])
    planner, sender = NotificationPlanner(settings), MailSender(people.sessions, settings)
    await plan(people, planner, alert_event(91))
    assert await sender.poll_once() == 0
    assert await sender.poll_once() == 0
    [failed] = await rows_of(people, "ana")
    assert (failed.status, failed.attempts) == ("failed", 2)
    mail_server.start()
    assert await sender.poll_once() == 0 and mail_server.caught == []


async def _outbox_event(people: People, incident_id: int, event_type: str, change: str | None = None) -> Event:
    table = outbox_table(SCHEMA)
    async with people.sessions() as session:
        query = select(table.c.envelope).where(table.c.subject == f"incident/{incident_id}", table.c.type == event_type)
        envelopes = (await session.scalars(query)).all()
    [envelope] = [item for item in envelopes if change is None or item["data"].get("change") == change]
    return Event.from_envelope(envelope)


async def test_incident_mails_go_to_assignees_and_the_group_but_not_to_whoever_acted(
    infra_settings: InfraSettings, people: People, mail_server: MailServer
) -> None:
    mail_server.start()
    settings = mail_settings(infra_settings, mail_server, people)
    planner, sender = NotificationPlanner(settings), MailSender(people.sessions, settings)
    users = people.users
    eva = Actor("user", users["eva"].id, users["eva"].username)
    key = Actor("api_key", 9, "dispatcher-key")
    async with people.sessions() as session, session.begin():
        body = IncidentCreate(
            title="Smoke in <hall> B",
            severity=Severity.critical,
            support_group_id=people.group_id,
            assignee_ids=[users["eva"].id, users["fabio"].id],
        )
        incident = await incidents.create_incident(session, body, eva)
    async with people.sessions() as session, session.begin():
        await incidents.change_status(session, incident.id, Status.acknowledged, None, key)
    async with people.sessions() as session, session.begin():
        await incidents.set_assignees(session, incident.id, [users["fabio"].id, users["ana"].id], key)
    for event_type, change in (
        ("rtls.incident.created", None),
        ("rtls.incident.updated", "status"),
        ("rtls.incident.updated", "assignees"),
    ):
        await plan(people, planner, await _outbox_event(people, incident.id, event_type, change))

    def kinds(rows: list[MailNotification]) -> list[str]:
        return [row.context["change"] for row in rows]

    # eva opened it: not mailed about that, but about the status change; the group (ana, bruno; carla has no
    # address; dave bounces) hears of the opening and the status, the assignees of the new assignment.
    assert kinds(await rows_of(people, "eva")) == ["status"]
    assert kinds(await rows_of(people, "fabio")) == ["created", "status", "assignees"]
    assert kinds(await rows_of(people, "ana")) == ["created", "status", "assignees"]
    assert kinds(await rows_of(people, "bruno")) == ["created", "status"]
    await sender.poll_once()
    [for_eva] = mail_server.to(people.address("eva"))
    assert for_eva.message["Subject"] == f"[Mirante] Incident #{incident.id} is now acknowledged: Smoke in <hall> B"
    assert "open -> acknowledged, by dispatcher-key" in for_eva.part("plain")
    assert "Smoke in &lt;hall&gt; B" in for_eva.part("html")
    [for_fabio] = mail_server.to(people.address("fabio"))
    assert for_fabio.message["Subject"] == "[Mirante] 3 incident updates"
    assert f"https://rtls.example.com/incidents/{incident.id}" in for_fabio.part("plain")


async def test_preferences_belong_to_each_user(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    viewer = await auth_headers("viewer")
    url = "/api/v1/notifications/preferences"
    assert (await client.get(url, headers=viewer)).json() == {
        "email_alerts": True,
        "email_incidents": True,
        "email": None,
    }
    changed = await client.put(url, json={"email_alerts": False, "email_incidents": True}, headers=viewer)
    assert changed.status_code == 200 and changed.json()["email_alerts"] is False
    assert (await client.get(url, headers=viewer)).json()["email_alerts"] is False
    other = await auth_headers("viewer")
    assert (await client.get(url, headers=other)).json()["email_alerts"] is True
    for bad in ({"email_alerts": "no", "email_incidents": True}, {"email_alerts": False}, {"x": 1}):
        assert (await client.put(url, json=bad, headers=viewer)).status_code == 422, bad
    _, key = await create_api_key(db_session, f"k-{uuid.uuid4().hex[:8]}", ["*"], role=Role.admin)
    refused = await client.get(url, headers={"X-API-Key": key})
    assert refused.status_code == 403 and "users" in refused.json()["error"]["message"]
    assert (await client.get(url)).status_code == 401
    admin = await auth_headers("admin")
    listed = await client.get("/api/v1/notifications/mails", params={"status": "failed"}, headers=admin)
    assert listed.status_code == 200 and all(item["status"] == "failed" for item in listed.json()["results"])


@pytest.mark.parametrize("security", ["starttls", "tls", "none"])
def test_the_mail_server_port_follows_its_security(security: str) -> None:
    expected = {"starttls": 587, "tls": 465, "none": 25}[security]
    assert SmtpSettings(host="mail.example.com", security=security).effective_port == expected  # type: ignore[arg-type]
    assert SmtpSettings(host="mail.example.com", port=2525, security=security).effective_port == 2525  # type: ignore[arg-type]


async def test_old_finished_notifications_and_webhook_requests_are_forgotten(
    infra_settings: InfraSettings, people: People, mail_server: MailServer
) -> None:
    settings = mail_settings(infra_settings, mail_server, people, mail_retention_days=30)
    ana = people.users["ana"]
    long_ago = datetime.now(UTC) - timedelta(days=31)
    async with people.sessions() as session, session.begin():
        for status in ("sent", "failed", "pending"):
            session.add(
                MailNotification(
                    event_id=uuid.uuid4(),
                    kind="alert",
                    user_id=ana.id,
                    address=people.address("ana"),
                    subject=status,
                    context={},
                    status=status,
                    created_at=long_ago,
                )
            )
        old_request = ChatwootDelivery(
            event="message_created",
            status="rejected",
            http_status=401,
            body="{}",
            body_size=2,
            body_truncated=False,
            body_sha256="0" * 64,
            headers={},
            received_at=long_ago,
        )
        session.add(old_request)
    forgotten = await forget_old_logs(people.sessions, settings)
    assert forgotten.chatwoot_requests >= 1 and forgotten.mails >= 2
    assert [row.subject for row in await rows_of(people, "ana")] == ["pending"]
    async with people.sessions() as session:
        assert await session.get(ChatwootDelivery, old_request.id) is None


@pytest.mark.parametrize("forgotten", [False, True], ids=["statistics-of-a-history", "statistics-of-an-emptied-table"])
async def test_a_claim_finds_the_users_notifications_by_recipient_whatever_the_statistics_say(
    db_engine: AsyncEngine, forgotten: bool
) -> None:
    """Statistics taken before a burst of notifications (autovacuum has not come by yet) must not turn a sender's
    claim into a read of every pending notification due, nor of every notification: the user's are found through
    the recipient index, then leased by id."""
    now = datetime.now(UTC)
    burst = (
        "INSERT INTO rtls_cambus.mail_notifications (event_id, kind, user_id, address, subject, context, status, "
        "due_at) SELECT gen_random_uuid(), 'alert', n % 500, 'someone@example.com', 'an alert', '{}', :status, "
        "now() - interval '1 minute' FROM generate_series(1, :count) AS n RETURNING id"
    )
    async with rolled_back(db_engine) as connection:
        sent = await connection.scalars(text(burst), {"status": "sent", "count": 1000})
        if forgotten:
            await connection.execute(
                text("DELETE FROM rtls_cambus.mail_notifications WHERE id = ANY(:ids)"), {"ids": list(sent.all())}
            )
        await connection.execute(text("ANALYZE rtls_cambus.mail_notifications"))
        await connection.execute(text(burst), {"status": "pending", "count": 5000})
        plan = await plan_of(connection, repository._claim_for_user(7, now, now + timedelta(minutes=1), 20))
    scans = scans_of(plan, "mail_notifications")
    assert sorted(scan.index or "" for scan in scans) == ["ix_mail_notifications_recipient", "pk_mail_notifications"]
    assert all(scan.condition for scan in scans), scans

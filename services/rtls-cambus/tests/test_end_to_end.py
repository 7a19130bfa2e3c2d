"""rtls-cambus end to end: the app with all its workers (MQTT ingest on the run's broker, position engine, alert
engine, incident rules, webhook dispatcher, Chatwoot sync, mail notifications), configured through its API, and
every peer a real server the test starts: a webhook receiver checking Standard Webhooks signatures with the
subscription's secret, the Chatwoot simulator, and an SMTP server.

- A person walks (the gateway simulator publishing over MQTT) from a lobby into a restricted lab: an alert rule
  raises an alert, an incident rule opens an incident for a support group, the receiver gets both events signed,
  Chatwoot gets a conversation and the group's member a mail.
- A failed inspection, published on vision-orchestrator's stream the way vision-orchestrator publishes it (its
  outbox through the library's relay), opens an incident through an incident rule.
- Faults: a receiver that refuses connections, then answers 503, then 200 gets the delivery once after the
  retries; a service stopped in the middle of a delivery and started again sends it again with the same
  `webhook-id` and loses nothing, also what was published while it was down.

The app's consumer groups have fixed names (replicas share them), so each test gives the app a Redis of its own:
on the run's Redis, an app of another run on the machine would join the same groups and take some of the events.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mirante.auth.commands import create_user
from mirante.auth.models import User
from mirante.auth.service import issue_token
from mirante.auth.tokens import TokenCodec
from mirante.bus import Event, OutboxRelay, emit
from mirante.db import create_sessionmaker
from mirante.devstack import StackUrls
from mirante.settings import RedisSettings, SmtpSettings
from mirante.testing.mail import MailServer
from mirante.testing.mqtt import MqttSessions, running, wait_for_scalar
from mirante.testing.network import free_port
from mirante.testing.streams import wait_for_consumer_groups, wait_until
from mirante.testing.webhooks import ReceivedWebhook, WebhookReceiverStarter
from rtls_cambus.alerts.engine import GROUP as ALERTS_GROUP
from rtls_cambus.alerts.models import AlertEvent, AlertRule
from rtls_cambus.chatwoot.sync import GROUP as CHATWOOT_GROUP
from rtls_cambus.config import Settings
from rtls_cambus.incidents.engine import GROUP as INCIDENT_RULES_GROUP
from rtls_cambus.incidents.models import Incident, IncidentRule, SupportGroup
from rtls_cambus.main import SERVICE, create_app
from rtls_cambus.notifications.models import MailNotification
from rtls_cambus.notifications.worker import GROUP as NOTIFICATIONS_GROUP
from rtls_cambus.outgoing.dispatcher import CONSUMER_GROUP as WEBHOOKS_GROUP
from rtls_cambus.outgoing.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from rtls_cambus.positions.models import PresenceSession
from rtls_cambus.zones.models import Zone

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.chatwoot import ChatwootSimulator  # noqa: E402
from scripts.simulators.gateways import Building  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("mqtt5_broker")]

# What vision-orchestrator publishes, as the suite's contract has it (its identifiers and the library's
# `ServiceSpec.stream`), without importing that service.
VISION_STREAM = "events:vision-orchestrator"
VISION_SCHEMA = "vision_orchestrator"
VISION_SOURCE = "mirante/vision-orchestrator"
INSPECTION_FAILED = "vision.inspection.failed"

RTLS_STREAM = SERVICE.stream
GROUPS = {
    RTLS_STREAM: [ALERTS_GROUP, INCIDENT_RULES_GROUP, WEBHOOKS_GROUP, CHATWOOT_GROUP, NOTIFICATIONS_GROUP],
    VISION_STREAM: [ALERTS_GROUP, INCIDENT_RULES_GROUP, WEBHOOKS_GROUP],
}
CHATWOOT_ACCOUNT, CHATWOOT_INBOX = 3, 5
INCIDENT_LINK = "https://rtls.example.com/incidents/{id}"
WAIT_SECONDS = 30.0
"""A guard against a chain that never gets there, not a timing claim: each step takes well under a second."""
STAY_TICKS = 8
"""Ticks of the walk in each room: the person is in the lobby for ticks 0-7 and in the lab from tick 8."""
RETRY_STEP_SECONDS = 0.3


@dataclass
class Made:
    """Rows the test committed, removed afterwards so that no rule or subscription acts in other tests."""

    users: list[int] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    alert_rules: list[int] = field(default_factory=list)
    incident_rules: list[int] = field(default_factory=list)
    subscriptions: list[int] = field(default_factory=list)


@dataclass
class Suite:
    """The service's settings and its peers; `service()` runs the app."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    admin: dict[str, str]
    member: User
    chatwoot: ChatwootSimulator
    mail: MailServer
    made: Made

    @asynccontextmanager
    async def service(self) -> AsyncIterator[httpx.AsyncClient]:
        """The app running (lifespan and workers) until the block ends, once its MQTT subscriber is connected
        and its consumers have made their groups; a client on its API."""
        app = create_app(self.settings)
        async with running(app, within=WAIT_SECONDS):
            await wait_for_consumer_groups(self.redis, GROUPS, within=WAIT_SECONDS)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://rtls.test") as client:
                yield client

    async def support_group(self, client: httpx.AsyncClient) -> int:
        answer = await client.post(
            "/api/v1/support-groups",
            json={"name": f"Security {uuid.uuid4().hex[:8]}", "member_ids": [self.member.id]},
            headers=self.admin,
        )
        assert answer.status_code == 201, answer.text
        self.made.groups.append(answer.json()["id"])
        return int(answer.json()["id"])

    async def incident_rule(self, client: httpx.AsyncClient, **body: Any) -> int:
        answer = await client.post(
            "/api/v1/incident-rules", json={"name": f"rule {uuid.uuid4().hex[:8]}", **body}, headers=self.admin
        )
        assert answer.status_code == 201, answer.text
        self.made.incident_rules.append(answer.json()["id"])
        return int(answer.json()["id"])

    async def subscribe(self, client: httpx.AsyncClient, url: str, event_types: list[str]) -> tuple[int, str]:
        """A webhook subscription; its id and its secret (answered once, at creation)."""
        answer = await client.post(
            "/api/v1/webhooks", json={"url": url, "event_types": event_types}, headers=self.admin
        )
        assert answer.status_code == 201, answer.text
        self.made.subscriptions.append(answer.json()["id"])
        return int(answer.json()["id"]), str(answer.json()["secret"])

    async def deliveries(self, client: httpx.AsyncClient, subscription_id: int) -> list[dict[str, Any]]:
        """The subscription's deliveries with their attempts, from its log."""
        answer = await client.get(f"/api/v1/webhooks/{subscription_id}/deliveries", headers=self.admin)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["results"])

    async def settled(self, client: httpx.AsyncClient, subscription_id: int, count: int) -> list[dict[str, Any]]:
        """Wait until the subscription has `count` deliveries, none of them pending any more (delivered, or failed
        for good: a refused signature fails at once rather than at the end of the wait); them, oldest first."""
        found: list[dict[str, Any]] = []

        async def done() -> bool:
            nonlocal found
            found = await self.deliveries(client, subscription_id)
            return len(found) >= count and all(item["status"] != "pending" for item in found)

        await wait_until(done, within=WAIT_SECONDS, what=f"{count} deliveries settled")
        return sorted(found, key=lambda item: int(item["id"]))

    async def incidents_of(self, rule_id: int) -> list[Incident]:
        async with self.sessions() as session:
            return list((await session.scalars(select(Incident).where(Incident.rule_id == rule_id))).all())

    async def publish_inspection_failure(self, marker: str) -> Event:
        """`vision.inspection.failed` as vision-orchestrator emits it when a machine reports a failed result:
        into its outbox in a transaction, then onto its stream by the library's relay."""
        inspection_id, machine_id = f"ins_{uuid.uuid4().hex[:12]}", f"mv_{uuid.uuid4().hex[:12]}"
        event = Event(
            source=VISION_SOURCE,
            type=INSPECTION_FAILED,
            subject=f"inspection/{inspection_id}",
            data={
                "inspection_id": inspection_id,
                "machine_id": machine_id,
                "attempt": 1,
                "inspection_type": marker,
                "processing_time": 1.25,
                "error_message": "camera lost focus",
            },
        )
        async with self.sessions() as session, session.begin():
            await emit(session, VISION_SCHEMA, event)
        relay = OutboxRelay(self.sessions, schema=VISION_SCHEMA, redis=self.redis, stream=VISION_STREAM)
        while await relay.publish_batch():
            pass
        return event


@pytest_asyncio.fixture(loop_scope="session")
async def suite(
    mqtt_sessions: MqttSessions, own_redis: str, db_engine: AsyncEngine, mail_server: MailServer
) -> AsyncIterator[Suite]:
    sessions = create_sessionmaker(db_engine)
    marker = uuid.uuid4().hex[:8]
    made = Made()
    async with sessions() as session, session.begin():
        admin = await create_user(session, username=f"e2e-admin-{marker}", password="e2e-password-1234", role="admin")
        member = await create_user(
            session,
            username=f"e2e-rita-{marker}",
            password="e2e-password-1234",
            role="operator",
            email=f"rita-{marker}@example.com",
        )
    made.users += [admin.id, member.id]
    mail_server.start()
    smtp = SmtpSettings(host="127.0.0.1", port=mail_server.port, security="none", timeout_seconds=5)
    infra = mqtt_sessions.infra.model_copy(update={"redis": RedisSettings(url=own_redis), "smtp": smtp})
    redis = Redis.from_url(own_redis)
    with ChatwootSimulator(account_id=CHATWOOT_ACCOUNT, inbox_id=CHATWOOT_INBOX) as chatwoot:
        settings = Settings(
            infra=infra,
            mqtt_client_id=mqtt_sessions.new("rtls-cambus-e2e"),
            ingest_batch_interval_seconds=0.05,
            # The walk's switch to the lab happens on the third tick there whatever the noise (a 20 dB lead
            # against a 6 dB margin), and it does not have to last: the test waits on ticks, not on the clock.
            position_dwell_seconds=0,
            alert_rules_refresh_seconds=0,
            webhook_allowed_targets=["127.0.0.0/8"],
            webhook_retry_schedule_seconds=[RETRY_STEP_SECONDS] * 20,
            webhook_timeout_seconds=5,
            webhook_lease_seconds=10,
            webhook_poll_interval_seconds=0.1,
            chatwoot_enabled=True,
            chatwoot_url=chatwoot.url,
            chatwoot_api_token=chatwoot.api_token,
            chatwoot_account_id=CHATWOOT_ACCOUNT,
            chatwoot_inbox_id=CHATWOOT_INBOX,
            chatwoot_timeout_seconds=5,
            incident_url_template=INCIDENT_LINK,
            mail_retry_schedule_seconds=[RETRY_STEP_SECONDS] * 5,
            mail_poll_interval_seconds=0.1,
            mail_lease_seconds=10,
        )
        token = issue_token(TokenCodec.from_settings(infra.jwt), admin).token
        try:
            yield Suite(
                settings, sessions, redis, {"Authorization": f"Bearer {token}"}, member, chatwoot, mail_server, made
            )
        finally:
            await redis.aclose()
            async with sessions() as session, session.begin():
                await _forget(session, made)


async def _forget(session: AsyncSession, made: Made) -> None:
    await session.execute(delete(WebhookSubscription).where(WebhookSubscription.id.in_(made.subscriptions)))
    await session.execute(delete(Incident).where(Incident.rule_id.in_(made.incident_rules)))
    await session.execute(delete(IncidentRule).where(IncidentRule.id.in_(made.incident_rules)))
    await session.execute(delete(AlertEvent).where(AlertEvent.rule_id.in_(made.alert_rules)))
    await session.execute(delete(AlertRule).where(AlertRule.id.in_(made.alert_rules)))
    await session.execute(delete(SupportGroup).where(SupportGroup.id.in_(made.groups)))
    await session.execute(delete(MailNotification).where(MailNotification.user_id.in_(made.users)))
    await session.execute(delete(User).where(User.id.in_(made.users)))


def payload_of(request: ReceivedWebhook) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(request.body)
    return body


async def test_a_person_entering_a_restricted_zone_reaches_the_receiver_chatwoot_and_the_mailbox(
    suite: Suite,
    mirante_urls: StackUrls,
    db_engine: AsyncEngine,
    place_building: Any,
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    walk = Building(rooms=2, people=1, dwell=STAY_TICKS, seed=uuid.uuid4().int % 10**6, start_room=0)
    [tag] = walk.tags
    async with suite.sessions() as session, session.begin():
        placed = await place_building(session, walk)
        lobby, lab = placed.zones
        await session.execute(update(Zone).where(Zone.id == lab).values(name="Lab", restricted=True))
    receiver = await start_webhook_receiver()

    async with suite.service() as api:
        group_id = await suite.support_group(api)
        created = await api.post(
            "/api/v1/alert-rules",
            json={
                "kind": "zone_entry",
                "name": f"lab entry {uuid.uuid4().hex[:8]}",
                "severity": "critical",
                "zone_id": lab,
                "cooldown_seconds": 0,
            },
            headers=suite.admin,
        )
        assert created.status_code == 201, created.text
        alert_rule_id = created.json()["id"]
        suite.made.alert_rules.append(alert_rule_id)
        incident_rule_id = await suite.incident_rule(
            api,
            event_type="rtls.alert.created",
            conditions=[{"path": "rule_id", "op": "equals", "value": alert_rule_id}],
            title_template="{message}",
            severity="critical",
            support_group_id=group_id,
        )
        subscription_id, receiver.secret = await suite.subscribe(
            api, receiver.url, ["rtls.alert.created", "rtls.incident.created"]
        )

        # The walk, tick by tick, each stored before the next, until the person's presence in the lab opens.
        stored = "SELECT count(*) FROM rtls_cambus.gateway_readings WHERE gateway_mac = ANY(:g)"
        readings = 0

        async def been_in(zone_id: int) -> bool:
            async with suite.sessions() as session:
                query = select(PresenceSession.id).where(
                    PresenceSession.tag_id == placed.tags[tag], PresenceSession.zone_id == zone_id
                )
                return (await session.scalar(query.limit(1))) is not None

        for tick in range(2 * STAY_TICKS):
            sent = await walk.publish(mirante_urls.mqtt_url, ticks=1, first_tick=tick)
            readings += sent.readings
            await wait_for_scalar(db_engine, stored, readings, g=walk.gateways, within=WAIT_SECONDS)
            if await been_in(lab):
                break
        assert await been_in(lab), "the position engine never placed the person in the lab"
        assert await been_in(lobby) and tick >= STAY_TICKS, "the person walked in from the lobby"

        # The alert, from the rule on the lab.
        async def alert() -> list[dict[str, Any]]:
            answer = await api.get("/api/v1/alert-events", params={"rule_id": alert_rule_id}, headers=suite.admin)
            return list(answer.json()["results"])

        await wait_until(lambda: _non_empty(alert), within=WAIT_SECONDS, what="the lab's alert")
        [raised] = await alert()
        assert (raised["kind"], raised["severity"], raised["zone_id"]) == ("zone_entry", "critical", lab)
        assert raised["person_id"] == placed.people[tag]
        assert "Lab" in raised["message"]

        # The incident, from the incident rule on the alert, for the support group.
        await wait_until(lambda: _non_empty(lambda: suite.incidents_of(incident_rule_id)), within=WAIT_SECONDS)
        [incident] = await suite.incidents_of(incident_rule_id)
        assert (incident.title, incident.severity, incident.status) == (raised["message"], "critical", "open")
        assert incident.support_group_id == group_id

        # Both events at the receiver, signed with the subscription's secret, each delivered once.
        deliveries = {d["event_type"]: d for d in await suite.settled(api, subscription_id, 2)}
        assert {kind: (d["status"], d["attempts"]) for kind, d in deliveries.items()} == {
            "rtls.alert.created": ("delivered", 1),
            "rtls.incident.created": ("delivered", 1),
        }
        assert all(request.verified for request in receiver.received)
        assert sorted(receiver.delivered_ids()) == sorted(d["msg_id"] for d in deliveries.values())
        bodies = {request.webhook_id: payload_of(request) for request in receiver.received}
        alert_body = bodies[deliveries["rtls.alert.created"]["msg_id"]]
        incident_body = bodies[deliveries["rtls.incident.created"]["msg_id"]]
        assert (alert_body["type"], alert_body["data"]["alert_id"]) == ("rtls.alert.created", raised["id"])
        assert incident_body["data"]["incident"]["id"] == incident.id

        # A Chatwoot conversation for the incident, opened with its title and link.
        def conversation() -> dict[str, Any] | None:
            for item in suite.chatwoot.conversations():
                if item["custom_attributes"].get("mirante_incident_id") == incident.id:
                    return item
            return None

        await wait_until(lambda: conversation() is not None, within=WAIT_SECONDS, what="the Chatwoot conversation")
        opened = conversation()
        assert opened is not None and opened["inbox_id"] == CHATWOOT_INBOX
        [first] = suite.chatwoot.messages(opened["id"])
        assert f"Incident #{incident.id} (critical): {incident.title}" in first["content"]
        assert INCIDENT_LINK.format(id=incident.id) in first["content"]

        # A mail to the support group's member.
        address = suite.member.email
        assert address is not None
        await wait_until(lambda: bool(suite.mail.to(address)), within=WAIT_SECONDS, what="the incident mail")
        [mail] = suite.mail.to(address)
        assert mail.message["Subject"] == f"[Mirante] Incident #{incident.id} opened: {incident.title}"
        assert INCIDENT_LINK.format(id=incident.id) in mail.part("plain")


async def test_a_failed_inspection_on_the_vision_stream_opens_an_incident_through_a_rule(
    suite: Suite, start_webhook_receiver: WebhookReceiverStarter
) -> None:
    marker = f"weld_{uuid.uuid4().hex[:8]}"
    receiver = await start_webhook_receiver()
    async with suite.service() as api:
        group_id = await suite.support_group(api)
        rule_id = await suite.incident_rule(
            api,
            event_type=INSPECTION_FAILED,
            conditions=[{"path": "inspection_type", "op": "equals", "value": marker}],
            title_template="Inspection {inspection_id} failed on {machine_id}: {error_message}",
            severity="high",
            support_group_id=group_id,
        )
        subscription_id, receiver.secret = await suite.subscribe(api, receiver.url, [INSPECTION_FAILED])
        event = await suite.publish_inspection_failure(marker)

        await wait_until(lambda: _non_empty(lambda: suite.incidents_of(rule_id)), within=WAIT_SECONDS)
        [incident] = await suite.incidents_of(rule_id)
        data = event.data
        assert incident.title == f"Inspection {data['inspection_id']} failed on {data['machine_id']}: camera lost focus"
        assert (incident.severity, incident.support_group_id) == ("high", group_id)
        assert (incident.source_event_type, incident.source_event_id) == (INSPECTION_FAILED, event.id)
        # The same event reaches subscribers of vision's types through the dispatcher.
        [delivery] = await suite.settled(api, subscription_id, 1)
        [request] = receiver.received
        assert (delivery["status"], request.verified, request.status) == ("delivered", True, 200)
        assert request.webhook_id == delivery["msg_id"] and payload_of(request)["id"] == event.id


async def test_a_receiver_down_then_failing_then_up_gets_the_delivery_once(
    suite: Suite, start_webhook_receiver: WebhookReceiverStarter
) -> None:
    port = free_port()
    async with suite.service() as api:
        subscription_id, secret = await suite.subscribe(api, f"http://127.0.0.1:{port}/hook", [INSPECTION_FAILED])
        event = await suite.publish_inspection_failure(f"down_{uuid.uuid4().hex[:8]}")

        async def refused_twice() -> bool:
            deliveries = await suite.deliveries(api, subscription_id)
            return bool(deliveries) and deliveries[0]["attempts"] >= 2

        await wait_until(refused_twice, within=WAIT_SECONDS, what="two attempts refused")
        receiver = await start_webhook_receiver(statuses=[503, 503, 200], secret=secret, port=port)
        [delivery] = await suite.settled(api, subscription_id, 1)
    assert delivery["status"] == "delivered"
    assert [request.status for request in receiver.received] == [503, 503, 200]
    assert all(request.verified for request in receiver.received)
    assert {request.webhook_id for request in receiver.received} == {delivery["msg_id"]}
    assert receiver.delivered_ids() == [delivery["msg_id"]], "delivered exactly once"
    assert payload_of(receiver.received[-1])["id"] == event.id
    log = sorted(delivery["attempt_log"], key=lambda attempt: attempt["attempted_at"])
    refused = log[: len(log) - 3]
    assert len(refused) >= 2 and all(a["status_code"] is None and a["error"] for a in refused)
    assert [a["status_code"] for a in log[len(refused) :]] == [503, 503, 200]
    assert delivery["attempts"] == len(log)


async def test_a_delivery_cut_by_a_restart_of_the_service_is_delivered_with_the_same_id(
    suite: Suite, start_webhook_receiver: WebhookReceiverStarter
) -> None:
    hold = asyncio.Event()
    receiver = await start_webhook_receiver(hold=hold)
    marker = f"restart_{uuid.uuid4().hex[:8]}"
    async with suite.service() as api:
        rule_id = await suite.incident_rule(
            api,
            event_type=INSPECTION_FAILED,
            conditions=[{"path": "inspection_type", "op": "equals", "value": marker}],
            title_template="Inspection {inspection_id} failed",
            severity="medium",
        )
        subscription_id, receiver.secret = await suite.subscribe(api, receiver.url, [INSPECTION_FAILED])
        first = await suite.publish_inspection_failure(marker)
        await receiver.wait_for_requests(1, within=WAIT_SECONDS)
        # The service stops here, the receiver still holding the request.

    async with suite.sessions() as session:
        [cut] = (
            await session.scalars(select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id))
        ).all()
        [logged] = (await session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == cut.id))).all()
    assert (cut.status, cut.attempts, cut.locked_until) == ("pending", 0, None), "neither delivered nor lost"
    assert logged.status_code is None and logged.error is not None and logged.error.startswith("interrupted")
    hold.set()
    # Published while the service is down: its consumer group keeps the place, so it is read at the restart.
    second = await suite.publish_inspection_failure(marker)

    async def both_opened() -> bool:
        return len(await suite.incidents_of(rule_id)) >= 2

    async with suite.service() as api:
        deliveries = await suite.settled(api, subscription_id, 2)
        # The incident rules read the stream in a consumer group of their own: the deliveries having settled says
        # nothing of them, so the service runs until they have taken the second event too.
        await wait_until(both_opened, within=WAIT_SECONDS, what="an incident for each event")
    assert [d["status"] for d in deliveries] == ["delivered", "delivered"]
    by_event = {d["event_id"]: d for d in deliveries}
    assert set(by_event) == {first.id, second.id}
    assert all(request.verified for request in receiver.received)
    ids = [request.webhook_id for request in receiver.received]
    assert ids.count(cut.msg_id) == 2, "the cut request was sent again"
    assert set(ids) == {by_event[first.id]["msg_id"], by_event[second.id]["msg_id"]}
    assert by_event[first.id]["msg_id"] == cut.msg_id
    cut_log = sorted(by_event[first.id]["attempt_log"], key=lambda attempt: attempt["attempted_at"])
    assert [(a["status_code"], a["error"]) for a in cut_log] == [(None, logged.error), (200, None)]
    assert by_event[first.id]["attempts"] == 1, "the cut attempt is logged, not counted against the receiver"
    assert ids.count(by_event[second.id]["msg_id"]) == 1
    assert sorted(receiver.delivered_ids()) == sorted(d["msg_id"] for d in deliveries)
    # Each event opened one incident, the restart notwithstanding.
    incidents = await suite.incidents_of(rule_id)
    assert sorted(incident.source_event_id for incident in incidents) == sorted([first.id, second.id])


async def _non_empty(query: Any) -> bool:
    return bool(await query())

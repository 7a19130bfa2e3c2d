"""Who gets a mail about which event: the handler of the notifications' consumer group on the rtls-cambus stream.

It writes one pending notification per (event, recipient) in the consumer's transaction and sends nothing: the
sender does, so a mail server that is down or slow never holds up alerts or incidents, and a failed send is
tried again without the event. The unique (event, user) key keeps an event delivered twice from mailing twice.

Recipients:

- `rtls.alert.created`: the members of the support group named by `RTLS_CAMBUS_ALERT_MAIL_SUPPORT_GROUP` (none
  when unset or when no group has that name). Alerts carry no assignee, and a group is managed through the API
  by admins, with its members' own opt-outs, where a list of addresses in a setting would bypass both.
- `rtls.incident.created` and status changes (`rtls.incident.updated`, `change: status`): the incident's
  assignees and the members of its support group; assignment changes (`change: assignees`): the assignees.
  Whoever made the change is left out: they know.

Only active users with an e-mail address who did not turn the kind off (`/notifications/preferences`) are mailed.

Digest: an alert for a user who was sent an alert mail less than `RTLS_CAMBUS_MAIL_DIGEST_WINDOW_SECONDS` ago is
held until that window ends; the sender puts everything due for one user into one mail, so a burst of alerts
gives one mail at once and then at most one digest per window, whatever its size.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus import Event
from rtls_cambus.config import Settings
from rtls_cambus.identifiers import SOURCE
from rtls_cambus.notifications import repository
from rtls_cambus.notifications.models import ALERT, INCIDENT
from rtls_cambus.notifications.repository import Recipient

ALERT_CREATED: Final = "rtls.alert.created"
INCIDENT_CREATED: Final = "rtls.incident.created"
INCIDENT_UPDATED: Final = "rtls.incident.updated"
PLANNED_TYPES: Final = frozenset({ALERT_CREATED, INCIDENT_CREATED, INCIDENT_UPDATED})
"""The only types `handle` acts on: the consumer skips the others unparsed."""
MAX_SUBJECT_CHARS: Final = 200
_ALERT_FIELDS: Final = (
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
)
_WHERE_FIELDS: Final = ("person_id", "zone_id", "floor_id", "building_id", "gateway_id", "camera_id")


def one_line(value: Any, limit: int = MAX_SUBJECT_CHARS) -> str:
    """`value` as text on one line (no header injection through a subject), cut to `limit` characters."""
    text = " ".join(str(value if value is not None else "").replace("\x00", "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class NotificationPlanner:
    def __init__(self, settings: Settings, on_planned: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.on_planned = on_planned

    async def handle(self, session: AsyncSession, event: Event, now: datetime | None = None) -> None:
        """The consumer's handler: the notifications `event` calls for (none for other types)."""
        if event.source != SOURCE:
            return
        now = now or datetime.now(UTC)
        if event.type == ALERT_CREATED:
            made = await self._alert(session, event, now)
        elif event.type in (INCIDENT_CREATED, INCIDENT_UPDATED):
            made = await self._incident(session, event, now)
        else:
            return
        if made and self.on_planned is not None:
            self.on_planned()

    async def _alert(self, session: AsyncSession, event: Event, now: datetime) -> int:
        group = self.settings.alert_mail_support_group
        if not group:
            return 0
        data = event.data
        recipients = await repository.mailable_users(
            session, await repository.members_of_group_named(session, group), "email_alerts"
        )
        if not recipients:
            return 0
        context: dict[str, Any] = {name: data.get(name) for name in _ALERT_FIELDS}
        context["where"] = {name: data[name] for name in _WHERE_FIELDS if data.get(name) is not None}
        context["link"] = self.settings.alert_link(data.get("alert_id")) if data.get("alert_id") is not None else None
        subject = one_line(
            f"[Mirante] {data.get('severity') or 'alert'} alert: {data.get('rule_name') or data.get('kind')}"
        )
        held = await self._held_until(session, recipients, now)
        rows = [
            self._row(event, ALERT, recipient, subject, context, held.get(recipient.user_id, now))
            for recipient in recipients
        ]
        return await repository.add_notifications(session, rows)

    async def _held_until(
        self, session: AsyncSession, recipients: list[Recipient], now: datetime
    ) -> dict[int, datetime]:
        window = timedelta(seconds=self.settings.mail_digest_window_seconds)
        if not window:
            return {}
        last = await repository.last_alert_mail(session, [recipient.user_id for recipient in recipients])
        return {user_id: sent_at + window for user_id, sent_at in last.items() if sent_at + window > now}

    async def _incident(self, session: AsyncSession, event: Event, now: datetime) -> int:
        data = event.data
        incident = data.get("incident")
        change = data.get("change")
        incident_id = incident.get("id") if isinstance(incident, dict) else None
        if not isinstance(incident, dict) or not isinstance(incident_id, int):
            return 0
        if event.type == INCIDENT_UPDATED and change not in ("status", "assignees"):
            return 0
        # The assignees as the event saw them: a later change must not redirect the mail about this one.
        assignees = incident.get("assignee_ids")
        users = {user for user in assignees if isinstance(user, int)} if isinstance(assignees, list) else set()
        group_id = incident.get("support_group_id")
        if change != "assignees" and isinstance(group_id, int):
            users |= set(await repository.members_of_group(session, group_id))
        actor = data.get("actor")
        if isinstance(actor, dict) and actor.get("kind") == "user":
            users.discard(actor.get("id"))
        recipients = await repository.mailable_users(session, users, "email_incidents")
        if not recipients:
            return 0
        title = one_line(incident.get("title"))
        status = str(incident.get("status"))
        if event.type == INCIDENT_CREATED:
            subject = f"[Mirante] Incident #{incident_id} opened: {title}"
        elif change == "status":
            subject = f"[Mirante] Incident #{incident_id} is now {status.replace('_', ' ')}: {title}"
        else:
            subject = f"[Mirante] Incident #{incident_id} assigned to you: {title}"
        context = {
            "incident_id": incident_id,
            "title": incident.get("title"),
            "description": incident.get("description"),
            "severity": incident.get("severity"),
            "status": status,
            "change": "created" if event.type == INCIDENT_CREATED else change,
            "previous_status": data.get("previous_status"),
            "actor": actor.get("name") if isinstance(actor, dict) else None,
            "link": self.settings.incident_link(incident_id),
            "created_at": incident.get("created_at"),
        }
        rows = [self._row(event, INCIDENT, recipient, one_line(subject), context, now) for recipient in recipients]
        return await repository.add_notifications(session, rows)

    def _row(
        self, event: Event, kind: str, recipient: Recipient, subject: str, context: dict[str, Any], due_at: datetime
    ) -> dict[str, Any]:
        return {
            "event_id": event.event_uuid,
            "kind": kind,
            "user_id": recipient.user_id,
            "address": recipient.address,
            "subject": subject,
            "context": {**context, "recipient": recipient.name},
            "due_at": due_at,
        }

"""Every table of the schema, imported together so the Alembic environment sees them all."""

from rtls_cambus.alerts.models import AlertCooldown, AlertEvent, AlertRule
from rtls_cambus.buildings.models import Building, Floor
from rtls_cambus.chatwoot.models import ChatwootConversation, ChatwootDelivery, ChatwootMessage
from rtls_cambus.devices.models import CameraGroup, CameraGroupMember, Device
from rtls_cambus.floor_plans.models import FloorPlan
from rtls_cambus.incidents.models import (
    Incident,
    IncidentAssignee,
    IncidentAttachment,
    IncidentMessage,
    IncidentRule,
    IncidentStatusChange,
    SupportGroup,
    SupportGroupMember,
)
from rtls_cambus.ingest.models import CamBusCollector, CameraEvent, RejectedMessage, gateway_readings
from rtls_cambus.notifications.models import MailNotification, NotificationPreference
from rtls_cambus.outgoing.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from rtls_cambus.people.models import Person, PersonGroup, PersonGroupMember
from rtls_cambus.positions.models import PositionChange, PresenceSession, TagPosition
from rtls_cambus.tags.models import Tag, TagAssignment
from rtls_cambus.zones.models import Zone

__all__ = [
    "AlertCooldown",
    "AlertEvent",
    "AlertRule",
    "Building",
    "CamBusCollector",
    "CameraEvent",
    "CameraGroup",
    "CameraGroupMember",
    "ChatwootConversation",
    "ChatwootDelivery",
    "ChatwootMessage",
    "Device",
    "Floor",
    "FloorPlan",
    "Incident",
    "IncidentAssignee",
    "IncidentAttachment",
    "IncidentMessage",
    "IncidentRule",
    "IncidentStatusChange",
    "MailNotification",
    "NotificationPreference",
    "Person",
    "PersonGroup",
    "PersonGroupMember",
    "PositionChange",
    "PresenceSession",
    "RejectedMessage",
    "SupportGroup",
    "SupportGroupMember",
    "Tag",
    "TagAssignment",
    "TagPosition",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
    "Zone",
    "gateway_readings",
]

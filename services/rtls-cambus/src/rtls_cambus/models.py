"""Every table of the schema, imported together so the Alembic environment sees them all."""

from rtls_cambus.buildings.models import Building, Floor
from rtls_cambus.devices.models import CameraGroup, CameraGroupMember, Device
from rtls_cambus.floor_plans.models import FloorPlan
from rtls_cambus.people.models import Person, PersonGroup, PersonGroupMember
from rtls_cambus.positions.models import PositionChange, PresenceSession, TagPosition
from rtls_cambus.tags.models import Tag, TagAssignment
from rtls_cambus.zones.models import Zone

__all__ = [
    "Building",
    "CameraGroup",
    "CameraGroupMember",
    "Device",
    "Floor",
    "FloorPlan",
    "Person",
    "PersonGroup",
    "PersonGroupMember",
    "PositionChange",
    "PresenceSession",
    "Tag",
    "TagAssignment",
    "TagPosition",
    "Zone",
]

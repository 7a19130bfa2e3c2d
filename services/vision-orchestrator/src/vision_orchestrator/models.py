"""Every table of the schema, imported together so the Alembic environment sees them all."""

from vision_orchestrator.catalogue.models import InspectionType
from vision_orchestrator.inspections.models import Inspection, InspectionResult, InspectionStatusChange
from vision_orchestrator.machines.models import Heartbeat, Machine, MachineCredential

__all__ = [
    "Heartbeat",
    "Inspection",
    "InspectionResult",
    "InspectionStatusChange",
    "InspectionType",
    "Machine",
    "MachineCredential",
]

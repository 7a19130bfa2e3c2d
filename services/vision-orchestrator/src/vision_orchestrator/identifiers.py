"""Ids and names several features apply: machine and inspection ids, inspection-type names, the event source.

Machines are `mv_<12 hex>` and inspections `ins_<12 hex>`, as the API contract shows them; 48 random bits are
plenty for a factory's fleet and its inspections, and a collision is caught by the primary key.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Final

from fastapi import Path
from pydantic import StringConstraints

from mirante.types import REFUSES_NUL

SCHEMA: Final = "vision_orchestrator"
SOURCE: Final = "mirante/vision-orchestrator"

MACHINE_PREFIX: Final = "mv_"
INSPECTION_PREFIX: Final = "ins_"
MACHINE_ID_PATTERN: Final = r"^mv_[0-9a-f]{12}$"
INSPECTION_ID_PATTERN: Final = r"^ins_[0-9a-f]{12}$"
MACHINE_ID_LENGTH: Final = len(MACHINE_PREFIX) + 12
INSPECTION_ID_LENGTH: Final = len(INSPECTION_PREFIX) + 12

TYPE_NAME_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"
"""An inspection type or tool type: lower-case letters, digits and `_`, starting with a letter (64 at most)."""
TYPE_NAME_LENGTH: Final = 64


def new_machine_id() -> str:
    return f"{MACHINE_PREFIX}{secrets.token_hex(6)}"


def new_inspection_id() -> str:
    return f"{INSPECTION_PREFIX}{secrets.token_hex(6)}"


MachineId = Annotated[str, StringConstraints(pattern=MACHINE_ID_PATTERN), REFUSES_NUL]
InspectionId = Annotated[str, StringConstraints(pattern=INSPECTION_ID_PATTERN), REFUSES_NUL]
TypeName = Annotated[str, StringConstraints(pattern=TYPE_NAME_PATTERN), REFUSES_NUL]

MachineIdPath = Annotated[MachineId, Path(description="machine id, `mv_` and 12 hex digits")]
InspectionIdPath = Annotated[InspectionId, Path(description="inspection id, `ins_` and 12 hex digits")]
TypeNamePath = Annotated[TypeName, Path(description="inspection type name, e.g. `blob_detection`")]

"""The status flow of an inspection, in one place: which moves exist and what each one means for capacity.

```
pending ──> assigned ──> processing ──> completed
   │  ^         │  │          │  └────> failed
   │  └─────────┘  └──> failed/completed (a machine may report a result without `processing` first)
   └──> cancelled <── assigned, processing
```

`assigned -> pending` is a requeue (the machine refused it or went offline). A terminal status
(`completed`, `failed`, `cancelled`) has no way out. Pure functions: no database here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class InspectionStatus(StrEnum):
    pending = "pending"
    assigned = "assigned"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


INSPECTION_STATUSES: Final = tuple(status.value for status in InspectionStatus)

TERMINAL: Final = frozenset({InspectionStatus.completed, InspectionStatus.failed, InspectionStatus.cancelled})

ON_A_MACHINE: Final = frozenset({InspectionStatus.assigned, InspectionStatus.processing})
"""The statuses that hold one of a machine's slots (`current_inspections`)."""

TRANSITIONS: Final[dict[InspectionStatus, frozenset[InspectionStatus]]] = {
    InspectionStatus.pending: frozenset({InspectionStatus.assigned, InspectionStatus.cancelled}),
    InspectionStatus.assigned: frozenset(
        {
            InspectionStatus.processing,
            InspectionStatus.completed,
            InspectionStatus.failed,
            InspectionStatus.pending,
            InspectionStatus.cancelled,
        }
    ),
    InspectionStatus.processing: frozenset(
        {InspectionStatus.completed, InspectionStatus.failed, InspectionStatus.pending, InspectionStatus.cancelled}
    ),
    InspectionStatus.completed: frozenset(),
    InspectionStatus.failed: frozenset(),
    InspectionStatus.cancelled: frozenset(),
}


def can_move(current: InspectionStatus, target: InspectionStatus) -> bool:
    """Whether `current -> target` is a move of the flow."""
    return target in TRANSITIONS[current]


def slot_change(current: InspectionStatus, target: InspectionStatus) -> int:
    """How the machine's count of held slots changes with the move: +1 on taking one, -1 on letting it go."""
    return int(target in ON_A_MACHINE) - int(current in ON_A_MACHINE)

"""Which machine takes an inspection: filter, then rank. Pure functions over a snapshot of the fleet.

- `load_balanced`: the lowest load ratio (`current / max`), then the most free slots;
- `nearest`: the same line as the inspection's place first, then the same location, then the others, each
  group by load;
- `specialized`: the machine with the fewest other supported types, then the best success rate for this type
  (smoothed: `(completed + 1) / (finished + 2)`, so a machine without results counts as 50 %), then by load.

`preferred_machines` are ranked before the others (a soft preference, like a scheduler's preferred affinity);
`target_machine_id` is a hard filter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from vision_orchestrator.config import Strategy

STRATEGIES: Final[tuple[Strategy, ...]] = ("load_balanced", "nearest", "specialized")


@dataclass
class Candidate:
    """A machine as the strategies see it; `current` is kept up to date while one pass plans several moves."""

    id: str
    location: str | None
    line: str | None
    current: int
    capacity: int
    supported_types: frozenset[str]
    available: bool = True
    """online and not in maintenance."""
    successes: dict[str, tuple[int, int]] = field(default_factory=dict)
    """per type: (completed, finished) of its recent results."""

    @property
    def free(self) -> int:
        return max(self.capacity - self.current, 0)

    @property
    def load_ratio(self) -> float:
        return self.current / self.capacity

    def success_rate(self, inspection_type: str) -> float:
        completed, finished = self.successes.get(inspection_type, (0, 0))
        return (completed + 1) / (finished + 2)


@dataclass(frozen=True)
class Place:
    """Where an inspection belongs, for `nearest`: its line and location, either may be unknown."""

    location: str | None = None
    line: str | None = None


@dataclass(frozen=True)
class Want:
    """What one inspection needs from a machine."""

    inspection_type: str
    target_machine_id: str | None = None
    preferred: tuple[str, ...] = ()
    place: Place = Place()


def eligible(want: Want, machines: Iterable[Candidate]) -> list[Candidate]:
    """The machines that may take it now: available, below capacity, running the type, the target if any."""
    return [
        machine
        for machine in machines
        if machine.available
        and machine.free > 0
        and want.inspection_type in machine.supported_types
        and (want.target_machine_id is None or machine.id == want.target_machine_id)
    ]


def _load_key(machine: Candidate) -> tuple[float, int, str]:
    return (machine.load_ratio, -machine.free, machine.id)


def _distance(machine: Candidate, place: Place) -> int:
    if place.line is not None and machine.line == place.line:
        return 0
    if place.location is not None and machine.location == place.location:
        return 1
    return 2


def rank(strategy: Strategy, want: Want, machines: Sequence[Candidate]) -> list[Candidate]:
    """`machines` (already eligible) best first."""
    preferred = {machine_id: index for index, machine_id in enumerate(want.preferred)}

    def preference(machine: Candidate) -> int:
        return preferred.get(machine.id, len(preferred))

    if strategy == "load_balanced":
        return sorted(machines, key=lambda m: (preference(m), *_load_key(m)))
    if strategy == "nearest":
        return sorted(machines, key=lambda m: (preference(m), _distance(m, want.place), *_load_key(m)))
    return sorted(
        machines,
        key=lambda m: (
            preference(m),
            len(m.supported_types - {want.inspection_type}),
            -m.success_rate(want.inspection_type),
            *_load_key(m),
        ),
    )


def choose(strategy: Strategy, want: Want, machines: Iterable[Candidate]) -> Candidate | None:
    ranked = rank(strategy, want, eligible(want, machines))
    return ranked[0] if ranked else None


def why_none(want: Want, machines: Sequence[Candidate]) -> str:
    """Why no machine can take it, in words an operator can act on."""
    if want.target_machine_id is not None:
        target = next((m for m in machines if m.id == want.target_machine_id), None)
        if target is None:
            return f"its target machine {want.target_machine_id} does not exist"
        if want.inspection_type not in target.supported_types:
            return f"its target machine {target.id} does not run {want.inspection_type}"
        if not target.available:
            return f"its target machine {target.id} is offline or in maintenance"
        return f"its target machine {target.id} is at capacity ({target.current}/{target.capacity})"
    running = [m for m in machines if want.inspection_type in m.supported_types]
    if not running:
        return f"no machine runs {want.inspection_type}"
    up = [m for m in running if m.available]
    if not up:
        return f"the {len(running)} machine(s) running {want.inspection_type} are offline or in maintenance"
    return f"the {len(up)} available machine(s) running {want.inspection_type} are at capacity"

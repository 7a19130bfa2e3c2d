"""Errors of inspections, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ConflictError, MissingReferenceError, NotFoundError, ValidationFailedError


class InspectionNotFoundError(NotFoundError):
    def __init__(self, inspection_id: str) -> None:
        super().__init__(f"no inspection {inspection_id!r}", code="inspection_not_found")


class InvalidPipelineError(ValidationFailedError):
    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(
            f"invalid pipeline_config: {problems[0]['message']}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            code="invalid_pipeline",
            details=problems,
        )


def unknown_machine(field: str, machine_id: str) -> MissingReferenceError:
    """The 404 of a body field naming a machine that does not exist (`machine_not_found`, naming the field)."""
    return MissingReferenceError("machine", repr(machine_id), field)


class MachineLacksTypeError(ConflictError):
    """The machine a body names exists but does not declare the inspection's type, so it cannot run it."""

    def __init__(self, field: str, machine_id: str, inspection_type: str) -> None:
        super().__init__(
            f"machine {machine_id!r} does not declare the inspection type {inspection_type!r}",
            code="machine_lacks_type",
            details={"field": field, "inspection_type": inspection_type},
        )


class InspectionNotPendingError(ConflictError):
    def __init__(self, inspection_id: str, status: str) -> None:
        super().__init__(
            f"inspection {inspection_id!r} is {status}; it can be changed only while pending",
            code="inspection_not_pending",
            details={"status": status},
        )


class InvalidTransitionError(ConflictError):
    def __init__(self, inspection_id: str, current: str, target: str) -> None:
        super().__init__(
            f"inspection {inspection_id!r} cannot go from {current} to {target}",
            code="invalid_transition",
            details={"status": current, "requested": target},
        )

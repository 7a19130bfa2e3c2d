"""Errors of inspections, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ConflictError, NotFoundError, ValidationFailedError


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


class UnknownTargetMachineError(ValidationFailedError):
    def __init__(self, field: str, machine_id: str, message: str | None = None) -> None:
        text = message or f"no machine {machine_id!r}"
        super().__init__(text, code="invalid_target_machine", details=[{"field": field, "message": text}])


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

"""Errors of machine reports, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ConflictError, ForbiddenError, NotFoundError


class NotYourselfError(ForbiddenError):
    def __init__(self, caller: str, claimed: str) -> None:
        super().__init__(f"machine {caller!r} cannot report for machine {claimed!r}", code="not_this_machine")


class NotYourInspectionError(ForbiddenError):
    def __init__(self, machine_id: str, inspection_id: str) -> None:
        super().__init__(f"inspection {inspection_id!r} is not assigned to machine {machine_id!r}", code="not_assigned")


class UnknownInspectionError(NotFoundError):
    # The machine protocol's own code (machines act on it), with the suite's `details.field` for a body id.
    def __init__(self, inspection_id: str) -> None:
        super().__init__(
            f"no inspection {inspection_id!r}", code="unknown_inspection", details={"field": "inspection_id"}
        )


class InspectionCancelledError(ConflictError):
    def __init__(self, inspection_id: str) -> None:
        super().__init__(f"inspection {inspection_id!r} was cancelled", code="inspection_cancelled")


class StaleAttemptError(ConflictError):
    def __init__(self, inspection_id: str, attempt: int, current: int, status: str) -> None:
        super().__init__(
            f"inspection {inspection_id!r} is at attempt {current} ({status}); a result of attempt {attempt}"
            " is no longer wanted",
            code="stale_attempt",
            details={"attempt": attempt, "current_attempt": current, "status": status},
        )

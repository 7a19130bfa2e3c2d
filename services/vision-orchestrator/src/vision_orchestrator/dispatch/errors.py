"""Errors of dispatch, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ConflictError


class NoMachineError(ConflictError):
    def __init__(self, inspection_id: str, reason: str) -> None:
        super().__init__(
            f"no machine can take inspection {inspection_id!r} now: {reason}",
            code="no_machine_available",
            details={"reason": reason},
        )

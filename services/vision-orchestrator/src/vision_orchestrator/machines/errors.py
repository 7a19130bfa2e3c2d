"""Errors of machines and their credentials, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ConflictError, NotFoundError, UnauthorizedError

MACHINE_CHALLENGE = 'Bearer realm="vision-machines"'


class MachineNotFoundError(NotFoundError):
    def __init__(self, machine_id: str) -> None:
        super().__init__(f"no machine {machine_id!r}", code="machine_not_found")


class MachineNameTakenError(ConflictError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a machine is named {name!r} already", code="machine_name_taken", details={"name": name})


class MachineBusyError(ConflictError):
    def __init__(self, machine_id: str, inspections: int) -> None:
        super().__init__(
            f"machine {machine_id!r} has {inspections} inspections on it or waiting for it; cancel or move them first",
            code="machine_busy",
            details={"inspections": inspections},
        )


class CredentialNotFoundError(NotFoundError):
    def __init__(self, machine_id: str, message: str | None = None) -> None:
        super().__init__(
            message or f"machine {machine_id!r} has no credential: issue one with POST", code="credential_not_found"
        )


class InvalidMachineCredentialError(UnauthorizedError):
    code = "invalid_machine_credential"

    def __init__(self, message: str = "invalid machine credential") -> None:
        super().__init__(message, headers={"WWW-Authenticate": MACHINE_CHALLENGE})

"""What can go wrong talking to CVAT, as types the sync and the CLI can tell apart."""

from __future__ import annotations

from dataclasses import dataclass


class CvatError(Exception):
    """Any failure to get what cvat-sync needs from CVAT; `str()` is a message for the user."""


class CvatConfigurationError(CvatError):
    """cvat-sync is not configured to reach CVAT (no credentials, unusable URL)."""


class CvatAuthenticationError(CvatError):
    """CVAT refused the configured credential (401, or a failed login)."""


class CvatPermissionError(CvatError):
    """CVAT accepted the credential but refused the request (403)."""


class CvatUnavailableError(CvatError):
    """CVAT kept answering 429/5xx or could not be reached, even after the configured retries."""


class CvatResponseError(CvatError):
    """CVAT answered something cvat-sync cannot use: an unexpected status, bad JSON, a payload of the wrong shape."""


class CvatNotFoundError(CvatResponseError):
    """The object does not exist in CVAT (404), e.g. a job deleted after it was listed."""


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field of a CVAT object: its dotted path and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidJobPayloadError(ValueError):
    """A job object from CVAT (API or webhook) lacks a required field or has one of the wrong type.

    `problems` names the fields (at most five); `str()` is a message for people, without Python internals.
    """

    def __init__(self, message: str, problems: tuple[FieldProblem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems

    @property
    def summary(self) -> str:
        """The invalid fields and what is wrong with each, e.g. `updated_date: out of range: ...`."""
        return "; ".join(map(str, self.problems)) or str(self)

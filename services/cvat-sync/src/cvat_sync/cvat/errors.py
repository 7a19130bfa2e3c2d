"""What can go wrong talking to CVAT, as types the sync and the CLI can tell apart."""

from __future__ import annotations


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

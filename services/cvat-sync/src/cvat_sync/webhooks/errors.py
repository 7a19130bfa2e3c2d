"""The errors of the webhooks feature."""

from __future__ import annotations

from cvat_sync.cvat.errors import InvalidJobPayloadError
from mirante.web.errors import NotFoundError


class WebhookPayloadError(InvalidJobPayloadError):
    """The webhook names an event we handle, but its task or project object lacks a field we need or has one
    of the wrong type."""


class WebhookLogNotFoundError(NotFoundError):
    def __init__(self, log_id: int) -> None:
        super().__init__(f"webhook log {log_id} not found")

"""Errors of the Chatwoot API, as it answers them."""

from __future__ import annotations

from mirante.web.errors import NotFoundError


class DeliveryLogNotFoundError(NotFoundError):
    def __init__(self, log_id: int) -> None:
        super().__init__(f"there is no Chatwoot webhook log {log_id}", code="chatwoot_delivery_not_found")

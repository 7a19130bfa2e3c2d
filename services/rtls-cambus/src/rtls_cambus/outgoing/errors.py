"""Errors of the webhook API, as it answers them."""

from __future__ import annotations

from mirante.web.errors import ApiError, NotFoundError


class SubscriptionNotFoundError(NotFoundError):
    def __init__(self, subscription_id: int) -> None:
        super().__init__(f"there is no webhook subscription {subscription_id}", code="webhook_not_found")


class DeliveryNotFoundError(NotFoundError):
    def __init__(self, subscription_id: int, delivery_id: int) -> None:
        super().__init__(
            f"webhook subscription {subscription_id} has no delivery {delivery_id}", code="delivery_not_found"
        )


class TargetNotAllowedError(ApiError):
    status_code = 422
    code = "webhook_target_refused"

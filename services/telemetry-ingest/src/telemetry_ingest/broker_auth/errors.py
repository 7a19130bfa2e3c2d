"""Errors of the broker authentication endpoints, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ApiError, BadRequestError


class BrokerAuthNotConfiguredError(ApiError):
    status_code, code = 503, "broker_auth_not_configured"


class UnreadableRequestError(BadRequestError):
    code = "bad_broker_request"

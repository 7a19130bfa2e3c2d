"""The answer for work refused under overload: 503 with `Retry-After`, never a 500 or an endless wait."""

from __future__ import annotations

from mirante.web.errors import ApiError


class ServiceBusyError(ApiError):
    """The server cannot take this request now (a saturated pool, an unreachable dependency); retry later."""

    status_code, code = 503, "service_busy"

    def __init__(self, message: str, retry_after_seconds: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_seconds)})

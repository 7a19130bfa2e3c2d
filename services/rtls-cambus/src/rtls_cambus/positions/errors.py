"""Errors of positions, presence and the live feed, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ApiError, UnauthorizedError


class PeriodError(ApiError):
    def __init__(self) -> None:
        super().__init__("`to` must be after `from`", code="invalid_period", status_code=422)


class FeedTicketError(UnauthorizedError):
    def __init__(self) -> None:
        super().__init__("the feed ticket is unknown, used or expired: ask for a new one", code="invalid_feed_ticket")

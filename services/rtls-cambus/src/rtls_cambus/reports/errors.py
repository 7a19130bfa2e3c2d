"""Errors of the reports, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ApiError


class PeriodTooLongError(ApiError):
    def __init__(self, max_days: int) -> None:
        super().__init__(
            f"a report covers at most {max_days} days (the report_max_days setting): shorten the period",
            code="period_too_long",
            status_code=422,
            details={"max_days": max_days},
        )


class UnknownTimeZoneError(ApiError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"unknown time zone {name!r}: use an IANA name such as UTC or America/Sao_Paulo",
            code="unknown_time_zone",
            status_code=422,
        )

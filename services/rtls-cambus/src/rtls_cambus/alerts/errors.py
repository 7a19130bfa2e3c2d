"""Errors of alert rules, alerts and the alerts report, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ConflictError, ForbiddenError, NotFoundError, ValidationFailedError


class AlertRuleNotFoundError(NotFoundError):
    def __init__(self, rule_id: int) -> None:
        super().__init__(f"there is no alert rule {rule_id}", code="alert_rule_not_found")


class AlertRuleExistsError(ConflictError):
    def __init__(self) -> None:
        super().__init__("another alert rule has this name", code="alert_rule_exists")


class AlertRuleInvalidError(ValidationFailedError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems), code="alert_rule_invalid", details={"problems": problems})


class AlertNotFoundError(NotFoundError):
    def __init__(self, alert_id: int) -> None:
        super().__init__(f"there is no alert {alert_id}", code="alert_not_found")


class AlertTransitionRefusedError(ConflictError):
    def __init__(self, current: str, wanted: str, allowed: list[str]) -> None:
        then = ", ".join(allowed) if allowed else "nothing (it is final)"
        super().__init__(
            f"an {current} alert cannot be {wanted}; from {current} it may become {then}",
            code="alert_transition_refused",
            details={"from": current, "to": wanted, "allowed": allowed},
        )


class SuiteWideError(ForbiddenError):
    def __init__(self, tenant: str | None) -> None:
        super().__init__(
            f"alert rules act on the whole suite's events; an account of tenant {tenant!r} cannot read or manage them",
            code="suite_wide",
        )


class ReportRangeError(ValidationFailedError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_report_range")

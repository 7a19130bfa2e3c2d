"""Errors of threshold rules, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ConflictError, NotFoundError


class RuleNotFoundError(NotFoundError):
    def __init__(self, rule_id: int) -> None:
        super().__init__(f"no threshold rule {rule_id}", code="threshold_rule_not_found")


class DuplicateRuleError(ConflictError):
    def __init__(self, existing_id: int) -> None:
        super().__init__(
            f"threshold rule {existing_id} already has this device, sensor and limits",
            code="threshold_rule_exists",
            details={"rule_id": existing_id},
        )


class TooManyRulesError(ConflictError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the tenant has {limit} threshold rules, the most allowed; delete one first",
            code="threshold_rule_limit",
            details={"limit": limit},
        )

"""Errors of incidents, support groups and incident rules, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import (
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
)


class IncidentNotFoundError(NotFoundError):
    def __init__(self, incident_id: int) -> None:
        super().__init__(f"there is no incident {incident_id}", code="incident_not_found")


class TransitionRefusedError(ConflictError):
    def __init__(self, current: str, wanted: str, allowed: list[str]) -> None:
        then = ", ".join(allowed) if allowed else "nothing (it is final)"
        super().__init__(
            f"an incident cannot go from {current} to {wanted}; from {current} it may go to {then}",
            code="incident_transition_refused",
            details={"from": current, "to": wanted, "allowed": allowed},
        )


def _listed(user_ids: list[int]) -> str:
    return ", ".join(str(user_id) for user_id in user_ids)


class UsersNotFoundError(NotFoundError):
    def __init__(self, field: str, user_ids: list[int]) -> None:
        super().__init__(
            f"there are no users {_listed(user_ids)}",
            code="user_not_found",
            details={"field": field, "user_ids": user_ids},
        )


class UsersInactiveError(ConflictError):
    def __init__(self, field: str, user_ids: list[int]) -> None:
        super().__init__(
            f"these users are inactive: {_listed(user_ids)}",
            code="user_inactive",
            details={"field": field, "user_ids": user_ids},
        )


class SupportGroupNotFoundError(NotFoundError):
    def __init__(self, group_id: int) -> None:
        super().__init__(f"there is no support group {group_id}", code="support_group_not_found")


class SupportGroupExistsError(ConflictError):
    def __init__(self) -> None:
        super().__init__("another support group has this name", code="support_group_exists")


class SupportMemberNotFoundError(NotFoundError):
    def __init__(self, group_id: int, user_id: int) -> None:
        super().__init__(f"user {user_id} is not in support group {group_id}", code="support_member_not_found")


class RuleNotFoundError(NotFoundError):
    def __init__(self, rule_id: int) -> None:
        super().__init__(f"there is no incident rule {rule_id}", code="incident_rule_not_found")


class RuleExistsError(ConflictError):
    def __init__(self) -> None:
        super().__init__("another incident rule has this name", code="incident_rule_exists")


class AttachmentNotFoundError(NotFoundError):
    def __init__(self, incident_id: int, attachment_id: int) -> None:
        super().__init__(
            f"incident {incident_id} has no attachment {attachment_id}", code="incident_attachment_not_found"
        )


class AttachmentTooLargeError(PayloadTooLargeError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the attachment is larger than {limit} bytes", code="attachment_too_large", details={"limit": limit}
        )


class AttachmentEmptyError(ValidationFailedError):
    def __init__(self) -> None:
        super().__init__("the file is empty", code="attachment_empty", details={"field": "file"})


class AttachmentTypeRefusedError(UnsupportedMediaTypeError):
    def __init__(self) -> None:
        super().__init__(
            "attachments may be PNG, JPEG, GIF or WebP images, PDF documents or plain UTF-8 text "
            "(judged by the content, not the name)",
            code="attachment_type_refused",
        )

"""Errors of people and person groups, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ConflictError, NotFoundError


class PersonNotFoundError(NotFoundError):
    def __init__(self, person_id: int) -> None:
        super().__init__(f"there is no person {person_id}", code="person_not_found")


class PersonExistsError(ConflictError):
    def __init__(self) -> None:
        super().__init__("another person has this external id", code="person_exists", details={"field": "external_id"})


class PersonCarriesTagError(ConflictError):
    def __init__(self, person_id: int) -> None:
        super().__init__(
            f"person {person_id} has carried a tag, and that history must stay: set active to false instead",
            code="person_has_tag_history",
            details={"person_id": person_id},
        )


class GroupNotFoundError(NotFoundError):
    def __init__(self, group_id: int) -> None:
        super().__init__(f"there is no person group {group_id}", code="person_group_not_found")


class GroupExistsError(ConflictError):
    def __init__(self) -> None:
        super().__init__("another person group has this name", code="person_group_exists")


class MemberNotFoundError(NotFoundError):
    def __init__(self, group_id: int, person_id: int) -> None:
        super().__init__(f"person {person_id} is not in group {group_id}", code="member_not_found")

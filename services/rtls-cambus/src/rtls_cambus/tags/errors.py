"""Errors of tags and their assignments, as the API answers them."""

from __future__ import annotations

from mirante.web.errors import ConflictError, NotFoundError


class TagNotFoundError(NotFoundError):
    def __init__(self, tag_id: int) -> None:
        super().__init__(f"there is no tag {tag_id}", code="tag_not_found")


class TagExistsError(ConflictError):
    def __init__(self, mac: str) -> None:
        super().__init__(f"a tag with MAC {mac} exists already", code="tag_exists", details={"mac": mac})


class TagAssignedError(ConflictError):
    def __init__(self, tag_id: int) -> None:
        super().__init__(
            f"tag {tag_id} is carried by someone: unassign it first", code="tag_assigned", details={"tag_id": tag_id}
        )


class TagNotAssignedError(NotFoundError):
    def __init__(self, tag_id: int) -> None:
        super().__init__(f"tag {tag_id} is not assigned to anyone", code="tag_not_assigned")

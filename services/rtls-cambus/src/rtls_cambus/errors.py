"""Errors several features of rtls-cambus answer; a feature's own errors live in its `errors.py`."""

from __future__ import annotations

from mirante.web.errors import NotFoundError


class MissingReferenceError(NotFoundError):
    """`field` of the body names a `thing` that does not exist (see `references` for the rule)."""

    def __init__(self, thing: str, value: object, field: str) -> None:
        super().__init__(
            f"there is no {thing} {value}", code=f"{thing.replace(' ', '_')}_not_found", details={"field": field}
        )

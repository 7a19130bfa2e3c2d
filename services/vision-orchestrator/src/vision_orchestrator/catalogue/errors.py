"""Errors of the inspection-type catalogue, as the API answers them."""

from __future__ import annotations

from collections.abc import Iterable

from mirante.web.errors import ConflictError, MissingReferenceError, NotFoundError


class InspectionTypeNotFoundError(NotFoundError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no inspection type {name!r}", code="inspection_type_not_found")


class InspectionTypeExistsError(ConflictError):
    def __init__(self, name: str) -> None:
        super().__init__(f"inspection type {name!r} exists already", code="inspection_type_exists")


class InspectionTypeInUseError(ConflictError):
    def __init__(self, name: str, machines: int, inspections: int) -> None:
        super().__init__(
            f"inspection type {name!r} is in use by {machines} machines and {inspections} inspections",
            code="inspection_type_in_use",
            details={"machines": machines, "inspections": inspections},
        )


class UnknownInspectionTypesError(MissingReferenceError):
    """Types a body names that the catalogue does not have (404 `inspection_type_not_found`); `field` is the body
    field that named them, `details.names` lists them."""

    def __init__(self, field: str, names: Iterable[str]) -> None:
        unknown = sorted(set(names))
        listed = ", ".join(repr(name) for name in unknown)
        super().__init__(
            "inspection type",
            listed,
            field,
            message=f"the catalogue has no inspection type {listed} (add it to /api/v1/inspection-types/ first)",
            names=unknown,
        )
